"""The kernel driver: every conv gets a template where one fits, results never change, the input module is untouched."""


import numpy as np
import pytest
import torch
from torch import nn

from autocomp.build.compile import build, legalize
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from helpers import unscheduled_outputs
from autocomp.build.kernels.driver import schedule_module


@pytest.mark.parametrize("w_bits, a_bits", [(32, 32), (8, 8), (4, 8)])
def test_every_conv_is_scheduled_and_results_are_unchanged(digits_task, digits_ctx, host, w_bits, a_bits):
    plan = CompressionPlan.uniform(digits_ctx.layers, w_bits, a_bits)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    built = build(lowered, host)
    assert all(status.startswith("scheduled") for status in built.kernels.values())
    session = LocalSession(built)
    for x in digits_task.eval_inputs[:8]:
        x = x[None].numpy()
        got, want = session.run(x), unscheduled_outputs(lowered, x)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5)


class OddShapes(nn.Module):
    """Channel counts that are multiples of 8 but not 16, stride 2, 1x1, a non-square input, depthwise."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 24, 3, stride=2, padding=1)
        self.b = nn.Conv2d(24, 40, 1)
        self.dw = nn.Conv2d(40, 40, 3, padding=1, groups=40)
        self.c = nn.Conv2d(40, 8, 3, padding=1)

    def forward(self, x):
        return self.c(torch.relu(self.dw(torch.relu(self.b(torch.relu(self.a(x)))))))


def test_odd_shapes_schedule_or_fall_back_and_stay_correct(host):
    torch.manual_seed(0)
    model, x = OddShapes().eval(), torch.randn(1, 3, 30, 22)
    lowered = lower(model, x)
    built = build(lowered, host)
    statuses = list(built.kernels.values())
    assert statuses.count("scheduled (default tile)") == 3
    assert statuses.count("scheduled (depthwise template)") == 1
    got = LocalSession(built).run(x.numpy())
    assert np.allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_schedule_module_leaves_its_input_untouched(digits_task, digits_ctx, host):
    fused = legalize(lower(digits_ctx.model, digits_task.example_input).mod, host.tvm_target())
    before = fused.script()
    scheduled, report = schedule_module(fused, host.tvm_target())
    assert fused.script() == before and scheduled.script() != before
    assert {v for k, v in report.items() if "conv2d" in k} == {"scheduled (default tile)"}
    assert {v for k, v in report.items() if "conv2d" not in k} <= {"scheduled (matmul template)",
                                                                   "scheduled (elementwise template)"}
