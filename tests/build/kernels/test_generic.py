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


class Encoder(nn.Module):
    """Attention at ViT's awkward sizes: 13 tokens (no tile divides it), 3 heads, an odd MLP width."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(24)
        self.qkv = nn.Linear(24, 72)
        self.out = nn.Linear(24, 24)
        self.fc1 = nn.Linear(24, 40)
        self.fc2 = nn.Linear(40, 24)

    def forward(self, x):
        b = x.shape[0]
        q, k, v = self.qkv(self.norm(x)).reshape(b, 13, 3, 3, 8).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
        x = x + self.out((attn @ v).permute(0, 2, 1, 3).reshape(b, 13, 24))
        return x + self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("int8", [False, True])
def test_token_matmuls_batched_attention_and_row_normalisations_get_templates(host, int8):
    """The (rows x vectors) matmul tile with M and N padded (13 tokens), batched matmuls (q @ k^T, attn @ v)
    and softmax / LayerNorm as row kernels: each scheduled, and the same numbers as the unscheduled graph."""
    torch.manual_seed(0)
    model, x = Encoder().eval(), torch.randn(1, 13, 24)
    if int8:
        plan = CompressionPlan(tuple(LayerPlan(n, 8, 8) for n in ("qkv", "out", "fc1", "fc2")))
        model = quantize(model, plan, torch.randn(8, 13, 24))
    lowered = lower(model, x)
    built = build(lowered, host)
    matmuls = {k: v for k, v in built.kernels.items() if "matmul" in k}
    assert len(matmuls) == 6 and set(matmuls.values()) == {"scheduled (matmul template)"}, built.kernels
    rows = [k for k, v in built.kernels.items() if v == "scheduled (row template)"]
    assert any("softmax" in k for k in rows) and any("layer_norm" in k for k in rows), built.kernels
    got = LocalSession(built).run(x.numpy())
    want = unscheduled_outputs(lowered, x.numpy())
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
