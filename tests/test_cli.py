"""The command line as a user meets it: one-line errors with exit 2, help everywhere, JSON contracts."""

import json
import re
import subprocess
import sys

import pytest


def autocomp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autocomp", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [[], ["devices"], ["search"], ["front"], ["export"], ["sensitivity"]])
def test_help_on_every_command(command):
    r = autocomp(*command, "--help")
    assert r.returncode == 0 and "usage: autocomp" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "--device", "nope"], "unknown device 'nope'"),
        (["search", "--task", "nope"], "unknown task 'nope'"),
        (["search", "--trials", "0"], "--trials must be at least 1"),
        (["search", "--task", "digits", "--storage", "/nonexistent/dir/s.db"], "storage directory /nonexistent/dir does not exist"),
        (["search", "--device", "rpi4"], "RPC tracker"),
        (["front", "--study", "x", "--storage", "/nonexistent.db"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = autocomp(*args, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocomp: error: ") and message in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_unreadable_storage_is_refused(tmp_path):
    bad = tmp_path / "not-a-db.db"
    bad.write_text("hello")
    r = autocomp("search", "--task", "digits", "--storage", str(bad), cwd=tmp_path)
    assert r.returncode == 2 and "is not a SQLite database" in r.stderr
    assert bad.read_text() == "hello"


def test_devices_lists_profiles_with_targets():
    r = autocomp("devices", "--json")
    assert r.returncode == 0
    devices = {d["name"]: d for d in json.loads(r.stdout)}
    assert devices["host"]["measure"] == "local" and devices["host"]["target"]["mcpu"] != "detect"
    assert devices["rpi4"]["rpc_key"] == "rpi4"
    table = autocomp("devices")
    assert "host CPU:" in table.stdout and "rpi4" in table.stdout


def test_search_front_export_on_digits(tmp_path):
    db = str(tmp_path / "s.db")
    # the commands' flow; the sensitivity step (and the knapsack's proposals) is test_e2e's and study/test_sensitivity's
    r = autocomp("search", "--task", "digits", "--trials", "3", "--storage", db, "--max-accuracy-drop", "0.05",
                 "--verbose", "--no-sensitivity", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "feasible Pareto front of 'digits@host'" in r.stdout
    assert re.search(r"trial 0: fp32 .* \(feasible\) \[.*compile \d+\.\d s", r.stdout), r.stdout  # --verbose: stage times
    assert "re-timed ms" in r.stdout and "timed together at" in r.stdout  # re-timed before it is shown
    again = autocomp("front", "--study", "digits@host", "--storage", db, "--remeasure")
    assert again.returncode == 0, again.stderr
    assert "re-timed ms" in again.stdout and "drift-corrected" in again.stdout
    picked = autocomp("front", "--study", "digits@host", "--storage", db, "--pick", "--max-memory-mb", "100", "--json")
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["accuracy"] == max(p["accuracy"] for p in json.loads(
        autocomp("front", "--study", "digits@host", "--storage", db, "--json").stdout))
    none = autocomp("front", "--study", "digits@host", "--storage", db, "--pick", "--max-latency-ms", "1e-9")
    assert none.returncode == 2 and "no feasible point" in none.stderr
    front = json.loads(autocomp("front", "--study", "digits@host", "--storage", db, "--json").stdout)
    assert front and all(p["accuracy_drop"] <= 0.05 + 1e-9 for p in front)
    from autocomp.reports.progress import SearchStatus  # what the progress bar said after the last trial
    from autocomp.study.search import load_study

    status = SearchStatus.of(load_study("digits@host", db))
    assert (status.running, status.failed, status.front_size) == (0, 0, len(front))
    assert status.best_speedup == pytest.approx(max(p["speedup"] for p in front))
    for p in front:
        assert {"trial", "latency_ms", "memory_bytes", "accuracy", "plan", "baseline_latency_ms",
                "baseline_memory_bytes", "baseline_accuracy", "speedup", "raw_latency_ms", "latency_ratio",
                "retimed_ms", "retimed_speedup"} <= set(p)
        assert p["retimed_ms"] > 0 and p["latency_ratio"] > 0
    out = tmp_path / "out"
    r = autocomp("export", "--study", "digits@host", "--storage", db, "--trial", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    again = autocomp("export", "--study", "digits@host", "--storage", db, "--trial", "1", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    missing = autocomp("export", "--study", "digits@host", "--storage", db, "--trial", "99", "--out", str(tmp_path / "o2"))
    assert missing.returncode == 2 and "trial 99" in missing.stderr and not (tmp_path / "o2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_search_config_file_flags_override_it_and_front_prints_it(tmp_path):
    import optuna

    db = tmp_path / "s.db"
    (tmp_path / "search.toml").write_text(
        f'task = "digits"\ntrials = 1\nmax-accuracy-drop = 0.05\nno-sensitivity = true\n'
        f'storage = "{db}"\nstudy = "from-file"\n')
    r = autocomp("search", "--config", "search.toml", "--trials", "2", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "this worker ran 2 trials" in r.stdout  # the flag, not the file's 1
    assert "Warning" not in r.stderr, r.stderr  # the libraries' known noise is silenced (--verbose shows it)
    study = optuna.load_study(study_name="from-file", storage=f"sqlite:///{db}")
    assert sum(t.state.is_finished() for t in study.trials) == 2 and "sensitivity" not in study.user_attrs
    shown = autocomp("front", "--study", "from-file", "--storage", str(db), "--config")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "trials = 2" in lines and 'task = "digits"' in lines and "max-accuracy-drop = 0.05" in lines
    assert "sensitivity = false" in lines and f'storage = "sqlite:///{db}"' in lines
    as_json = json.loads(autocomp("front", "--study", "from-file", "--storage", str(db), "--config", "--json").stdout)
    assert as_json["trials"] == 2 and as_json["study"] == "from-file" and as_json["sensitivity"] is False
    (tmp_path / "typo.toml").write_text('task = "digits"\nmax-acuracy-drop = 0.05\n')
    bad = autocomp("search", "--config", "typo.toml", cwd=tmp_path)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "unknown key 'max-acuracy-drop'" in bad.stderr
    assert "typo.toml" in bad.stderr and not (tmp_path / "runs").exists()  # no study file written


def test_front_config_of_a_study_from_before_stored_configs(tmp_path):
    import optuna

    db = tmp_path / "old.db"
    optuna.create_study(study_name="old", storage=f"sqlite:///{db}", directions=["minimize", "minimize", "maximize"])
    r = autocomp("front", "--study", "old", "--storage", str(db), "--config")
    assert r.returncode == 2 and "study 'old' has no stored config" in r.stderr
    r = autocomp("front", "--study", "old", "--storage", str(db), "--config", "--pick")
    assert r.returncode == 2 and "--config prints the study's stored config only" in r.stderr

def test_evaluate_json_contract(tmp_path):
    r = autocomp("evaluate", "--task", "digits", "--plan", "w4a8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("latency_ms", "param_bytes", "arena_bytes", "peak_rss_bytes", "accuracy_sim", "accuracy_compiled"):
        assert isinstance(d[key], (int, float)) and d[key] > 0, key
    assert [layer["weight_dtype"] for layer in d["layers"]] == ["int4x2"] * 3
    assert d["layers"][0]["activation_dtype"] == "int8" and d["layers"][1]["activation_dtype"] == "uint8"
    assert abs(d["accuracy_compiled"] - d["accuracy_sim"]) <= 0.005
    # a plan file (here: the plan from that output) evaluates the same plan
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"plan": d["plan"]}))
    again = json.loads(autocomp("evaluate", "--task", "digits", "--plan", str(plan_file), "--json").stdout)
    assert again["plan_key"] == d["plan_key"] and again["accuracy_compiled"] == d["accuracy_compiled"]


def test_evaluate_rejects_a_plan_for_another_model(tmp_path):
    plan = {"_type": "autocomp.CompressionPlan", "_version": 1, "layers": [{"name": "nope", "w_bits": 8, "a_bits": 8, "prune": 0}]}
    (tmp_path / "p.json").write_text(json.dumps(plan))
    r = autocomp("evaluate", "--task", "digits", "--plan", str(tmp_path / "p.json"))
    assert r.returncode == 2 and "'nope' is not a searchable layer" in r.stderr
    r = autocomp("evaluate", "--task", "digits", "--plan", "w3a3")
    assert r.returncode == 2 and "neither one of" in r.stderr


@pytest.mark.parametrize("device, module", [("jetson-orin-nano", "cuda"), ("mali-g76", "opencl"), ("adreno-640", "opencl")])
def test_gpu_profiles_compile_device_code(tmp_path, device, module):
    out = tmp_path / device
    r = autocomp("evaluate", "--device", device, "--task", "digits", "--plan", "w16", "--compile-only", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    manifest = json.loads(r.stdout)
    art = manifest["artifact"]
    assert module in art["modules"] and "llvm" in art["modules"]  # device code and host code
    assert art["target"]["kind"] == module and manifest["measured_on"] is None
    assert (out / art["library"]).stat().st_size > 0 and (out / "params.bin").is_file()


def test_cross_compiled_library_is_aarch64(tmp_path):
    out = tmp_path / "rpi4"
    r = autocomp("evaluate", "--device", "rpi4", "--task", "digits", "--plan", "w8a8", "--compile-only", "--out", str(out))
    assert r.returncode == 0, r.stderr
    info = subprocess.run(["file", str(out / "model.so")], capture_output=True, text=True).stdout
    assert "ARM aarch64" in info and "shared object" in info


ESTIMATE_PROFILE = """name = "board"
description = "a board nobody can reach (tests)"
kind = "cpu"
measure = "rpc"
rpc_key = "board"
[target]
kind = "llvm"
mtriple = "aarch64-linux-gnu"
mcpu = "cortex-a72"
[estimate]
fp32_gflops = 10.0
int8_gops = 20.0
"""


def test_unreachable_device_needs_an_explicit_estimate_and_it_is_labelled(tmp_path):
    import os

    (tmp_path / "board.toml").write_text(ESTIMATE_PROFILE)
    env = dict(os.environ, AUTOCOMP_PROFILE_PATH=str(tmp_path))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "autocomp", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)

    r = run("search", "--device", "board", "--task", "digits", "--trials", "1")
    assert r.returncode == 2 and "--tracker" in r.stderr and "--estimate" in r.stderr
    r = run("evaluate", "--device", "board", "--task", "digits", "--plan", "w8a8", "--estimate", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["measured_on"] == "estimate" and d["estimated"] is True
    assert d["accuracy_source"] == "simulation (estimate)" and d["peak_rss_bytes"] is None
    r = run("search", "--device", "board", "--task", "digits", "--trials", "3", "--estimate", "--max-accuracy-drop", "0.05")
    assert r.returncode == 0, r.stderr
    assert "(estimated)" in r.stdout
    front = json.loads(run("front", "--study", "digits@board", "--json").stdout)
    assert front and all(p["estimated"] and p["measured_on"] == "estimate" for p in front)
