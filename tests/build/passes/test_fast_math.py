"""Softmax, GELU, SiLU, sigmoid, exp, erf and tanh through TVM's vectorizable approximations: the rewrite
happens, and the compiled results stay at float32 rounding level of PyTorch's exact functions."""

import numpy as np
import torch
from torch import nn

from autocomp.build.compile import build
from autocomp.build.passes.fast_math import fast_math
from autocomp.lower import lower
from autocomp.measure.local import LocalSession


class Nonlinear(nn.Module):
    def forward(self, x):
        return torch.cat([torch.softmax(x * 4, -1), nn.functional.gelu(x * 3), torch.exp(x), torch.erf(x),
                          torch.tanh(x * 2), torch.sigmoid(x * 3), nn.functional.silu(x * 3)], -1)


def test_the_nonlinear_ops_are_rewritten_and_agree_with_pytorch(host):
    x = torch.linspace(-6, 6, 2 * 3 * 64).reshape(2, 3, 64)
    lowered = lower(Nonlinear().eval(), x)
    script = fast_math(lowered.mod).script()
    for op in ("R.nn.softmax", "R.nn.gelu", "R.exp", "R.erf", "R.tanh", "R.sigmoid", "R.nn.silu"):
        assert op not in script, op
    assert script.count("fast_") >= 4  # the call_te kernels keep TVM's names (fast_softmax, fast_exp, ...)
    got = LocalSession(build(lowered, host)).run(x.numpy())
    with torch.no_grad():
        want = Nonlinear()(x).numpy()
    assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()
    assert np.abs(got - want).max() > 0  # the approximations are in: not bit-equal to libm's functions
