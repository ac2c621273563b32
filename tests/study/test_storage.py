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
