"""One candidate, start to finish: plan -> compress -> lower -> build -> measure -> evaluate.

The objective of the search is this function plus bookkeeping; `autocomp evaluate` and `export` call
the same stages, so a figure means the same thing wherever it is printed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from torch import nn

from autocomp.compress import compress, isolate_shuffles, unfuse_attention
from autocomp.compress.layers import float_layers, output_layers, searchable_layers
from autocomp.compress.prune import pruning_roots
from autocomp.compress.quantize import layer_precisions
from autocomp.device.profiles import DeviceProfile
from autocomp.errors import UserError
from autocomp.tasks.base import Task

RESULT_VERSION = 1


@dataclass(frozen=True)
class Compiled:
    """One plan, compiled: the compressed torch model, its Relax module and the build."""

    model: nn.Module
    lowered: Any  # lower.LoweredModel
    built: Any  # build.compile.BuildResult


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
    options: Any = None  # measure.base.MeasureOptions
    finetune_steps: int = 0  # distillation steps after pruning (0: none)
    tune_trials: int = 0  # tiles timed per new conv workload (0: database and default tiles only)
    tuning_db: Any = None  # tuning.TuningDB of this profile (local profiles: tuning times kernels here)
    float_only: dict[str, str] = field(default_factory=dict)  # layers that stay float32: name -> why
    pruning_off: str | None = None  # why nothing can be pruned (Torch-Pruning cannot trace the model)
    _reference: Any = field(default=None, repr=False)  # measure.base.Reference, compiled on first use

    def reference(self) -> Any:
        """The build every latency is timed beside (measure/interleave.py), compiled once per process:
        uniform w8a8 where the device computes int8, else fp32 (why: docs/design-notes.md, issue 17)."""
        if self._reference is None:
            from autocomp.device.timing_lock import shared_use
            from autocomp.measure.base import Reference
            from autocomp.plan import CompressionPlan

            label, bits = ("w8a8", 8) if "int8" in self.profile.precisions else ("fp32", 32)
            with shared_use():
                compiled = self.compile(CompressionPlan.uniform(self.layers, bits, bits))
            self._reference = Reference(label, compiled.built, compiled.model)
        return self._reference

    def channel_multiple(self) -> int:
        """Pruned channel counts' multiple for this device's kernels (8 for non-CPU targets)."""
        from autocomp.device.features import channel_multiple

        target = self.profile.tvm_target()
        return channel_multiple(target) if target.kind.name == "llvm" else 8

    def lower(self, model: nn.Module) -> Any:
        """The Relax module of a compressed model, in the integer form this target's kernels want."""
        from autocomp.lower import lower
        from autocomp.device.features import has_pair_dot, has_vnni, is_aarch64

        target = self.profile.tvm_target()
        return lower(model, self.task.example_input, signed_dot=is_aarch64(target), unsigned_dot=has_vnni(target),
                     pair_dot=has_pair_dot(target))

    def build(self, lowered: Any) -> Any:
        from autocomp.build.compile import build

        return build(lowered, self.profile, self.tuning_db, self.tune_trials if self.tuning_db else 0)

    def recovery(self, steps: int | None = None, **kw: Any) -> Any:
        """The distillation after pruning (compress.distill.Recovery; None when off): `steps` of it
        (default: the search's), on the task's recovery inputs, else its calibration inputs."""
        from autocomp.compress.distill import Recovery

        if self.finetune_steps <= 0:
            return None
        task = self.task
        inputs = task.recovery_inputs if task.recovery_inputs is not None else task.calib_data
        return Recovery(self.finetune_steps if steps is None else steps, inputs, **kw)

    def compress(self, plan: Any) -> nn.Module:
        """The compressed model of a plan, exactly as every stage (search, evaluate, export) builds it."""
        task = self.task
        return compress(self.model, plan, task.example_input, task.calib_data, self.protected, self.recovery(),
                        self.profile.fp16_compute(), self.channel_multiple())

    def compile(self, plan: Any, timings: dict[str, float] | None = None,
                compressed: Callable[[nn.Module], None] | None = None) -> Compiled:
        """compress -> lower -> build: the one sequence every stage (search, evaluate, export) runs, so
        an exported artifact is the candidate that was measured. `timings` receives each step's seconds;
        `compressed` sees the compressed model before it is lowered (and may stop the sequence)."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        model = self.compress(plan)
        timings["compress"] = time.perf_counter() - t
        if compressed is not None:
            compressed(model)
        t = time.perf_counter()
        lowered = self.lower(model)
        timings["lower"] = time.perf_counter() - t
        built = self.build(lowered)
        timings["compile"] = built.compile_s
        return Compiled(model, lowered, built)

    def runner(self) -> Any:
        from autocomp.measure.runners import runner_for

        return runner_for(self.profile, self.options)


def prepare(task: Task, profile: DeviceProfile, options: Any = None, finetune_steps: int = 0,
            tune_trials: int = 0) -> Context:
    from autocomp.device import hostcpu
    from autocomp.build.kernels.tuning import TuningDB

    model = _checked_model(task)
    float_only = float_layers(model, task.example_input)
    layers = [n for n in searchable_layers(model) if n not in float_only]
    if not layers:
        kinds = sorted({type(m).__name__ for m in model.modules() if not list(m.children())})
        raise UserError(f"nothing to search: task {task.name}'s model has no Conv2d, Conv1d or Linear layer "
                        f"(its layer types: {', '.join(kinds) or 'none'})")
    protected = tuple(dict.fromkeys([*task.protected_layers, *output_layers(model, task.example_input)]))
    roots, pruning_off = pruning_roots(model, task.example_input, protected)
    prunable = [n for n in roots if n not in float_only]
    if pruning_off:
        print(f"autocomp: task {task.name}: pruning is off for this model, bits are still searched: {pruning_off}",
              file=sys.stderr)
    # tiles are timed on this machine, so only a profile measured here gets a tuning database
    db = TuningDB.for_profile(profile.name) if profile.measure == "local" and profile.kind == "cpu" else None
    return Context(task, profile, model, layers, protected, prunable, hostcpu.detect().to_dict(), options,
                   finetune_steps, tune_trials, db, float_only, pruning_off)


def _checked_model(task: Task) -> nn.Module:
    """The task's fp32 model, once it is known to run on its example input, give finite outputs, export
    with torch.export and import into Relax: each of these failing would otherwise fail every trial."""
    import torch

    from autocomp.errors import first_line
    from autocomp.lower.check import check_exportable, check_importable

    try:
        model = isolate_shuffles(unfuse_attention(task.build_model().eval()))
    except UserError:
        raise
    except Exception as exc:  # the user's code
        raise UserError(f"task {task.name}: build_model() raised {type(exc).__name__}: {first_line(exc)}") from exc
    shape = tuple(task.example_input.shape)
    try:
        with torch.no_grad():
            out = model(task.example_input)
    except Exception as exc:
        raise UserError(f"task {task.name}: the model fails on its example_input of shape {shape} "
                        f"({type(exc).__name__}: {first_line(exc)}); give an input of the shape the model takes") from exc
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if not all(torch.is_tensor(o) and bool(torch.isfinite(o).all()) for o in outs):
        raise UserError(f"task {task.name}: the fp32 model's outputs on its example_input are not finite "
                        "(NaN or inf); check its weights and input normalisation")
    check_importable(check_exportable(model, task.example_input, task.name), task.name)
    return model


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
    accuracy_source: str  # "compiled" (every eval sample through the artifact) or how it was established
    peak_rss_bytes: int | None  # None: not measured (a remote device)
    runtime_rss_bytes: int | None  # of those, the TVM runtime's own share (Python + libtvm_runtime)
    model_rss_bytes: int | None  # resident memory the loaded model and one inference added
    compute: str  # "native" when no layer fake-quantizes (see LayerPrecision.compute), else "simulated"
    layers: list[dict[str, str]]
    target: dict[str, Any]
    host_cpu: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    kernels: dict[str, str] = field(default_factory=dict)  # conv kernels: "scheduled" or why not
    measure_details: dict[str, Any] = field(default_factory=dict)  # e.g. which remote device, agreement check
    latency_threads: int | None = None  # TVM runtime threads of the timed runs (None: not timed / unknown)
    # timed in A/B rounds beside the reference (measure/interleave.py); None: results from before, or untimed
    latency_ratio: float | None = None  # median over rounds of this latency / the reference's
    latency_ratio_p10: float | None = None
    latency_ratio_p90: float | None = None
    reference_latency_ms: float | None = None  # the reference's median in the same window
    reference: str | None = None  # which build the reference was ("fp32")
    version: int = RESULT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateResult:
        return cls(**data)


def evaluate_plan(ctx: Context, plan: Any, min_accuracy: float | None = None) -> tuple[CandidateResult, Any, Any]:
    """Run every stage for one plan; returns the result, the compressed torch model and the build.
    `min_accuracy`: a simulated accuracy below it raises ScreenedOut before the plan is lowered."""
    timings: dict[str, float] = {}
    model, acc_sim, built, window = _compile(ctx, plan, timings, min_accuracy)
    t = time.perf_counter()
    run = ctx.runner().run(built, model, ctx.task, reference=ctx.reference())
    run.details["compile_window"] = window
    if not run.details.get("timings_s"):
        timings["measure"] = time.perf_counter() - t
    return _assemble(ctx, plan, model, acc_sim, built, run, timings), model, built


def _compile(ctx: Context, plan: Any, timings: dict[str, float],
             min_accuracy: float | None = None) -> tuple[nn.Module, float, Any, list[float]]:
    """compress -> (the torch simulation's accuracy) -> lower -> build: everything before the device,
    under the machine lock's shared hold (no local timing runs meanwhile; device/timing_lock.py). The
    simulation runs before lowering, so a candidate it screens out (ScreenedOut) costs no compile."""
    from autocomp.device.timing_lock import shared_use
    from autocomp.errors import ScreenedOut
    from autocomp.measure import accuracy

    simulated: list[float] = []

    def simulate(model: nn.Module) -> None:
        t = time.perf_counter()
        simulated.append(accuracy.accuracy_torch(model, ctx.task))
        timings["simulate"] = time.perf_counter() - t
        if min_accuracy is not None and simulated[0] < min_accuracy:
            raise ScreenedOut(simulated[0], {k: round(v, 3) for k, v in timings.items()})

    with shared_use():
        start = time.time()
        compiled = ctx.compile(plan, timings, simulate)
        window = [start, time.time()]  # inside the hold: when the cores were ours
    return compiled.model, simulated[0], compiled.built, window


def _assemble(ctx: Context, plan: Any, model: nn.Module, acc_sim: float, built: Any, run: Any,
              timings: dict[str, float]) -> CandidateResult:
    split = run.details.pop("timings_s", None)
    if split:  # the runner says how its time divided (timing, accuracy, memory probe)
        timings.update(split)
    latency, rss, cmp = run.latency, run.peak_rss, run.comparison
    nan = float("nan")  # latency not timed yet (a compile worker's candidate, timed by the parent)
    precisions = layer_precisions(model, ctx.layers, ctx.float_only)
    native = not any("simulated" in p.compute for p in precisions)
    return CandidateResult(
        plan_key=plan.key(),
        plan_label=plan.summary(),
        device=ctx.profile.name,
        measured_on=run.measured_on,
        latency_ms=latency.median_ms if latency else nan,
        latency_p10_ms=latency.p10_ms if latency else nan,
        latency_p90_ms=latency.p90_ms if latency else nan,
        latency_samples=latency.samples if latency else 0,
        param_bytes=built.param_bytes,
        arena_bytes=built.arena_bytes,
        memory_bytes=built.param_bytes + built.arena_bytes,
        accuracy_sim=acc_sim,
        accuracy_compiled=acc_sim if run.accuracy_compiled is None else run.accuracy_compiled,
        accuracy_source=run.accuracy_source,
        peak_rss_bytes=rss.peak_rss_bytes if rss else None,
        runtime_rss_bytes=rss.runtime_rss_bytes if rss else None,
        model_rss_bytes=rss.model_rss_bytes if rss else None,
        compute="native" if native else "simulated",
        layers=[asdict(p) for p in precisions],
        target=built.target,
        host_cpu=ctx.host_cpu,
        timings_s={k: round(v, 3) for k, v in timings.items()},
        kernels=built.kernels,
        measure_details=run.details,
        latency_threads=latency.threads if latency else None,
        **_comparison_fields(cmp, ctx),
    )


def _comparison_fields(cmp: Any, ctx: Context) -> dict[str, Any]:
    if cmp is None:
        return {}
    return {"latency_ratio": cmp.ratio, "latency_ratio_p10": cmp.ratio_p10, "latency_ratio_p90": cmp.ratio_p90,
            "reference_latency_ms": cmp.reference.median_ms, "reference": ctx.reference().label}


@dataclass
class Untimed:
    """A local candidate measured in every way but latency: what a compile worker hands back.

    Timing is the one stage that must not share the cores with a compile, so the parent process times
    `library` once no compile is running (see study/buildpool.py) and completes `result`.
    """

    result: CandidateResult
    library: str  # the exported .so
    params: str  # its parameters (numpy .npz, in order)


def evaluate_untimed(ctx: Context, plan: Any, directory: str, min_accuracy: float | None = None) -> Untimed:
    """Every stage of a local candidate except the timing; the library is written to `directory`
    (`min_accuracy`: see evaluate_plan)."""
    import os
    from pathlib import Path

    import numpy as np

    from autocomp.build.compile import export_library
    from autocomp.measure.local import LocalRunner

    timings: dict[str, float] = {}
    start = time.time()
    model, acc_sim, built, _window = _compile(ctx, plan, timings, min_accuracy)
    run = LocalRunner(ctx.profile.measurement).run(built, model, ctx.task, timed=False)
    lib = export_library(built, ctx.profile, Path(directory))
    params = Path(directory) / "params.npz"
    np.savez(params, *built.params)
    # when and where it was built: the parent checks that no timing overlapped a compile
    run.details.update(build_window=[start, time.time()], built_by_pid=os.getpid())
    return Untimed(_assemble(ctx, plan, model, acc_sim, built, run, timings), str(lib), str(params))


def time_untimed(ctx: Context, untimed: Untimed) -> CandidateResult:
    """Time a worker's library here (nothing else may be compiling) and complete its result."""
    import numpy as np

    from autocomp.measure.local import LocalRunner, LocalSession

    t = time.perf_counter()
    with np.load(untimed.params) as npz:
        params = tuple(npz[f"arr_{i}"] for i in range(len(npz.files)))
    session = LocalSession.from_library(untimed.library, params)
    runner = LocalRunner(ctx.profile.measurement)
    _ref, (cmp,) = runner.compare([session], runner.reference_session(ctx.reference()), ctx.task.example_input.numpy())
    latency = cmp.candidate
    r = untimed.result
    timings = {**r.timings_s, "latency": round(time.perf_counter() - t, 3)}
    details = {**r.measure_details, **runner.last_window}
    return replace(r, latency_ms=latency.median_ms, latency_p10_ms=latency.p10_ms, latency_p90_ms=latency.p90_ms,
                   latency_samples=latency.samples, timings_s=timings, measure_details=details,
                   latency_threads=latency.threads, **_comparison_fields(cmp, ctx))


def fp32_accuracy(ctx: Context) -> float:
    """The baseline every accuracy drop is measured from; a broken fp32 model stops the search here."""
    from autocomp.errors import CandidateError
    from autocomp.measure import accuracy

    try:
        return accuracy.accuracy_torch(ctx.model, ctx.task)
    except CandidateError as exc:
        raise UserError(f"task {ctx.task.name}: {exc} with the fp32 model; check its weights and inputs") from exc


