"""kill -9 at any moment loses nothing: a real search process is killed inside a baseline, between
trials and with parallel compiles in flight; each rerun of the same command finds the dead worker's
trial, fails it, measures its plan again, and runs the trials it was asked for."""

import subprocess
import sys

import optuna
import pytest

from autocomp.errors import UserError
from helpers import kill, output, start_search, trials_of, wait_for

STATE = optuna.trial.TrialState


def _trials(db):
    try:
        return trials_of(db, "k")
    except (KeyError, UserError):  # the study (or its file) is not created yet
        return []


def _running_with_worker(db, n=1):
    """n trials running, each with its worker and its plan recorded (the moment the candidate starts)."""
    return sum(t.state == STATE.RUNNING and {"worker", "plan"} <= set(t.user_attrs) for t in _trials(db)) >= n


def _chosen(trial):
    """A trial's plan, or the parameters it was enqueued with; None if stopped before choosing one."""
    return trial.user_attrs.get("plan") or trial.system_attrs.get("fixed_params")


def _completed(db):
    return {t.number: t.user_attrs["result"] for t in _trials(db) if t.state == STATE.COMPLETE}


def _rerun(db, tmp_path, trials):
    r = subprocess.run([sys.executable, "-m", "autocomp", "search", "--task", "digits", "--storage", db,
                        "--study", "k", "--max-accuracy-drop", "0.05", "--quiet", "--trials", str(trials)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"this worker ran {trials} trials" in r.stdout
    return r


def _check_after_rerun(db, before):
    trials = _trials(db)
    assert not [t.number for t in trials if t.state in (STATE.RUNNING, STATE.WAITING)]
    after = _completed(db)
    assert {n: after.get(n) for n in before} == before  # every completed trial kept, as it was
    labels = [r["plan_label"] for r in after.values()]
    assert "fp32" in labels and "w8a8" in labels  # a killed baseline was measured again
    return trials


def test_kill_9_at_any_moment_loses_nothing(tmp_path):
    db = str(tmp_path / "k.db")

    # 1. inside the first baseline (fp32)
    proc = start_search(db, "k", "--trials", "4", "--jobs", "1", cwd=tmp_path)
    wait_for(lambda: _running_with_worker(db), proc)
    kill(proc)
    killed = [t for t in _trials(db) if t.state == STATE.RUNNING]
    assert len(killed) == 1 and "fp32" not in [r["plan_label"] for r in _completed(db).values()]
    waiting = sum(t.state == STATE.WAITING for t in _trials(db))  # the other baselines and proposals
    _rerun(db, tmp_path, waiting + 1)  # the waiting ones, then the killed one, queued again
    trials = _check_after_rerun(db, {})
    assert trials[killed[0].number].state == STATE.FAIL  # the dead worker's trial, failed by the rerun

    # 2. between trials, after some completed
    before = _completed(db)
    proc = start_search(db, "k", "--trials", "6", "--jobs", "1", cwd=tmp_path)
    wait_for(lambda: len(_completed(db)) >= len(before) + 1 and _running_with_worker(db), proc)
    kill(proc)
    before = _completed(db)
    _rerun(db, tmp_path, 1)
    _check_after_rerun(db, before)

    # 3. with two candidates compiling in worker processes
    before = _completed(db)
    proc = start_search(db, "k", "--trials", "4", "--jobs", "2", cwd=tmp_path)
    wait_for(lambda: _running_with_worker(db, 2), proc)
    kill(proc)
    in_flight = [t.user_attrs["plan"] for t in _trials(db) if t.state == STATE.RUNNING]
    assert len(in_flight) == 2, output(proc)
    before = _completed(db)
    _rerun(db, tmp_path, 2)
    trials = _check_after_rerun(db, before)
    measured = [t.user_attrs["plan"] for t in trials if t.number not in before and t.state == STATE.COMPLETE]
    assert all(plan in measured for plan in in_flight)  # the killed candidates' plans were measured


def test_ctrl_c_is_one_line_and_the_interrupted_trial_runs_next(tmp_path):
    import os
    import signal

    db = str(tmp_path / "k.db")
    proc = start_search(db, "k", "--trials", "4", "--jobs", "1", cwd=tmp_path)
    wait_for(lambda: _running_with_worker(db), proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    assert proc.wait(timeout=120) == 130
    lines = output(proc).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocomp: interrupted"), lines
    trials = _trials(db)
    assert not [t for t in trials if t.state == STATE.RUNNING]
    assert len([t for t in trials if t.state == STATE.COMPLETE]) < 4  # it stopped
    waiting = [_chosen(t) for t in trials if t.state == STATE.WAITING]
    stopped = [t for t in trials if t.state == STATE.FAIL]
    assert not [t.user_attrs["error"] for t in stopped if "error" in t.user_attrs]  # none failed as a candidate
    assert all(_chosen(t) in waiting for t in stopped if _chosen(t) is not None)  # its plan: queued again
    _rerun(db, tmp_path, len(waiting))
    assert not [t for t in _trials(db) if t.state in (STATE.RUNNING, STATE.WAITING)]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # Optuna's heartbeat API
def test_a_frozen_worker_goes_on_after_its_trials_were_failed_as_stale(tmp_path, monkeypatch):
    """A worker frozen past the heartbeat grace (SIGSTOP: a suspended laptop, a paused VM) while two
    trials compile: another worker's sweep fails them and queues their plans again; resumed, the worker
    says so in one line per trial, goes on with its queue, and exits 0 (it used to crash telling them)."""
    import os
    import signal
    import time

    from autocomp.study.storage import normalise, requeue

    monkeypatch.setenv("AUTOCOMP_HEARTBEAT_S", "1")  # the worker beats every second; stale after 6 s
    db = str(tmp_path / "f.db")
    proc = start_search(db, "f", "--trials", "4", "--jobs", "2", cwd=tmp_path)

    def trials():
        try:
            return trials_of(db, "f")
        except (KeyError, UserError):
            return []

    def beating():  # Optuna fails as stale only a trial with a heartbeat on record
        import sqlite3

        with sqlite3.connect(db) as con:
            return {row[0] for row in con.execute("SELECT trial_id FROM trial_heartbeats")}

    wait_for(lambda: sum(t.state == STATE.RUNNING and "plan" in t.user_attrs and t._trial_id in beating()
                         for t in trials()) == 2, proc)
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        time.sleep(8)
        other = optuna.storages.RDBStorage(normalise(db, create=False), heartbeat_interval=1, grace_period=6,
                                           heartbeat_stale_trial_callback=requeue)  # another worker's view
        optuna.storages.fail_stale_trials(optuna.load_study(study_name="f", storage=other))
        stale = [t for t in trials() if t.state == STATE.FAIL]
        assert len(stale) == 2
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=300) == 0, output(proc)
    assert output(proc).count("was failed as stale by another worker") == 2
    after = trials()
    assert not [t for t in after if t.state == STATE.RUNNING]
    kept = [t.user_attrs.get("plan") for t in after if t.state in (STATE.COMPLETE, STATE.WAITING)]
    assert all(t.user_attrs["plan"] in kept for t in stale)  # each plan measured or queued for the next run
