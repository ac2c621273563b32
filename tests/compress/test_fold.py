import torch
from torch import nn

from autocomp.compress.fold import fold_batchnorm


def test_folds_conv_bn_and_keeps_names(digits_ctx, digits_task):
    folded, ok = fold_batchnorm(digits_ctx.model)
    assert ok and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert "features.1.0" in dict(folded.named_modules())
    x = digits_task.eval_inputs[:16]
    assert torch.allclose(folded(x), digits_ctx.model(x), atol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in digits_ctx.model.modules())  # original untouched


def test_untraceable_model_keeps_its_batchnorm():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.bn(self.conv(x))
            return self.conv(x)

    model = Dynamic().eval()
    same, ok = fold_batchnorm(model)
    assert not ok and same is model
