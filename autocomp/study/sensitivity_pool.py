"""The sensitivity step's single-layer compressions, spread over the cores (sensitivity.measure).

Why: each layer's choices are independent of every other layer's, and the step is a few hundred small
PyTorch jobs (a one-layer quantization and a 300-sample forward; a one-group prune and a 50-step
distillation) that two threads of one process use poorly. One spawned process per core, one thread
each, takes a layer at a time and sends back the model's outputs on the subset; the caller turns them
into accuracy with the task's metric (which need not pickle). A model that does not pickle, or one core,
runs the same jobs here, one after the other. The knapsack proposals' checks (whole plans, each with
the search's distillation on one thread) run the same way (PlanJob).
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from autocomp.plan import CompressionPlan, LayerPlan


@dataclass(frozen=True)
class Shared:
    """What every job compresses and evaluates (sent once to each worker)."""

    model: torch.nn.Module
    example_input: torch.Tensor
    calib_data: torch.Tensor
    protected: tuple[str, ...]
    fp16: bool
    round_to: int
    ranges: dict[str, tuple[float, float]] | None  # float_input_ranges of the model: shared by every bits-only plan
    recovery: Any  # compress.distill.Recovery or None
    inputs: torch.Tensor  # the eval subset
    layers: tuple[str, ...]  # every searchable layer: the rest of each plan stays fp32


@dataclass(frozen=True)
class LayerJob:
    """Choices of one layer, each as (drop key, the layer's plan); a pruned one is distilled (Shared.recovery).
    A layer may have several jobs (run merges their outputs): one per prune ratio spreads the distillations
    evenly over the workers."""

    name: str
    choices: tuple[tuple[str, Any], ...]  # (e.g. "w4a8" or "p0.5", plan.LayerPlan)

    def pruned(self) -> int:
        return sum(lp.prune > 0 for _key, lp in self.choices)


@dataclass(frozen=True)
class PlanJob:
    """A whole plan, compressed as the search compresses it (a knapsack proposal's check,
    sensitivity.simulated_check): its outputs under the key "plan"."""

    name: str  # the plan's key
    plan: CompressionPlan

    def pruned(self) -> int:
        return sum(lp.prune > 0 for lp in self.plan.layers)


_SHARED: Shared | None = None


def _init(shared: Shared) -> None:
    global _SHARED
    import os
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the parent, which cancels the jobs
    parent = os.getppid()

    def orphaned() -> None:  # a parent killed with -9 cannot shut the pool down: leave with it
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    torch.set_num_threads(1)
    _SHARED = shared


def _run(job: LayerJob | PlanJob) -> tuple[str, dict[str, torch.Tensor]]:
    assert _SHARED is not None
    return job.name, job_outputs(_SHARED, job)


def job_outputs(s: Shared, job: LayerJob | PlanJob) -> dict[str, torch.Tensor]:
    from autocomp.measure.accuracy import torch_outputs

    if isinstance(job, LayerJob):
        return layer_outputs(s, job)
    return {"plan": torch_outputs(_compressed(s, job.plan), s.inputs)}


def layer_outputs(s: Shared, job: LayerJob) -> dict[str, torch.Tensor]:
    """The subset's outputs of the model with only `job`'s layer compressed, per choice. The unpruned
    choices share the forward up to the layer (measure/layer_variants.py): the same outputs, about half
    the work."""
    from autocomp.measure.accuracy import torch_outputs

    quantized = [(key, layer) for key, layer in job.choices if layer.prune == 0]
    shared = (_shared_forward(s, job.name, quantized) if len(quantized) > 1 else None) or {}
    return {key: shared[key] if key in shared else torch_outputs(_one_layer(s, layer), s.inputs)
            for key, layer in job.choices}


def _shared_forward(s: Shared, name: str, choices: list[tuple[str, Any]]) -> dict[str, torch.Tensor] | None:
    """The choices' outputs through one shared forward, or None where the models cannot share it (a
    choice's model differing outside its layer, or a model fx cannot split). Only each choice's layer is
    kept, not its whole model."""
    from autocomp.measure.layer_variants import variant_outputs

    base = _one_layer(s, LayerPlan(name))
    modules = {}
    for key, layer in choices:
        model = _one_layer(s, layer)
        if not _same_but(base, model, name):
            return None
        modules[key] = model.get_submodule(name)
    return variant_outputs(base, name, modules, s.inputs)


def _one_layer(s: Shared, layer: Any) -> torch.nn.Module:
    """The model with `layer`'s plan on its layer and every other layer fp32, in eval mode."""
    return _compressed(s, CompressionPlan(tuple(layer if name == layer.name else LayerPlan(name) for name in s.layers)))


def _compressed(s: Shared, plan: CompressionPlan) -> torch.nn.Module:
    """`plan` on the shared model, in eval mode (compress reads `ranges` only when nothing is pruned)."""
    from autocomp.compress import compress

    recovery = s.recovery if any(lp.prune > 0 for lp in plan.layers) else None
    return compress(s.model, plan, s.example_input, s.calib_data, s.protected, recovery, s.fp16, s.round_to,
                    s.ranges).eval()


def _same_but(a: torch.nn.Module, b: torch.nn.Module, layer: str) -> bool:
    """Whether two models hold the same tensors outside `layer` (then only that layer tells them apart)."""
    sa, sb = ({k: v for k, v in m.state_dict().items() if not k.startswith(layer + ".")} for m in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def run(shared: Shared, jobs: list[LayerJob] | list[PlanJob], workers: int) -> dict[str, dict[str, torch.Tensor]]:
    """Every job's outputs, by layer: in `workers` spawned processes, or here when that cannot help."""
    with Workers(shared, min(workers, len(jobs))) as procs:
        return procs.outputs(jobs)


class Workers:
    """`workers` spawned processes holding `shared`, started on first use and kept until closed: the
    knapsack's rounds of checks reuse them (no second start-up, the teacher's outputs for the
    distillation kept in each). This process runs the jobs where they cannot help: one worker, a model
    that does not pickle, a worker that fails (a job's own error, e.g. non-finite outputs, is raised here)."""

    def __init__(self, shared: Shared, workers: int) -> None:
        self.shared, self.workers = shared, workers
        self._pool: ProcessPoolExecutor | None = None
        self._here = workers <= 1 or not _pickles(shared)

    def outputs(self, jobs: list[LayerJob] | list[PlanJob]) -> dict[str, dict[str, torch.Tensor]]:
        out: dict[str, dict[str, torch.Tensor]] = {job.name: {} for job in jobs}  # the caller's order
        if not self._here and (self._pool is not None or len(jobs) > 1):
            try:
                for name, outputs in self._executor().map(_run, sorted(jobs, key=lambda j: -j.pruned())):
                    out[name].update(outputs)  # the long jobs first
                return out
            except Exception:  # noqa: BLE001 - e.g. a worker cannot import the model's class: here, where it can
                self.close(stop=True)
                self._here = True
            except BaseException:  # Ctrl-C: the jobs in progress are stopped, not run to the end
                self.close(stop=True)
                raise
        for job in jobs:
            out[job.name].update(job_outputs(self.shared, job))
        return out

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # this process holds torch's and TVM's thread pools
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init, initargs=(self.shared,))
        return self._pool

    def close(self, stop: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if stop:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.close(stop=kind is not None)


def _pickles(shared: Shared) -> bool:
    try:
        pickle.dumps(shared.model)
    except Exception:  # noqa: BLE001 - a user's model with a lambda or a local class: measured here instead
        return False
    return True
