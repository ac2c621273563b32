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
