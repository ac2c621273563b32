"""The templates for the kernels around the convs (matmul, elementwise, pooling): applied, and exact."""

import numpy as np
import pytest
import torch
from torch import nn

from autocomp.build.compile import build
from autocomp.compress.quantize import quantize
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan, LayerPlan
from helpers import unscheduled_outputs


class Residual(nn.Module):
    """Max pooling, a residual add feeding a requantize, global pooling and an odd-sized classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 37)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = torch.relu(x + self.b(torch.relu(self.a(x))))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("int8", [False, True])
def test_matmul_elementwise_and_pooling_templates_are_used_and_exact(host, int8):
    torch.manual_seed(0)
    model, x = Residual().eval(), torch.rand(1, 3, 20, 18)
    if int8:
        plan = CompressionPlan(tuple(LayerPlan(n, 8, 8) for n in ("stem", "a", "b", "fc")))
        model = quantize(model, plan, torch.rand(8, 3, 20, 18))
    lowered = lower(model, x)
    built = build(lowered, host)
    other = {k: v for k, v in built.kernels.items() if "conv2d" not in k}
    assert "scheduled (matmul template)" in other.values(), built.kernels
    assert any("max_pool" in k and v == "scheduled (elementwise template)" for k, v in other.items()), other
    if int8:  # the requantize after the residual add is its own kernel
        assert any("round" in k and v == "scheduled (elementwise template)" for k, v in other.items()), other
    got = LocalSession(built).run(x.numpy())
    want = unscheduled_outputs(lowered, x.numpy())
    if int8:
        assert np.array_equal(got, want)  # integer arithmetic, same float epilogue
    else:
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
