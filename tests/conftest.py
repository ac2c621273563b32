"""Shared fixtures: the small digits task on the real host profile."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
# tests must not read or grow the user's tuning database (subprocesses inherit this)
os.environ["AUTOCOMP_TUNING_DIR"] = tempfile.mkdtemp(prefix="autocomp-test-tuning-")
atexit.register(shutil.rmtree, os.environ["AUTOCOMP_TUNING_DIR"], ignore_errors=True)
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


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 for the session (Debian's postgresql, which `make test`
    installs), with a password, so the tests see the URL a farm uses. Skipped, with the reason, only
    where no server can be started here."""
    import glob
    import secrets
    import shutil
    import socket
    import subprocess

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql)")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="autocomp-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(8)
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as f:
        f.write(password)
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    try:
        subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "autocomp", "-A", "scram-sha-256",
                        f"--pwfile={pwfile}"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"PostgreSQL could not start here: {exc} {detail.decode(errors='replace')[-300:]}")
    yield f"postgresql://autocomp:{password}@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)
