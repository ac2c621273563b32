"""Helpers shared by several test modules (conftest.py holds the shared fixtures)."""

from __future__ import annotations

from typing import Any

import numpy as np

from autocomp.measure.base import first_output


def unscheduled_outputs(lowered: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs from TVM's own default build (no autocomp pass or schedule): the reference
    a scheduled kernel must reproduce."""
    import tvm
    from tvm import relax

    ex = tvm.compile(lowered.mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return first_output(vm["main"](tvm.runtime.tensor(x), *[tvm.runtime.tensor(p) for p in lowered.params]))


def start_search(storage: str, study: str, *args: str, cwd: Any = None) -> Any:
    """A real `autocomp search` process on the digits task (its own process group, so a kill takes its
    compile workers too); stdout and stderr go to files beside it. Without the sensitivity step and the
    screening: these tests are about the study's mechanics, and count its trials (tests/study/test_sensitivity.py
    has the step, tests/study/test_search.py the screening)."""
    import os
    import subprocess
    import sys
    import tempfile

    out = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "autocomp", "search", "--task", "digits", "--device", "host", "--storage", storage,
           "--study", study, "--max-accuracy-drop", "0.05", "--quiet", "--no-sensitivity", "--no-screen", *args]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.log = out.name
    return proc


def output(proc: Any) -> str:
    with open(proc.log) as f:
        return f.read()


def wait_for(condition: Any, proc: Any, timeout_s: float = 240.0) -> None:
    """Poll the study until `condition()` holds; fail if the search process ended first or too late."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the search ended before the moment to kill it:\n{output(proc)}"
        assert time.monotonic() < deadline, "the search did not reach the moment to kill it"
        time.sleep(0.2)


def kill(proc: Any) -> None:
    """SIGKILL the search and its compile workers, as a crash or an OOM kill would."""
    import os
    import signal

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def trials_of(storage: str, study: str) -> list[Any]:
    """The study's trials as stored (read with Optuna's own load_study, not through autocomp's Study).

    The storage is opened with autocomp's open_storage: a test polling while a worker is still
    creating the tables races it, and plain Optuna then fails with "table ... already exists" (the
    retry on that race is open_storage's)."""
    import optuna

    from autocomp.study.storage import normalise, open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rdb = open_storage(normalise(storage, create=False))
    return optuna.load_study(study_name=study, storage=rdb).get_trials()


def tiny_encoder() -> Any:
    """A small transformer classifier (the rows of an 8x8 image as tokens) with random weights: two
    `nn.TransformerEncoderLayer`s, as a user brings them (issue 18)."""
    import torch
    from torch import nn

    class RowEncoder(nn.Module):
        def __init__(self, d: int = 32, heads: int = 4) -> None:
            super().__init__()
            self.embed = nn.Linear(8, d)
            self.pos = nn.Parameter(torch.randn(1, 8, d) * 0.1)
            layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(d, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.encoder(self.embed(x.reshape(x.shape[0], 8, 8)) + self.pos)
            return self.head(h.mean(dim=1))

    torch.manual_seed(0)
    return RowEncoder().eval()
