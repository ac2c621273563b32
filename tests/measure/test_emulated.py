"""rpi4 / rpi5 candidates measured end to end on emulated aarch64 devices, through a real tracker."""

import json
import os
import subprocess
import sys

import pytest

from autocomp.measure.farm import start_farm


@pytest.fixture(scope="module")
def emulated_farm(tmp_path_factory):
    farm = start_farm(tmp_path_factory.mktemp("emu") / "logs")
    try:
        farm.add_server("rpi4", "rpi4-emulated", emulated=True)
        farm.add_server("rpi5", "rpi5-emulated", emulated=True)
        farm.wait_for("rpi4-emulated", 1, timeout_s=180)
        farm.wait_for("rpi5-emulated", 1, timeout_s=180)
        yield farm
    finally:
        farm.stop()


def evaluate_emulated(farm, device, plan, task="digits"):
    """`autocomp evaluate --json` of `task` (default: digits) on the `<device>-emulated` server of `farm`."""
    r = subprocess.run(
        [sys.executable, "-m", "autocomp", "evaluate", "--device", device, "--task", task, "--plan", plan,
         "--tracker", farm.address, "--rpc-key", f"{device}-emulated", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_rpi4_candidate_runs_on_the_emulated_device(emulated_farm):
    """int8 convs on the A72 (no SDOT) run the int16-product kernels: integer arithmetic, so the aarch64
    outputs match the simulation as closely as the x86 ones do."""
    d = evaluate_emulated(emulated_farm, "rpi4", "w8a8")
    assert d["measured_on"] == f"emulated:rpi4-emulated@{emulated_farm.address}"
    assert d["target"]["mtriple"] == "aarch64-linux-gnu" and d["latency_ms"] > 0
    assert any(v.startswith("scheduled (NEON int16 products") for v in d["kernels"].values()), d["kernels"]
    assert d["measure_details"]["agreement_same_class"] == 1.0  # aarch64 outputs match the simulation
    assert d["measure_details"]["agreement_max_abs_err"] < 1e-3
    assert d["accuracy_source"].startswith("simulation, agreeing with the device")
    assert d["peak_rss_bytes"] is None  # not measured remotely, and not invented
    log = emulated_farm.log("rpi4").read_text()
    assert "load_module" in log  # the emulated aarch64 server loaded the library


def test_rpi5_fp16_candidate_computes_in_fp16_on_the_emulated_device(emulated_farm):
    """The Pi 5's A76 has fp16 arithmetic (+fullfp16): `w16` there is fp16 weights *and* fp16 compute,
    and the aarch64 outputs (fp16 sums) agree with the simulation (fp32 sums of fp16 values)."""
    d = evaluate_emulated(emulated_farm, "rpi5", "w16")
    assert d["measured_on"] == f"emulated:rpi5-emulated@{emulated_farm.address}"
    assert d["compute"] == "native"
    assert {(layer["weight_dtype"], layer["activation_dtype"], layer["compute"]) for layer in d["layers"]} == {
        ("float16", "float16", "float16")}
    assert d["measure_details"]["agreement_same_class"] >= 0.995
    assert d["accuracy_source"].startswith("simulation, agreeing with the device")
    assert "load_module" in emulated_farm.log("rpi5").read_text()


def test_rpi5_sdot_candidate_is_exact_on_the_emulated_device(emulated_farm):
    """int8 convs on the A76 run SDOT kernels (uint8 inputs re-centred to int8): integer arithmetic, so
    the aarch64 outputs match the simulation as closely as the x86 ones do."""
    for plan in ("w8a8", "w4a8"):  # w4a8: the weights unpacked inside the SDOT kernels (passes/packed_int4.py)
        d = evaluate_emulated(emulated_farm, "rpi5", plan)
        assert "scheduled (NEON SDOT dot product)" in d["kernels"].values()
        assert (plan == "w4a8") == any("_int4_" in k for k in d["kernels"]), d["kernels"]
        assert d["measure_details"]["agreement_same_class"] == 1.0
        assert d["measure_details"]["agreement_max_abs_err"] < 1e-3


def test_rpi4_fp32_candidate_runs_winograd_convs_on_the_emulated_device(emulated_farm):
    """fp32 3x3 convs on aarch64 (NEON, 4 lanes) take the Winograd kernel with its per-call weight
    transform (profile default `auto`; FashionNet's 28x28 convs have enough tiles, digits' 8x8 do not);
    the board's outputs agree with torch's."""
    d = evaluate_emulated(emulated_farm, "rpi4", "fp32", task="fashion-mnist")
    assert "scheduled (winograd F(4x4,3x3), weights transformed per call)" in d["kernels"].values(), d["kernels"]
    assert d["measure_details"]["agreement_same_class"] == 1.0
    assert d["measure_details"]["agreement_max_abs_err"] < 1e-4


def test_rpi4_int16_product_kernels_are_exact_for_4_and_16_channel_groups(emulated_farm):
    """Both forms of the A72's int8 conv (16 channels per lane where C % 16 == 0, else 4) give the
    simulation's integers on the emulated board: 4- and 12-channel inputs take the 4-channel form, a
    16-channel input the 16-channel one."""
    import torch
    from torch import nn

    from autocomp.candidate import evaluate_plan, prepare
    from autocomp.device.profiles import load_profile
    from autocomp.measure.base import MeasureOptions
    from autocomp.plan import CompressionPlan
    from autocomp.tasks import Task

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(32, 10)).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(48, 4, 12, 12, generator=gen)
    task = Task(name="smull-groups", build_model=lambda: net, example_input=x[:1], calib_data=x[:16],
                eval_inputs=x[16:], eval_targets=net(x[16:]).argmax(1))
    options = MeasureOptions(tracker=emulated_farm.address, rpc_key="rpi4-emulated")
    ctx = prepare(task, load_profile("rpi4"), options)
    result, _model, built = evaluate_plan(ctx, CompressionPlan.uniform(ctx.layers, 8, 8))
    labels = sorted(v for v in built.kernels.values() if "int16 products" in v)
    assert labels == 2 * ["scheduled (NEON int16 products (smull + saddlp))"] + [
        "scheduled (NEON int16 products (smull + smlal + saddlp))"], built.kernels
    assert result.measure_details["agreement_same_class"] == 1.0
    assert result.measure_details["agreement_max_abs_err"] < 1e-4
    # 4-bit weights, unpacked inside the same kernels (passes/packed_int4.py): the same integers
    result, _model, built = evaluate_plan(ctx, CompressionPlan.uniform(ctx.layers, 4, 8))
    assert sorted(v for k, v in built.kernels.items() if "_int4_" in k) == labels, built.kernels
    assert result.measure_details["agreement_same_class"] == 1.0
    assert result.measure_details["agreement_max_abs_err"] < 1e-4
    # shared 2-bit weights: indices unpacked and the codebook looked up inside the same kernels (a per-channel
    # weight sum folded for the re-centred inputs, precompute.py)
    result, _model, built = evaluate_plan(ctx, CompressionPlan.uniform(ctx.layers, 2, 8, shared=True))
    assert sorted(v for k, v in built.kernels.items() if "_int2_" in k and "_cb" in k) == labels, built.kernels
    assert result.measure_details["agreement_same_class"] == 1.0
    assert result.measure_details["agreement_max_abs_err"] < 1e-4
