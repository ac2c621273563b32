"""Candidates compiled in parallel, timed alone.

A search with `jobs > 1` asks Optuna for up to `jobs` trials at a time. Spawned worker processes, one
per core, compress, simulate, lower, compile and evaluate them: every stage that does not time. Local
latency is then timed in this process, one candidate after another, once every worker is idle: a
compile on the same cores slows the timed kernels, and the search would rank that noise. Candidates
for a remote device (RPC tracker) are timed by the workers themselves: the timed cores are the
board's, and the tracker hands each session a device of its own.

`concurrent.futures` runs the workers; nothing here schedules or queues on its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from autocomp.errors import CandidateError


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to rebuild the search's Context (all picklable)."""

    task: str | None
    device: str
    options: Any  # measure.runner.MeasureOptions
    finetune_steps: int
    local: bool  # timed in the parent (LocalRunner) rather than by the worker


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_CTX: Any = None
_LOCAL = False


def _init_worker(spec: WorkerSpec) -> None:
    global _CTX, _LOCAL
    import torch

    from autocomp.candidate import prepare
    from autocomp.profiles import load_profile
    from autocomp.tasks import load_task

    torch.set_num_threads(1)  # the other cores are the other workers'
    # tune_trials=0: timing tiles while other workers compile would record noise
    _CTX = prepare(load_task(spec.task), load_profile(spec.device), spec.options, spec.finetune_steps, 0)
    _LOCAL = spec.local


def _work(plan_data: dict[str, Any], directory: str) -> Any:
    from autocomp.candidate import evaluate_plan, evaluate_untimed
    from autocomp.plan import CompressionPlan

    plan = CompressionPlan.from_dict(plan_data)
    if _LOCAL:
        return evaluate_untimed(_CTX, plan, directory)
    return evaluate_plan(_CTX, plan)[0]


class BuildPool:
    """`jobs` worker processes for one search; `evaluate` a batch of plans, then `close`."""

    def __init__(self, spec: WorkerSpec, ctx: Any, jobs: int) -> None:
        self.spec, self.ctx, self.jobs = spec, ctx, jobs
        self._tmp = tempfile.mkdtemp(prefix="autocomp-build-")
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        # spawn, not fork: this process holds TVM and torch thread pools, which do not survive a fork
        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.spec,))

    def evaluate(self, plans: list[Any]) -> list[Any]:
        """A CandidateResult or the CandidateError of each plan, in order.

        Every plan of the batch is compiled before any is timed, so no timing overlaps a compile.
        """
        from autocomp.candidate import Untimed, time_untimed

        futures = [self._executor.submit(_work, plan.to_dict(), tempfile.mkdtemp(dir=self._tmp)) for plan in plans]
        outs: list[Any] = []
        broken = False
        for future in futures:  # the barrier: wait for every compile of the batch
            try:
                outs.append(future.result())
            except CandidateError as exc:
                outs.append(exc)
            except BrokenProcessPool as exc:  # a worker died (e.g. a crash inside the compiler)
                broken = True
                outs.append(CandidateError(f"the compile worker died: {exc}"))
        if broken:
            self._executor.shutdown(cancel_futures=True)
            self._executor = self._start()
        results = []
        for out in outs:
            if isinstance(out, Untimed):
                try:
                    out = time_untimed(self.ctx, out)
                except CandidateError as exc:
                    out = exc
            results.append(out)
        for entry in os.listdir(self._tmp):
            shutil.rmtree(os.path.join(self._tmp, entry), ignore_errors=True)
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._tmp, ignore_errors=True)
