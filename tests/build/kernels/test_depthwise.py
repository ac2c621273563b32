"""The depthwise conv template: applied to depthwise convs, results unchanged."""


import numpy as np
import pytest
import torch
from torch import nn

from autocomp.build.compile import build
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan, LayerPlan


class Separable(nn.Module):
    """Depthwise convs at stride 1 and 2, odd widths, and a grouped (not depthwise) conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.dw1 = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.dw2 = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
        self.g = nn.Conv2d(16, 16, 3, padding=1, groups=4)

    def forward(self, x):
        return self.g(torch.relu(self.dw2(torch.relu(self.dw1(torch.relu(self.a(x)))))))


@pytest.mark.parametrize("int8", [False, True])
def test_depthwise_convs_get_their_template_and_stay_correct(host, int8):
    torch.manual_seed(0)
    model, x = Separable().eval(), torch.randn(1, 3, 23, 19)
    if int8:
        from autocomp.compress.quantize import quantize

        names = ["a", "dw1", "dw2", "g"]
        model = quantize(model, CompressionPlan(tuple(LayerPlan(n, 8, 8) for n in names)), torch.rand(8, 3, 23, 19))
    built = build(lower(model, x), host)
    statuses = list(built.kernels.values())
    assert statuses.count("scheduled (depthwise template)") == 2, statuses
    # groups=4 (4 channels per group) is a grouped conv for the dense template (test_dense.py), not TVM's default
    assert not any(s.startswith("default schedule") for s in statuses), statuses
    with torch.no_grad():
        want = model(x).numpy()
    assert np.allclose(LocalSession(built).run(x.numpy()), want, rtol=1e-4, atol=1e-4)
