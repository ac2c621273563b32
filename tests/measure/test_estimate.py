"""--estimate: latency from the user's rates, per the arithmetic each layer really uses."""

import dataclasses

import pytest

from autocomp.compress import compress
from autocomp.errors import UserError
from autocomp.measure.estimate import EstimateRunner, layer_macs
from autocomp.plan import CompressionPlan
from autocomp.device.profiles import load_profile


def _model(task, ctx, w, a, fp16):
    plan = CompressionPlan.uniform(ctx.layers, w, a)
    return compress(ctx.model, plan, task.example_input, task.calib_data, ctx.protected, fp16_compute=fp16)


def test_each_layer_is_priced_at_its_own_arithmetic(digits_task, digits_ctx):
    rates = {"fp32_gflops": 10.0, "int8_gops": 20.0, "fp16_gflops": 40.0}
    profile = dataclasses.replace(load_profile("rpi5"), estimate=rates)
    for (w, a, fp16), (kind, rate) in {(16, 16, True): ("fp16", 40.0), (8, 8, False): ("int8", 20.0),
                                       (32, 32, False): ("fp32", 10.0)}.items():
        model = _model(digits_task, digits_ctx, w, a, fp16)
        macs = layer_macs(model, digits_task.example_input)
        assert {k for _, k in macs.values()} == {kind}
        run = EstimateRunner(profile).run(None, model, digits_task)
        assert run.latency.median_ms == pytest.approx(sum(2 * m for m, _ in macs.values()) / (rate * 1e9) * 1e3)
        assert run.measured_on == "estimate"


def test_fp16_layers_without_an_fp16_rate_are_a_user_error(digits_task, digits_ctx):
    profile = dataclasses.replace(load_profile("rpi5"), estimate={"fp32_gflops": 10.0, "int8_gops": 20.0})
    with pytest.raises(UserError, match="fp16_gflops"):
        EstimateRunner(profile).run(None, _model(digits_task, digits_ctx, 16, 16, True), digits_task)
