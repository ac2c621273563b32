"""--estimate: latency from llvm-mca's core model of the candidate's own kernels (profiles with [mca]),
or from the user's rates per the arithmetic each layer really uses ([estimate])."""

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from autocomp.build.compile import export_library
from autocomp.candidate import Context
from autocomp.compress import compress
from autocomp.errors import UserError
from autocomp.measure import mca
from autocomp.measure.base import MeasureOptions, is_estimate
from autocomp.measure.estimate import MCA_LABEL, EstimateRunner, layer_macs
from autocomp.measure.runners import runner_for
from autocomp.plan import CompressionPlan
from autocomp.device.profiles import load_profile


def _model(task, ctx, w, a, fp16):
    plan = CompressionPlan.uniform(ctx.layers, w, a)
    return compress(ctx.model, plan, task.example_input, task.calib_data, ctx.protected, fp16_compute=fp16)


def test_each_layer_is_priced_at_its_own_arithmetic(digits_task, digits_ctx):
    rates = {"fp32_gflops": 10.0, "int8_gops": 20.0, "fp16_gflops": 40.0}
    profile = dataclasses.replace(load_profile("rpi5"), estimate=rates, mca={})
    for (w, a, fp16), (kind, rate) in {(16, 16, True): ("fp16", 40.0), (8, 8, False): ("int8", 20.0),
                                       (32, 32, False): ("fp32", 10.0)}.items():
        model = _model(digits_task, digits_ctx, w, a, fp16)
        macs = layer_macs(model, digits_task.example_input)
        assert {k for _, k in macs.values()} == {kind}
        run = EstimateRunner(profile).run(None, model, digits_task)
        assert run.latency.median_ms == pytest.approx(sum(2 * m for m, _ in macs.values()) / (rate * 1e9) * 1e3)
        assert run.measured_on == "estimate"


def test_fp16_layers_without_an_fp16_rate_are_a_user_error(digits_task, digits_ctx):
    profile = dataclasses.replace(load_profile("rpi5"), estimate={"fp32_gflops": 10.0, "int8_gops": 20.0}, mca={})
    with pytest.raises(UserError, match="fp16_gflops"):
        EstimateRunner(profile).run(None, _model(digits_task, digits_ctx, 16, 16, True), digits_task)


def _ctx(digits_task, digits_ctx, device):
    return Context(digits_task, load_profile(device), digits_ctx.model, digits_ctx.layers, digits_ctx.protected,
                   digits_ctx.prunable, {})


def test_the_pi_profiles_estimate_each_kernel_with_llvm_mca(digits_task, digits_ctx, tmp_path):
    """Latency = the candidate's own kernels' llvm-mca cycles at the Pi's clock; every kernel's work is
    counted (none silently left out), and the core models tell the Pi 5's SDOT from the Pi 4's int8 loops."""
    ms = {}
    for device in ("rpi4", "rpi5"):
        ctx = _ctx(digits_task, digits_ctx, device)
        runner = runner_for(ctx.profile, MeasureOptions(estimate=True))
        assert isinstance(runner, EstimateRunner) and runner.measured_on == MCA_LABEL
        for bits in (32, 8):
            model = ctx.compress(CompressionPlan.uniform(digits_ctx.layers, bits, bits))
            built = ctx.build(ctx.lower(model))
            run = runner.run(built, model, digits_task)
            assert run.measured_on == "estimate (llvm-mca)" and is_estimate(run.measured_on)
            assert run.accuracy_source == "simulation (estimate)" and run.peak_rss is None
            ms[device, bits] = run.latency.median_ms

            estimates = mca.kernel_estimates(export_library(built, ctx.profile, tmp_path / f"{device}{bits}"),
                                             built.kernel_work, ctx.profile.mca["cpu"])
            cycles = sum(e.cycles_per_call * e.calls for e in estimates)
            assert run.latency.median_ms == pytest.approx(cycles / (ctx.profile.mca["clock_ghz"] * 1e9) * 1e3)
            counted = sum(e.macs * e.calls for e in estimates)
            layers = sum(m for m, _ in layer_macs(model, digits_task.example_input).values())
            assert not math.isnan(counted) and counted >= 0.95 * layers  # the conv / linear work is all there
    assert ms["rpi5", 8] < ms["rpi5", 32]  # SDOT: 4x the lanes of an fp32 FMA
    assert ms["rpi5", 8] < ms["rpi4", 8]


def test_a_reference_is_estimated_once_and_compared_alike(digits_task, digits_ctx):
    from autocomp.measure.base import Reference

    ctx = _ctx(digits_task, digits_ctx, "rpi5")
    runner = EstimateRunner(ctx.profile)
    model = ctx.compress(CompressionPlan.uniform(digits_ctx.layers, 8, 8))
    built = ctx.build(ctx.lower(model))
    reference = Reference("fp32", ctx.build(ctx.lower(digits_ctx.model)), digits_ctx.model)
    run = runner.run(built, model, digits_task, reference)
    ref_ms = reference.loaded["estimate_ms"]
    assert run.comparison.ratio == pytest.approx(run.latency.median_ms / ref_ms)
    reference.loaded["estimate_ms"] = 2 * ref_ms  # read back, not recomputed
    assert runner.run(built, model, digits_task, reference).comparison.ratio == pytest.approx(run.comparison.ratio / 2)


def test_evaluate_for_a_pi_without_a_board_says_estimate_llvm_mca(tmp_path):
    r = subprocess.run([sys.executable, "-m", "autocomp", "evaluate", "--device", "rpi4", "--task", "digits",
                        "--plan", "w8a8", "--estimate", "--json"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["measured_on"] == "estimate (llvm-mca)" and d["estimated"] is True and d["latency_ms"] > 0
