"""The knapsack's plans checked in the PyTorch simulation, all together, before any is proposed.

Why: summed single-layer costs miss how quantization errors add up (sensitivity.knapsack_plans), so
each solved plan is compressed exactly as its candidate will be (the search's distillation, on one
thread as in a build worker: compress/distill.py) and evaluated on the whole eval set. On FashionNet
that is ~9 s a plan, and the knapsack solves five plans and solves a failed one again at half its
budget: one after another, its checks took 50-80 s of every search's start. Each (objective, fraction)
is a chain of solves that depends only on its own checks, so the chains run side by side: one check
per core in sensitivity_pool's spawned workers, a chain's next plan submitted as soon as its check
fails. The checks are deterministic and kept by plan, so the outcome is the one-by-one order's.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Callable

from autocomp.plan import CompressionPlan

Chain = Callable[[int], "CompressionPlan | None"]  # try k -> the plan solved at the budget / 2**k, or None


class SimulatedCheck:
    """Whether a plan's simulated accuracy, on the whole eval set, is within `max_drop` of the fp32
    model's: the compiled artifact's accuracy, which the search measures, is the simulation's on this
    project's CPU targets. Every check is appended to `log` (the study's settings keep it)."""

    def __init__(self, ctx: Any, max_drop: float, log: list[dict[str, Any]], workers: int | None = None) -> None:
        from autocomp.device.timing_lock import shared_use
        from autocomp.measure.accuracy import accuracy_torch
        from autocomp.study.buildpool import default_jobs

        self.ctx, self.max_drop, self.log = ctx, max_drop, log
        self.workers = default_jobs() if workers is None else workers
        with shared_use():
            self.base = accuracy_torch(ctx.model, ctx.task)
        self.seen: dict[str, bool] = {}

    def __call__(self, plan: CompressionPlan) -> bool:
        """Check one plan here (kept: a plan is checked once)."""
        from autocomp.device.timing_lock import shared_use
        from autocomp.study import sensitivity_pool as pool

        if plan.key() not in self.seen:
            with shared_use():
                self._record(plan, pool.PlanJob(plan.key(), plan).outputs(self._shared())[plan.key()])
        return self.seen[plan.key()]

    def first_passing(self, chains: list[Chain], tries: int) -> list[CompressionPlan | None]:
        """For each chain, its first plan in `tries` that passes (None: none did, or it ran out of plans),
        the chains' checks in the workers side by side (see the module docstring)."""
        from autocomp.device.timing_lock import shared_use
        from autocomp.study import sensitivity_pool as pool

        outcome: list[CompressionPlan | None] = [None] * len(chains)
        step = [0] * len(chains)
        waiting: dict[str, list[int]] = {}  # plan key -> the chains waiting for its check

        def advance(c: int, submit: Callable[[CompressionPlan], None] | None) -> None:
            """Chain c to its first plan that passes, or to a check it waits for (submitted once per plan);
            without `submit`, each check runs here."""
            while step[c] < tries:
                plan = chains[c](step[c])
                if plan is None:
                    return
                if plan.key() not in self.seen:
                    if submit is None:
                        self(plan)
                    else:
                        waiting.setdefault(plan.key(), []).append(c)
                        if len(waiting[plan.key()]) == 1:
                            submit(plan)
                        return
                if self.seen[plan.key()]:
                    outcome[c] = plan
                    return
                step[c] += 1

        try:
            with shared_use(), pool.executor(self._shared(), min(self.workers, len(chains))) as executor:
                if executor is not None:
                    futures: dict[Future, CompressionPlan] = {}

                    def submit(plan: CompressionPlan) -> None:
                        futures[executor.submit(pool.run_job, pool.PlanJob(plan.key(), plan))] = plan

                    for c in range(len(chains)):
                        advance(c, submit)
                    while futures:
                        done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                        for future in done:
                            plan = futures.pop(future)
                            self._record(plan, future.result()[1][plan.key()])
                            for c in waiting.pop(plan.key()):
                                advance(c, submit)
                    return outcome
        except Exception:  # noqa: BLE001 - e.g. a worker cannot import the model's class: here, where it can
            pass  # (a plan's own error, e.g. non-finite outputs, is raised again below)
        for c in range(len(chains)):  # one after another, here (the plans already checked are kept)
            step[c], outcome[c] = 0, None
            advance(c, None)
        return outcome

    def _record(self, plan: CompressionPlan, outputs: Any) -> None:
        task = self.ctx.task
        drop = self.base - float(task.metric(outputs, task.eval_targets))
        self.seen[plan.key()] = drop <= self.max_drop
        self.log.append({"plan": plan.summary(), "simulated_drop": round(drop, 4), "kept": self.seen[plan.key()]})

    def _shared(self) -> Any:
        """What a worker compresses and evaluates: the model as Context.compress compresses it, the
        whole eval set."""
        from autocomp.study import sensitivity_pool as pool

        ctx, task = self.ctx, self.ctx.task
        return pool.Shared(ctx.model, task.example_input, task.calib_data, ctx.protected, ctx.profile.fp16_compute(),
                           ctx.channel_multiple(), None, ctx.recovery(), task.eval_inputs, tuple(ctx.layers))
