"""rpi4 / rpi5 candidates measured end to end on emulated aarch64 devices, through a real tracker."""

import json
import os
import subprocess
import sys

import pytest

from autocomp.farm import start_farm


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


def test_rpi4_candidate_runs_on_the_emulated_device(emulated_farm):
    r = subprocess.run(
        [sys.executable, "-m", "autocomp", "evaluate", "--device", "rpi4", "--task", "digits", "--plan", "w8a8",
         "--tracker", emulated_farm.address, "--rpc-key", "rpi4-emulated", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert d["measured_on"] == f"emulated:rpi4-emulated@{emulated_farm.address}"
    assert d["target"]["mtriple"] == "aarch64-linux-gnu" and d["latency_ms"] > 0
    assert d["measure_details"]["agreement_same_class"] == 1.0  # aarch64 outputs match the simulation
    assert d["accuracy_source"].startswith("simulation, agreeing with the device")
    assert d["peak_rss_bytes"] is None  # not measured remotely, and not invented
    log = emulated_farm.log("rpi4").read_text()
    assert "load_module" in log  # the emulated aarch64 server loaded the library


def test_rpi5_fp16_candidate_computes_in_fp16_on_the_emulated_device(emulated_farm):
    """The Pi 5's A76 has fp16 arithmetic (+fullfp16): `w16` there is fp16 weights *and* fp16 compute,
    and the aarch64 outputs (fp16 sums) agree with the simulation (fp32 sums of fp16 values)."""
    r = subprocess.run(
        [sys.executable, "-m", "autocomp", "evaluate", "--device", "rpi5", "--task", "digits", "--plan", "w16",
         "--tracker", emulated_farm.address, "--rpc-key", "rpi5-emulated", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
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
    r = subprocess.run(
        [sys.executable, "-m", "autocomp", "evaluate", "--device", "rpi5", "--task", "digits", "--plan", "w8a8",
         "--tracker", emulated_farm.address, "--rpc-key", "rpi5-emulated", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert "scheduled (NEON SDOT dot product)" in d["kernels"].values()
    assert d["measure_details"]["agreement_same_class"] == 1.0
    assert d["measure_details"]["agreement_max_abs_err"] < 1e-3
