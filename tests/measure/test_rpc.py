"""A real farm on loopback: a TVM tracker and RPC servers of two keys, measurements through it."""

import json
import os
import subprocess
import sys

import optuna
import pytest

from autocomp.errors import UserError
from autocomp.measure.farm import start_farm
from autocomp.measure.rpc import parse_tracker, tracker_summary
from autocomp.measure.base import MeasureOptions
from autocomp.measure.runners import runner_for
from autocomp.device.profiles import load_profile
from autocomp.study.search import SearchConfig, load_study, prepare_search

PROFILE = """name = "x86-farm"
description = "x86 servers behind a tracker (tests)"
kind = "cpu"
measure = "rpc"
rpc_key = "x86-farm"
[target]
kind = "llvm"
mcpu = "detect"
[measurement]
number = 3
repeat = 5
min_repeat_ms = 2
warmup = 1
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    base = tmp_path_factory.mktemp("farm")
    (base / "profiles").mkdir()
    (base / "profiles" / "x86-farm.toml").write_text(PROFILE)
    farm = start_farm(base / "logs")
    try:
        farm.add_server("a", "x86-farm")
        farm.add_server("b", "x86-farm")
        farm.add_server("other", "other-key")
        farm.add_server("hung", "hung-key")
        farm.wait_for("x86-farm", 2, timeout_s=120)
        farm.wait_for("hung-key", 1, timeout_s=120)
        farm.wait_for("other-key", 1, timeout_s=120)
        farm.profiles = base / "profiles"
        yield farm
    finally:
        farm.stop()


def load_count(farm, name):
    return farm.log(name).read_text().count("load_module")


def test_tracker_summary_and_devices_command(farm):
    summary = tracker_summary(farm.address)
    assert summary["x86-farm"]["total"] == 2 and summary["other-key"]["total"] == 1
    env = dict(os.environ, AUTOCOMP_PROFILE_PATH=str(farm.profiles))
    r = subprocess.run([sys.executable, "-m", "autocomp", "devices", "--tracker", farm.address, "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    devices = {d["name"]: d for d in json.loads(r.stdout)}
    assert devices["x86-farm"]["tracker"]["total"] == 2
    assert devices["rpi4"]["tracker"] == {"total": 0, "free": 0, "pending": 0, "busy": 0}
    assert devices["x86-farm"]["tracker"]["busy"] == 2 - devices["x86-farm"]["tracker"]["free"]


def test_unreachable_tracker_and_missing_key_are_clear_errors(farm, monkeypatch):
    monkeypatch.setenv("AUTOCOMP_PROFILE_PATH", str(farm.profiles))
    with pytest.raises(UserError, match="cannot reach the RPC tracker"):
        runner_for(load_profile("x86-farm"), MeasureOptions(tracker="127.0.0.1:1"))
    with pytest.raises(UserError, match="no device with key 'rpi4'"):
        runner_for(load_profile("rpi4"), MeasureOptions(tracker=farm.address))
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_tracker("localhost")


def test_search_measures_through_the_tracker_and_survives_a_killed_server(farm, monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOCOMP_PROFILE_PATH", str(farm.profiles))
    before = {n: load_count(farm, n) for n in ("a", "b", "other")}
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = SearchConfig(device="x86-farm", task="digits", trials=5, storage=url, study="farm",
                       tracker=farm.address, max_accuracy_drop=0.5, screen=False)  # every trial through the farm
    killed = []

    def kill_one(done, total, trial):
        if done == 2 and not killed:
            farm.kill_server("a")
            killed.append("a")

    outcome = prepare_search(cfg).run(kill_one)
    assert outcome.trials_run == 5 and outcome.failed == 0  # no trial lost to the dead server
    trials = load_study("farm", url).get_trials()
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    results = [t.user_attrs["result"] for t in trials]
    assert all(r["measured_on"] == f"rpc:x86-farm@{farm.address}" for r in results)
    assert all(r["accuracy_source"].startswith("simulation, agreeing with the device") for r in results)
    # server-side evidence: the x86-farm servers loaded one library per measured (not reused) trial
    measured = sum("reused_from_trial" not in t.user_attrs for t in trials)
    loads = {n: load_count(farm, n) - before[n] for n in ("b", "other")}
    loads["a"] = farm.log("a").read_text().count("load_module") - before["a"]
    assert loads["a"] + loads["b"] >= measured
    assert loads["other"] == 0  # the other key's device was never used
    farm.add_server("a", "x86-farm")  # leave the farm as the other tests expect it
    farm.wait_for("x86-farm", 2, timeout_s=120)


def test_a_device_that_never_answers_fails_the_candidate_with_the_reason(farm, monkeypatch, digits_ctx, digits_task):
    import signal

    from autocomp.build.compile import build
    from autocomp.errors import CandidateError
    from autocomp.lower import lower

    (farm.profiles / "hung.toml").write_text(PROFILE.replace("x86-farm", "hung").replace('rpc_key = "hung"', 'rpc_key = "hung-key"'))
    monkeypatch.setenv("AUTOCOMP_PROFILE_PATH", str(farm.profiles))
    profile = load_profile("hung")
    runner = runner_for(profile, MeasureOptions(tracker=farm.address, timeout_s=5, retries=1))
    built = build(lower(digits_ctx.model, digits_task.example_input), profile)
    os.killpg(farm.servers["hung"].pid, signal.SIGSTOP)  # registered, but answers nothing
    try:
        with pytest.raises(CandidateError, match="no device of key 'hung-key'.*attempt 2: no answer within 5 s"):
            runner.run(built, digits_ctx.model, digits_task)
    finally:
        os.killpg(farm.servers["hung"].pid, signal.SIGCONT)
