"""One timing at a time on this machine, and nothing else of ours on the cores meanwhile.

Why: two processes timing on the same cores at once inflate each other's latencies 200-500x (two TVM
thread pools spinning on two cores), and a compile or an accuracy run beside a timing inflates it
too. Several `autocomp search` workers on one study, or a search beside a benchmark, do exactly that.

A readers-writer lock on one file under the user cache (`fcntl.flock`): work that uses the cores but
does not time (compiles, accuracy runs, memory probes) holds it shared, so such work runs in parallel;
a timing holds it exclusively, so it waits for that work to finish and new work waits for it. A
process converts its own shared hold into the exclusive one and back on the same file descriptor
(two descriptors of one process would wait for each other). The kernel drops the lock when its
holder dies, kill -9 included. Every profile measured locally shares it: they all time this CPU.

A search with parallel compiles (study/buildpool.py) holds it shared for its whole pool and stops
its workers before it converts to exclusive; the workers themselves never take it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autocomp.paths import cache_dir


def lock_path() -> Path:
    return Path(os.environ.get("AUTOCOMP_LOCK_DIR", cache_dir() / "locks")) / "local-timing.lock"


class _Hold:
    """This process's hold on the machine lock: one descriptor, a count of shared and exclusive users."""

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self.handle = None
        self.shared = 0
        self.exclusive = 0
        self.delegated = False  # a compile worker: its parent holds the lock for it

    def _flock(self, mode: int) -> None:
        if self.delegated:
            return
        if self.handle is None:
            path = lock_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(path, "a+")  # noqa: SIM115 - kept open for the process's holds
        fcntl.flock(self.handle, mode)

    def settle(self) -> None:
        """Take the mode the current users need (exclusive > shared > none)."""
        if self.exclusive:
            return
        self._flock(fcntl.LOCK_SH if self.shared else fcntl.LOCK_UN)


_HOLD = _Hold()


def held_by_parent() -> None:
    """In a compile worker of study/buildpool.py: the search process holds the shared lock for its
    whole pool and stops the workers before it times. A stopped worker holding a lock of its own
    would keep that timing waiting for ever."""
    _HOLD.delegated = True


@contextmanager
def shared_use() -> Iterator[None]:
    """Use the cores without timing (compile, evaluate); waits while another process times."""
    with _HOLD.guard:
        _HOLD.shared += 1
        if _HOLD.shared == 1 and not _HOLD.exclusive:
            _HOLD._flock(fcntl.LOCK_SH)
    try:
        yield
    finally:
        with _HOLD.guard:
            _HOLD.shared -= 1
            _HOLD.settle()


@contextmanager
def timing_lock() -> Iterator[float]:
    """Time alone: waits until no other process uses the cores through this lock; yields the wait."""
    with _HOLD.guard:
        start = time.perf_counter()
        if not _HOLD.exclusive:
            _HOLD._flock(fcntl.LOCK_EX)
        _HOLD.exclusive += 1
        waited = time.perf_counter() - start
        try:
            yield waited
        finally:
            _HOLD.exclusive -= 1
            _HOLD.settle()
