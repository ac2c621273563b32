"""Conv1d as a conv2d of height 1: no conv1d reaches the kernels, a chain of 1-D layers stays 4-D (rank
changes only at its ends), every conv is scheduled by a template, and the results are unchanged."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm
from torch import nn

from autocomp.build.compile import build, fuse
from autocomp.build.kernels.driver import schedule_module
from autocomp.build.passes.conv1d import conv1d_as_conv2d
from autocomp.compress.quantize import quantize
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan


class OneD(nn.Module):
    """Padding, dilation, a strided depthwise conv, a per-channel (C, 1) parameter, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(8, 16, 5, padding=2)
        self.dw = nn.Conv1d(16, 16, 3, stride=2, padding=2, dilation=2, groups=16)
        self.b = nn.Conv1d(16, 16, 1)
        self.scale = nn.Parameter(torch.rand(16, 1) + 0.5)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.dw(F.gelu(self.a(x))) * self.scale
        return self.fc(torch.relu(self.b(z) + z).mean(-1))


def _model_and_input():
    torch.manual_seed(0)
    return OneD().eval(), torch.randn(1, 8, 40)


def _ops(mod) -> list[str]:
    return [b.value.op.name for blk in mod["main"].body.blocks for b in blk.bindings
            if isinstance(b.value, tvm.relax.Call) and isinstance(b.value.op, tvm.ir.Op)]


def test_a_chain_of_conv1d_layers_runs_4d_between_its_ends():
    model, x = _model_and_input()
    before = _ops(lower(model, x).mod)
    assert before.count("relax.nn.conv1d") == 3
    after = _ops(conv1d_as_conv2d(lower(model, x).mod))
    assert "relax.nn.conv1d" not in after and after.count("relax.nn.conv2d") == 3
    assert after.count("relax.squeeze") == 1  # once, before the mean over time: no squeeze between layers


def test_every_1d_conv_gets_a_template_and_the_fp32_build_agrees(host):
    model, x = _model_and_input()
    lowered = lower(model, x)
    fused, _ = fuse(lowered, host)
    _, report = schedule_module(fused, host.tvm_target())
    convs = {k: v for k, v in report.items() if "conv2d" in k}
    assert len(convs) == 3 and all(v.startswith("scheduled") for v in convs.values()), report
    got = LocalSession(build(lowered, host)).run(x.numpy())
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("w_bits", [8, 4])
def test_integer_conv1d_layers_compute_in_int8_and_match_the_simulation_exactly(host, w_bits):
    model, x = _model_and_input()
    calib = torch.randn(32, 8, 40)
    names = ["a", "dw", "b", "fc"]
    q = quantize(model, CompressionPlan.uniform(names, w_bits, 8), calib)
    assert all(q.get_submodule(n).describe().compute.endswith("-> int32") for n in names)
    session = LocalSession(build(lower(q, x), host))
    for xi in calib[:4]:
        with torch.no_grad():
            want = q(xi[None]).numpy()
        assert np.array_equal(session.run(xi[None].numpy()), want)
