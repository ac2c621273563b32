"""Candidates compiled in parallel, timed alone.

A search with `jobs > 1` keeps `jobs` trials in flight. Spawned worker processes, one per core,
compress, simulate, lower, compile and evaluate them: every stage that does not time. When a local
candidate is ready, this process times it with every worker (and their children) stopped (SIGSTOP,
then SIGCONT): a compile on the same cores would slow the timed kernels and the search would rank that
noise. The stop is checked, not assumed: the workers' CPU ticks over the timing window are recorded
with each result and must be 0. Candidates for a remote device (RPC tracker) are timed by the workers
themselves: the timed cores are the board's, and the tracker gives each session its own device.

`concurrent.futures` runs the workers; nothing here schedules or queues on its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from autocomp.errors import CandidateError, ScreenedOut


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to rebuild the search's Context (all picklable)."""

    task: str | None
    device: str
    options: Any  # measure.base.MeasureOptions
    finetune_steps: int
    local: bool  # timed in the parent (LocalRunner) rather than by the worker


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_CTX: Any = None
_LOCAL = False


def _init_worker(spec: WorkerSpec) -> None:
    global _CTX, _LOCAL
    import signal

    import torch

    from autocomp.candidate import prepare
    from autocomp.device.profiles import load_profile
    from autocomp.device.timing_lock import held_by_parent
    from autocomp.quiet import silence_known_noise
    from autocomp.tasks import load_task

    silence_known_noise()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the search, which stops the pool
    held_by_parent()
    os.environ["TVM_NUM_THREADS"] = "1"  # the other cores are the other workers' (before TVM starts)
    torch.set_num_threads(1)
    # tune_trials=0: timing tiles while other workers compile would record noise
    _CTX = prepare(load_task(spec.task), load_profile(spec.device), spec.options, spec.finetune_steps, 0)
    _LOCAL = spec.local


def _work(plan_data: dict[str, Any], directory: str, min_accuracy: float | None) -> Any:
    from autocomp.candidate import evaluate_plan, evaluate_untimed
    from autocomp.plan import CompressionPlan

    plan = CompressionPlan.from_dict(plan_data)
    if _LOCAL:
        return evaluate_untimed(_CTX, plan, directory, min_accuracy)
    return evaluate_plan(_CTX, plan, min_accuracy)[0]


class BuildPool:
    """`jobs` worker processes for one search: `submit` plans, `finish` each future, then `close`."""

    def __init__(self, spec: WorkerSpec, ctx: Any, jobs: int) -> None:
        self.spec, self.ctx, self.jobs = spec, ctx, jobs
        self._tmp = tempfile.mkdtemp(prefix="autocomp-build-")
        self._executor = self._start()
        self._dirs: dict[Future, str] = {}

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        # spawn, not fork: this process holds TVM and torch thread pools, which do not survive a fork
        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.spec,))

    def submit(self, plan: Any, min_accuracy: float | None = None) -> Future:
        directory = tempfile.mkdtemp(dir=self._tmp)
        future = self._executor.submit(_work, plan.to_dict(), directory, min_accuracy)
        self._dirs[future] = directory
        return future

    def finish(self, future: Future) -> Any:
        """The CandidateResult of a done future (timed here, workers stopped), or its CandidateError or
        ScreenedOut."""
        from autocomp.candidate import Untimed, time_untimed

        try:
            out = future.result()
            if isinstance(out, Untimed):
                with paused(self._worker_pids()) as ticks:
                    result = time_untimed(self.ctx, out)
                    used = ticks()  # read before the workers resume, or their first tick after counts
                out = replace(result, measure_details={**result.measure_details, "worker_cpu_ticks_while_timed": used})
            return out
        except (CandidateError, ScreenedOut) as exc:
            return exc
        except BrokenProcessPool as exc:  # a worker died (e.g. a crash inside the compiler): start afresh
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()
            return CandidateError(f"the compile worker died: {exc}")
        finally:
            shutil.rmtree(self._dirs.pop(future, ""), ignore_errors=True)

    def _worker_pids(self) -> list[int]:
        """This pool's worker processes (spawned: their command line runs spawn_main) and their children."""
        import psutil

        pids = []
        for proc in psutil.Process().children():
            try:
                if "spawn_main" in " ".join(proc.cmdline()):
                    pids += [proc.pid, *(c.pid for c in proc.children(recursive=True))]
            except psutil.Error:
                continue
        return pids

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._tmp, ignore_errors=True)


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total


@contextmanager
def paused(pids: list[int]) -> Iterator[Any]:
    """Stop `pids` for the duration; yields a function giving the CPU ticks they used meanwhile."""
    import signal
    import time

    stopped = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        except ProcessLookupError:
            continue
    try:
        deadline = time.monotonic() + 1.0  # SIGSTOP is asynchronous: wait until every thread has stopped
        while time.monotonic() < deadline and not all(_all_stopped(pid) for pid in stopped):
            time.sleep(0.001)
        before = _cpu_ticks(stopped)
        yield lambda: _cpu_ticks(stopped) - before
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                continue


def _all_stopped(pid: int) -> bool:
    """Every thread of `pid` stopped (or gone): the group stop reaches each thread on its own, and the
    leader's state alone let a still-running thread's tick into the timing window."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return all(_state(f"{pid}/task/{tid}") in ("T", "t", "Z", "") for tid in tids)


def _state(path: str) -> str:
    try:
        with open(f"/proc/{path}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
