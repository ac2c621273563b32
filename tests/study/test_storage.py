"""Opening one storage from many processes at the same moment, as workers started together by cron do:
the loser of the race to create the schema waits and opens it (without the retry, about 40% of such
processes failed here with "table alembic_version already exists" or a UNIQUE constraint)."""

import subprocess
import sys

import pytest

OPEN = "import sys; from autocomp.study import storage; storage.open_storage(sys.argv[1]); print('opened')"


def _open_together(url, n=6):
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    results = [p.communicate(timeout=120) for p in procs]
    return [err.strip().splitlines()[-1] if err.strip() else "" for out, err in results if "opened" not in out]


def test_workers_started_together_open_one_sqlite_storage(tmp_path):
    for round_ in range(4):
        assert _open_together(f"sqlite:///{tmp_path / f'r{round_}.db'}") == []


def test_workers_started_together_open_one_postgresql_storage(postgres_url):
    psycopg = pytest.importorskip("psycopg")
    base, _, _ = postgres_url.rpartition("/")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for round_ in range(3):
            conn.execute(f"CREATE DATABASE race{round_}")
    for round_ in range(3):
        assert _open_together(f"{base}/race{round_}") == []


# Each process waits for a start file, then asks the study for a trial (Optuna pops the WAITING ones
# first) and prints whether it got the enqueued one: exactly one process may.
POP = """
import os, sys, time
import optuna
from autocomp.study import storage
url, start = sys.argv[1], sys.argv[2]
study = optuna.load_study(study_name="q", storage=storage.open_storage(url))
while not os.path.exists(start):
    time.sleep(0.001)
trial = study.ask()
print("enqueued" if trial.suggest_float("x", 0.0, 2.0) == 1.0 else "sampled")
"""


def _pop_together(url, start, n=6):
    import optuna

    from autocomp.study import storage

    study = optuna.create_study(study_name="q", storage=storage.open_storage(url, create=True))
    study.enqueue_trial({"x": 1.0})
    procs = [subprocess.Popen([sys.executable, "-c", POP, url, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    import time

    time.sleep(8)  # every process has loaded the study and is waiting for the start
    start.write_text("go")
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in results]
    return sum(out.strip() == "enqueued" for out, _ in results)


def test_one_queued_trial_goes_to_one_worker_on_sqlite(tmp_path):
    """pysqlite starts a transaction only at the first write, so Optuna's read-then-claim of a WAITING
    trial was two statements apart: workers started together ran one baseline twice and the second to
    finish crashed ('Cannot tell a COMPLETE trial'). Transactions now take SQLite's write lock first."""
    for round_ in range(3):
        assert _pop_together(f"sqlite:///{tmp_path / f'q{round_}.db'}", tmp_path / f"go{round_}") == 1
