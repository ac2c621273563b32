"""Everything `autocomp report` shows, gathered from a study (and, with `measure`, from the device).

The stored figures come from the study as the search wrote them. With `measure` (a study measured on
this machine) the chosen point is compiled again and its kernels timed through the VM's instrument hook
(measure/kernel_times.py), and its layers' parameters and MACs are counted on the compressed model: a
per-layer picture of where the time goes, measured now, on this host, and labelled so.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from autocomp.errors import UserError
from autocomp.plan import CompressionPlan
from autocomp.study import pareto
from autocomp.study.config import COMMAND_ATTR


@dataclass(frozen=True)
class TrialPoint:
    trial: int
    label: str
    latency_ms: float  # the objective the search compared (drift-corrected)
    memory_bytes: int
    accuracy: float
    feasible: bool
    uniform: bool  # one of the uniform baselines (fp32, w8a8, ...)
    plan: str  # per layer, for the hover


@dataclass(frozen=True)
class LayerRow:
    name: str
    w_bits: int | str  # plan.weight_choice: bits, or "k<bits>" for shared weights
    a_bits: int
    prune: float
    params: int | None  # of the compressed layer (None: not measured)
    macs: int | None
    compute: str


@dataclass
class ReportData:
    study: str
    settings: dict[str, Any]
    config: dict[str, Any] | None
    command: str | None
    points: list[TrialPoint]
    front: list[Any]  # pareto.FrontPoint
    baseline: Any
    progress: list[tuple[int, float, float | None]]  # trial number, hypervolume, best feasible speedup
    chosen: Any  # the FrontPoint the per-layer part is about
    layers: list[LayerRow]
    kernels: list[tuple[str, float, str | None]] = field(default_factory=list)  # kernel, ms, layer
    kernels_source: str = "not measured (autocomp report --no-measure)"
    sensitivity: dict[str, Any] | None = None
    meta: dict[str, str] = field(default_factory=dict)
    onnxruntime: list[OrtMark] = field(default_factory=list)
    onnxruntime_source: str = "not measured (autocomp report --no-measure)"


@dataclass(frozen=True)
class OrtMark:
    """onnxruntime's own build of the task's model, on the front's latency axis (measure/onnxruntime_marks.py)."""

    name: str  # "fp32" or "int8"
    latency_ms: float  # ratio to the TVM fp32 reference x the study's reference figure
    ratio: float
    accuracy: float


def _plan_text(plan: dict[str, Any]) -> str:
    return "<br>".join(f"{lp['name']}: {_weights(lp)} a{lp['a_bits']} p{lp['prune']:g}" for lp in plan["layers"])


def _weights(lp: dict[str, Any]) -> str:
    return f"k{lp['w_bits']}" if lp.get("shared") else f"w{lp['w_bits']}"


def _is_uniform(plan: dict[str, Any]) -> bool:
    layers = plan["layers"]
    return all((_weights(lp), lp["a_bits"], lp["prune"]) == (_weights(layers[0]), layers[0]["a_bits"], 0.0)
               for lp in layers)


def trial_points(study: Any) -> list[TrialPoint]:
    out = []
    for t in pareto.completed(study):
        r = t.user_attrs["result"]
        out.append(TrialPoint(t.number, r["plan_label"], t.values[0] if t.values else r["latency_ms"],
                              r["memory_bytes"], r["accuracy_compiled"], pareto.feasible(t),
                              _is_uniform(t.user_attrs["plan"]), _plan_text(t.user_attrs["plan"])))
    return out


def progress(points: list[TrialPoint], base: Any) -> list[tuple[int, float, float | None]]:
    """After each completed trial (by number): the feasible front's hypervolume in (latency, memory)
    divided by the fp32 trial's, and the best feasible speedup over fp32."""
    out: list[tuple[int, float, float | None]] = []
    seen: list[TrialPoint] = []
    for p in sorted(points, key=lambda p: p.trial):
        seen.append(p)
        ok = [q for q in seen if q.feasible]
        if base is None or not ok:
            out.append((p.trial, 0.0, None))
            continue
        norm = [(q.latency_ms / base.latency_ms, q.memory_bytes / base.memory_bytes) for q in ok]
        out.append((p.trial, pareto.hypervolume_2d(norm), base.latency_ms / min(q.latency_ms for q in ok)))
    return out


def gather(study: Any, trial: int | None = None, measure: bool = True) -> ReportData:
    front, base = pareto.front(study), pareto.baseline(study)
    points = trial_points(study)
    if not points:
        raise UserError(f"study '{study.study_name}' has no completed trial yet: run 'autocomp search' first")
    if trial is None:
        if not front:
            raise UserError(f"study '{study.study_name}' has no feasible point yet; pass --trial N for another one")
        chosen = front[0]  # the fastest feasible point
    else:
        chosen = pareto.FrontPoint.from_trial(pareto.find_trial(study, trial), pareto.retimed(study).get("points"))
    data = ReportData(
        study=study.study_name, settings=study.user_attrs.get("autocomp", {}),
        config=study.user_attrs.get("config"), command=study.user_attrs.get(COMMAND_ATTR), points=points,
        front=front, baseline=base, progress=progress(points, base), chosen=chosen,
        layers=_layer_rows(study, chosen, {}), sensitivity=study.user_attrs.get("sensitivity"),
        meta=_meta(study, chosen),
    )
    if measure:
        _measure_chosen(study, data)
    return data


def _layer_rows(study: Any, point: Any, counts: dict[str, tuple[int, int]]) -> list[LayerRow]:
    """The chosen plan per layer, with the compute kind its result stored (else the model's)."""
    stored = {row["name"]: row["compute"] for row in
              pareto.find_trial(study, point.trial).user_attrs["result"].get("layers", [])}
    return [LayerRow(lp["name"], f"k{lp['w_bits']}" if lp.get("shared") else lp["w_bits"], lp["a_bits"], lp["prune"],
                     *counts.get(lp["name"], (None, None)),
                     stored.get(lp["name"], point.compute)) for lp in point.plan["layers"]]


def _measure_chosen(study: Any, data: ReportData) -> None:
    """Compile the chosen plan again on this host; time its kernels and count its layers."""
    from autocomp.device.timing_lock import timing_lock
    from autocomp.measure.base import MeasureOptions
    from autocomp.measure.kernel_times import by_layer, kernel_times
    from autocomp.measure.local import LocalRunner
    from autocomp.study.remeasure import context_of

    ctx = context_of(study, MeasureOptions())
    if ctx.profile.measure != "local":
        data.kernels_source = f"not measured: device {ctx.profile.name} is not this machine"
        return
    plan = CompressionPlan.from_dict(data.chosen.plan)
    compiled = ctx.compile(plan)
    session = LocalRunner(ctx.profile.measurement, peak_rss=False).session(compiled.built)
    with timing_lock():
        calls = [(n, t) for n, t in kernel_times(session, ctx.task.example_input.numpy(), 20)
                 if not n.startswith("vm.builtin")]
    names = [lp.name for lp in plan.layers]
    layer_of = _kernel_layers(calls, names) if by_layer(calls, names) is not None else {}
    data.kernels = [(n, t, layer_of.get(i)) for i, (n, t) in enumerate(calls)]
    data.kernels_source = f"measured now on this host (VM instrument, median of 20 calls), {ctx.host_cpu.get('model', '')}"
    data.layers = _layer_rows(study, data.chosen, _counts(compiled.model, ctx.task.example_input, names))
    _measure_onnxruntime(data, ctx)


def _measure_onnxruntime(data: ReportData, ctx: Any) -> None:
    """onnxruntime's fp32 and int8 of the task's model, timed now beside the TVM fp32 reference and
    placed on the front's axis as ratio x the study's reference figure (as every trial is)."""
    from autocomp.errors import first_line
    from autocomp.measure import onnxruntime_marks
    from autocomp.measure.local import LocalRunner

    ref = (data.settings.get("reference") or {}).get("latency_ms")
    if not ref:
        data.onnxruntime_source = "not measured: the study has no reference figure to place it against"
        return
    try:
        marks = onnxruntime_marks.measure(ctx, LocalRunner(ctx.profile.measurement, peak_rss=False))
    except Exception as exc:  # the report stands without the marks; it says why they are missing
        data.onnxruntime_source = f"not measured: onnxruntime failed ({first_line(exc)})"
        return
    data.onnxruntime = [OrtMark(name, m["ratio"] * ref, m["ratio"], m["accuracy"])
                        for name, m in marks.items() if isinstance(m, dict) and "ratio" in m]
    refused = [f"{name}: {m['error']}" for name, m in marks.items() if isinstance(m, dict) and "error" in m]
    data.onnxruntime_source = (
        f"measured now on this host, {marks['rounds']} A/B rounds beside the TVM fp32 reference "
        f"({marks['reference_ms']:.4g} ms in this window), {marks['threads']} threads; onnxruntime's int8 is its "
        "static QDQ recipe (u8 activations, s8 per-channel weights) calibrated on the task's calibration inputs"
        + (f"; not built: {'; '.join(refused)}" if refused else ""))


def _kernel_layers(calls: list[tuple[str, float]], layers: list[str]) -> dict[int, str]:
    """Kernel index -> the layer it counts with (as measure.kernel_times.by_layer attributes them)."""
    from autocomp.measure.kernel_times import LAYER_OPS

    out, pending, i = {}, [], 0
    for k, (name, _t) in enumerate(calls):
        pending.append(k)
        if any(op in name for op in LAYER_OPS):
            out.update({j: layers[i] for j in pending})
            pending, i = [], i + 1
    out.update({j: layers[-1] for j in pending})
    return out


def _counts(model: Any, x: Any, names: list[str]) -> dict[str, tuple[int, int]]:
    """(weights + biases, MACs per inference) of each named layer of the compressed model, from one
    forward pass (a quantized layer's packed weight counts as its logical shape)."""
    import math

    from autocomp.compress.layers import run_with_hooks

    counts: dict[str, tuple[int, int]] = {}
    modules = dict(model.named_modules())

    def hook(name: str) -> Any:
        def record(module: Any, _inputs: Any, output: Any) -> None:
            shape = getattr(module, "weight_shape", None) or tuple(module.weight.shape)
            bias = getattr(module, "bias", None)
            per_output = math.prod(shape[1:])  # MACs per output element (a grouped conv: its group's)
            counts[name] = (math.prod(shape) + (bias.numel() if bias is not None else 0),
                            int(output.numel() // output.shape[0] * per_output))
        return record

    run_with_hooks(model, x, {n: hook(n) for n in names if n in modules})
    return counts


def _meta(study: Any, point: Any) -> dict[str, str]:
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    r = pareto.find_trial(study, point.trial).user_attrs["result"]
    cpu = r.get("host_cpu") or {}
    return {
        "device": point.device, "measured on": point.measured_on,
        "target": ", ".join(f"{k}={v}" for k, v in (r.get("target") or {}).items()),
        "host CPU (of the measurement)": f"{cpu.get('model', '?')} ({', '.join(cpu.get('features', []))})",
        "report made on": f"{platform.node()}, Python {platform.python_version()}",
        "versions": ", ".join(f"{n} {version(n)}" for n in ("autocomp", "apache-tvm", "torch", "optuna", "onnxruntime")),
    }
