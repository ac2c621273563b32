"""An export is all or nothing, and checkable: `autocomp verify` against the manifest's sha256, and an
export killed while writing leaves no artifact (the next one cleans its temporary directory)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def autocomp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autocomp", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    db = str(d / "s.db")
    # a trial to export: the sensitivity step is not what these tests are about
    r = autocomp("search", "--task", "digits", "--trials", "1", "--storage", db, "--study", "e", "--quiet",
                 "--no-sensitivity", cwd=d)
    assert r.returncode == 0, r.stderr
    return d, db


def test_verify_accepts_an_export_and_names_each_change(study):
    d, db = study
    out = d / "ok"
    assert autocomp("export", "--study", "e", "--storage", db, "--trial", "0", "--out", str(out)).returncode == 0
    r = autocomp("verify", str(out))
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert r.returncode == 0 and f"all {len(files)} files match" in r.stdout
    with open(out / "params.bin", "r+b") as f:  # one flipped byte
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    (out / "model.onnx").unlink()
    (out / "extra.txt").write_text("not from the export")
    r = autocomp("verify", str(out))
    assert r.returncode == 1
    assert "params.bin: differs from the manifest" in r.stdout and "model.onnx: missing" in r.stdout
    assert "extra.txt: not in the manifest" in r.stdout
    r = autocomp("verify", str(d))
    assert r.returncode == 2 and "has no manifest.json" in r.stderr


def test_an_export_killed_while_writing_leaves_nothing(study):
    d, db = study
    out = d / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "autocomp", "export", "--study", "e", "--storage", db, "--trial", "0",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(d.glob(".killed.tmp-*")):  # it has started writing
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    r = autocomp("export", "--study", "e", "--storage", db, "--trial", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert autocomp("verify", str(out)).returncode == 0
    assert not list(d.glob(".killed.tmp-*"))  # the dead writer's temporary directory is gone
