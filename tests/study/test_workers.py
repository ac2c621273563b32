"""Many workers on one study, started together as a farm's cron would: the baselines are enqueued
once, each worker samples with its own seed, no plan is measured twice, no two workers time at the
same moment on this machine, and each says what it ran. On SQLite and on a real PostgreSQL server."""

import itertools
import re

import optuna
import pytest

from helpers import output, start_search, trials_of

WORKERS, TRIALS = 3, 2


def _run_workers(storage, tmp_path):
    procs = [start_search(storage, "w", "--trials", str(TRIALS), "--jobs", "1", cwd=tmp_path) for _ in range(WORKERS)]
    for proc in procs:
        assert proc.wait(timeout=900) == 0, output(proc)
    return [output(proc) for proc in procs]


def _check(storage, logs):
    trials = trials_of(storage, "w")
    assert len(trials) == WORKERS * TRIALS  # the baselines were enqueued once, then taken once each
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    labels = [t.user_attrs["result"]["plan_label"] for t in trials]
    assert labels.count("fp32") == 1 and labels.count("w8a8") == 1
    measured = [t for t in trials if "reused_from_trial" not in t.user_attrs]
    keys = [t.user_attrs["result"]["plan_key"] for t in measured]
    assert len(keys) == len(set(keys))  # no plan measured twice
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) == WORKERS
    details = [(t.user_attrs["worker"]["pid"], t.user_attrs["result"]["measure_details"]) for t in measured]
    timing = [(pid, *d["timing_window"]) for pid, d in details]
    busy = timing + [(pid, *d["compile_window"]) for pid, d in details]
    for (pa, a0, a1), (pb, b0, b1) in itertools.product(timing, busy):
        # while a worker timed, no other worker timed or compiled
        assert pa == pb or a1 <= b0 or b1 <= a0, ((pa, a0, a1), (pb, b0, b1))
    seeds = set()
    for log in logs:
        m = re.search(r"this worker ran (\d+) trials .*\(sampler seed (\d+)\); study 'w' in (\S+) has (\d+) in all", log)
        assert m, log
        assert int(m.group(1)) == TRIALS and int(m.group(4)) >= TRIALS
        assert "***" in m.group(3) or "sqlite" in m.group(3)  # a password never printed
        seeds.add(m.group(2))
    assert len(seeds) == WORKERS


def test_three_workers_share_a_sqlite_study(tmp_path):
    db = str(tmp_path / "w.db")
    _check(db, _run_workers(db, tmp_path))


def test_three_workers_share_a_postgresql_study(postgres_url, tmp_path):
    logs = _run_workers(postgres_url, tmp_path)
    password = re.search(r":([^:@/]+)@", postgres_url).group(1)
    assert not any(password in log for log in logs)
    _check(postgres_url, logs)


@pytest.mark.parametrize("url, shown", [
    ("postgresql://bob:s3cret@db.example:5432/farm", "postgresql+psycopg://bob:***@db.example:5432/farm"),
    ("postgresql+psycopg2://bob:p%40ss@h/db", "postgresql+psycopg2://bob:***@h/db"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
])
def test_storage_urls_are_normalised_and_passwords_masked(url, shown):
    from autocomp.study.storage import normalise, redact

    assert redact(normalise(url, create=True)) == shown


def test_a_worker_waiting_for_the_machine_keeps_its_trials_alive(tmp_path, monkeypatch):
    """Parallel compiles in flight while the worker's next timing waits for another process that uses the
    cores (device/timing_lock.py) longer than the heartbeat grace: its trials keep beating (a thread each,
    storage.Heartbeats), so neither its own sweep nor another worker's fails them as stale, and the
    search ends with every trial measured. Before, its own sweep failed the trial still compiling and
    the search crashed telling it."""
    import time

    from autocomp.device.timing_lock import shared_use
    from helpers import wait_for

    monkeypatch.setenv("AUTOCOMP_HEARTBEAT_S", "1")  # a trial silent for 6 s is stale
    db = str(tmp_path / "h.db")
    proc = start_search(db, "h", "--trials", "6", "--jobs", "2", cwd=tmp_path)
    state = optuna.trial.TrialState

    def started():
        try:
            trials = trials_of(db, "h")
        except Exception:  # the study is not created yet
            return False
        return any(t.state == state.COMPLETE for t in trials) and any(t.state == state.RUNNING for t in trials)

    wait_for(started, proc)
    with shared_use():  # another process compiling: the worker's timings wait for it
        time.sleep(15)
    assert proc.wait(timeout=300) == 0, output(proc)
    assert [t.state for t in trials_of(db, "h")] == [state.COMPLETE] * 6, output(proc)
