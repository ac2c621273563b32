"""One candidate, start to finish: plan -> compress -> lower -> build -> measure -> evaluate.

The objective of the search is this function plus bookkeeping; `autocomp evaluate` and `export` call
the same stages, so a figure means the same thing wherever it is printed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from autocomp.compress import compress
from autocomp.compress.layers import output_layers, searchable_layers
from autocomp.compress.prune import prunable_layers
from autocomp.compress.quantize import layer_precisions
from autocomp.profiles import DeviceProfile
from autocomp.tasks.base import Task

RESULT_VERSION = 1


@dataclass
class Context:
    """Everything fixed for one (task, device) pair, prepared once."""

    task: Task
    profile: DeviceProfile
    model: nn.Module
    layers: list[str]
    protected: tuple[str, ...]
    prunable: list[str]
    host_cpu: dict[str, Any]


def prepare(task: Task, profile: DeviceProfile) -> Context:
    from autocomp import hostcpu

    model = task.build_model().eval()
    layers = searchable_layers(model)
    protected = tuple(dict.fromkeys([*task.protected_layers, *output_layers(model, task.example_input)]))
    prunable = prunable_layers(model, task.example_input, protected)
    return Context(task, profile, model, layers, protected, prunable, hostcpu.detect().to_dict())


@dataclass
class CandidateResult:
    """Measured figures of one candidate. Stored as JSON in the trial's user attrs."""

    plan_key: str
    plan_label: str
    device: str
    measured_on: str  # local | rpc:<key>@<tracker> | emulated | estimate
    latency_ms: float
    latency_p10_ms: float
    latency_p90_ms: float
    latency_samples: int
    param_bytes: int
    arena_bytes: int
    memory_bytes: int  # param_bytes + arena_bytes: the search's memory objective
    accuracy_sim: float
    accuracy_compiled: float
    compute: str  # "native" when every layer computes at its planned precision, else "simulated"
    layers: list[dict[str, str]]
    target: dict[str, Any]
    host_cpu: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    version: int = RESULT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateResult:
        return cls(**data)


def evaluate_plan(ctx: Context, plan: Any) -> tuple[CandidateResult, Any, Any]:
    """Run every stage for one plan; returns the result, the compressed torch model and the build."""
    from autocomp import evaluate
    from autocomp.build import build
    from autocomp.lower import lower
    from autocomp.measure.runner import runner_for

    task, timings = ctx.task, {}
    t = time.perf_counter()
    model = compress(ctx.model, plan, task.example_input, task.calib_data, ctx.protected)
    timings["compress"] = time.perf_counter() - t

    t = time.perf_counter()
    acc_sim = evaluate.accuracy_torch(model, task)
    lowered = lower(model, task.example_input)
    timings["lower"] = time.perf_counter() - t

    built = build(lowered, ctx.profile)
    timings["compile"] = built.compile_s

    t = time.perf_counter()
    runner = runner_for(ctx.profile)
    session = runner.session(built)
    latency = runner.time(session, task.example_input.numpy())
    timings["measure"] = time.perf_counter() - t

    t = time.perf_counter()
    acc_compiled = evaluate.accuracy_compiled(session.run, task)
    timings["evaluate"] = time.perf_counter() - t

    precisions = layer_precisions(model, ctx.layers)
    native = all(p.compute == "float32" for p in precisions)
    result = CandidateResult(
        plan_key=plan.key(),
        plan_label=plan.summary(),
        device=ctx.profile.name,
        measured_on=runner.measured_on,
        latency_ms=latency.median_ms,
        latency_p10_ms=latency.p10_ms,
        latency_p90_ms=latency.p90_ms,
        latency_samples=latency.samples,
        param_bytes=built.param_bytes,
        arena_bytes=built.arena_bytes,
        memory_bytes=built.param_bytes + built.arena_bytes,
        accuracy_sim=acc_sim,
        accuracy_compiled=acc_compiled,
        compute="native" if native else "simulated",
        layers=[asdict(p) for p in precisions],
        target=built.target,
        host_cpu=ctx.host_cpu,
        timings_s={k: round(v, 3) for k, v in timings.items()},
    )
    return result, model, built


def fp32_accuracy(ctx: Context) -> float:
    from autocomp import evaluate

    return evaluate.accuracy_torch(ctx.model, ctx.task)


def example_numpy(task: Task) -> Any:
    return task.example_input.numpy()


_ = torch  # torch is imported for callers that type-check Context.model
