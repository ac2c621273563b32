"""Fold BatchNorm into the convolution before it, as every deployment does.

With BatchNorm gone, a quantized conv's rescale, bias, ReLU and the next layer's quantize are all
elementwise after the conv, so TVM fuses them into the conv's kernel and only int8 tensors travel
between integer layers. Uses torch.fx's own conv-bn fusion; a model torch.fx cannot trace keeps its
BatchNorms (correct, just slower), and `fold_batchnorm` says so.
"""

from __future__ import annotations

import copy

from torch import nn


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, bool]:
    """A copy with conv+BN pairs folded (module names kept); False if the model could not be traced."""
    from torch.fx.experimental.optimization import fuse

    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model, True
    try:
        return fuse(copy.deepcopy(model).eval(), inplace=True), True
    except Exception:  # torch.fx raises many types for untraceable code
        return model, False
