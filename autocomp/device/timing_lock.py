"""One timing at a time on this machine: a file lock that every local timing holds.

Why: two processes timing on the same cores at once inflate each other's latencies 200-500x (two TVM
thread pools spinning on two cores), and several `autocomp search` workers on one study, or a search
beside a benchmark, do exactly that. The lock is held only while a latency is timed (and while tile
tuning times kernels): compiles, accuracy runs and memory probes still run in parallel.

An `fcntl` lock under the user cache: released by the kernel when its holder dies (kill -9 included),
so a killed worker never leaves it taken. Shared by every profile measured locally, since they all
time the same CPU.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autocomp.paths import cache_dir


def lock_path() -> Path:
    return Path(os.environ.get("AUTOCOMP_LOCK_DIR", cache_dir() / "locks")) / "local-timing.lock"


@contextmanager
def timing_lock() -> Iterator[float]:
    """Hold the machine's timing lock; yields the seconds spent waiting for it."""
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        start = time.perf_counter()
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - start
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
