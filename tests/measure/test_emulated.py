"""An rpi4 candidate measured end to end on the emulated aarch64 device, through a real tracker."""

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
        farm.wait_for("rpi4-emulated", 1, timeout_s=180)
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
