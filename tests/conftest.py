"""Shared fixtures: the small digits task on the real host profile."""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
# tests must not read or grow the user's tuning database (subprocesses inherit this)
os.environ["AUTOCOMP_TUNING_DIR"] = tempfile.mkdtemp(prefix="autocomp-test-tuning-")
# TVM's thread pool starts once per process: start it as the CLI's timing does (one thread per core)
from autocomp.device.hostcpu import physical_cores  # noqa: E402

os.environ["TVM_NUM_THREADS"] = str(physical_cores())


@pytest.fixture(scope="session")
def digits_task():
    from autocomp.tasks import load_task

    return load_task("digits")


@pytest.fixture(scope="session")
def host():
    from autocomp.device.profiles import load_profile

    return load_profile("host")


@pytest.fixture(scope="session")
def digits_ctx(digits_task, host):
    from autocomp.candidate import prepare

    return prepare(digits_task, host)


@pytest.fixture()
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'study.db'}"
