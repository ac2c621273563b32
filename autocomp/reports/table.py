"""Terminal output: the front as a rich table, sizes in human units."""

from __future__ import annotations

from typing import Any

from autocomp.study.pareto import FrontPoint


def kib(n: float) -> str:
    return f"{n / 1024:,.1f}"


def front_table(points: list[FrontPoint], baseline: FrontPoint | None, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    retimed = bool(points) and all(p.retimed_ms is not None for p in points) and baseline is not None \
        and baseline.retimed_ms is not None
    timing_cols = [("latency ms", "right"), ("p10-p90", "right"), ("raw ms", "right")]
    if retimed:
        timing_cols += [("re-timed ms", "right")]
    for col, justify in [("trial", "right"), ("plan", "left"), *timing_cols,
                         ("speedup", "right"), ("memory KiB", "right"), ("mem ratio", "right"),
                         ("params KiB", "right"), ("accuracy", "right"), ("drop", "right"),
                         ("compute", "left"), ("measured on", "left")]:  # noqa: E501
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in points:
        if retimed:  # both timed in one window
            speed = f"{baseline.retimed_ms / p.retimed_ms:.2f}x"  # type: ignore[operator,union-attr]
        else:
            speed = f"{baseline.latency_ms / p.latency_ms:.2f}x" if baseline else "-"
        mem = f"{p.memory_bytes / baseline.memory_bytes:.2f}" if baseline else "-"
        drop = f"{(baseline.accuracy - p.accuracy) * 100:+.1f} pt" if baseline else "-"
        cells = [f"{p.latency_ms:.3f}", f"{p.latency_p10_ms:.2f}-{p.latency_p90_ms:.2f}", f"{p.raw_latency_ms:.3f}"]
        if retimed:
            cells.append(f"{p.retimed_ms:.3f}")
        table.add_row(
            str(p.trial), p.plan_label, *cells,
            speed, kib(p.memory_bytes), mem, kib(p.param_bytes), f"{p.accuracy:.4f}", drop, p.compute,
            p.measured_on + (" (estimated)" if p.estimated else ""),
        )
    return table


def baseline_line(baseline: FrontPoint | None) -> str:
    if baseline is None:
        return "fp32 baseline: not measured yet in this study"
    return (f"fp32 baseline (trial {baseline.trial}): {baseline.latency_ms:.3f} ms, "
            f"{kib(baseline.memory_bytes)} KiB (params {kib(baseline.param_bytes)} KiB), accuracy {baseline.accuracy:.4f}")


def timing_line(retimed: dict[str, Any], reference: dict[str, Any] | None, estimated: bool = False) -> str:
    """How to read the latency columns."""
    ref = reference or {}
    if estimated:
        text = (f"latency ms: estimated, not timed (no drift to correct; ratios to the {ref.get('plan', 'reference')} "
                "build are kept alike); see `measured on` for the model")
    elif ref.get("latency_ms"):
        text = (f"latency ms: drift-corrected (each trial's ratio to the {ref.get('plan')} reference timed beside "
                f"it, x {ref['latency_ms']:.3f} ms, the reference when the study began); raw ms: as timed, in that trial's window")
    else:
        text = "latency ms: as timed in each trial's own window (a study from before reference timing)"
    if retimed.get("points"):
        text += (f"; re-timed ms: the front and baselines timed together at {retimed['at']} "
                 f"({retimed['rounds']} rounds, {retimed['reference']} reference {retimed['reference_ms']:.3f} ms), "
                 "and speedups from those")
    return text


def sensitivity_lines(sens: Any, task: str, device: str) -> list[str]:
    """`autocomp sensitivity`'s table: accuracy drop (points) per layer and choice, kernel time shares."""
    keys = sorted({k for d in sens.drops.values() for k in d}, key=lambda k: (k[0] != "w", k))
    shares = {b: sens.share(b) for b in sens.latency_ms}
    out = [f"per-layer sensitivity of task {task} on {device}: accuracy drop (points) when only that layer takes "
           f"the choice, on {sens.subset} eval samples (fp32 {sens.accuracy:.4f}); {'; '.join(sens.notes)}",
           f"latency: {sens.latency_source}" + (" (share of the build's kernel time)" if shares else ""),
           f"{'layer':24s} " + " ".join(f"{k:>7s}" for k in keys) + "".join(f" {b + ' %':>8s}" for b in shares)]
    for name, drops in sens.drops.items():
        cells = " ".join(f"{drops[k] * 100:7.1f}" if k in drops else f"{'-':>7s}" for k in keys)
        out.append(f"{name:24s} {cells}" + "".join(f" {shares[b].get(name, 0) * 100:8.1f}" for b in shares))
    out.append(f"measured in {sens.seconds:.1f} s")
    return out


def evaluate_lines(result: Any, label: str, device: str, task: str) -> list[str]:
    """`autocomp evaluate`'s report of one candidate."""
    out: list[str] = []
    out.append(f"{label} on {device} ({result.measured_on}), task {task}")
    threads = f", {result.latency_threads} runtime threads" if result.latency_threads else ""
    out.append(f"  latency   {result.latency_ms:.3f} ms (p10 {result.latency_p10_ms:.3f}, p90 {result.latency_p90_ms:.3f}, "
          f"{result.latency_samples} samples{threads})")
    if result.latency_ratio is not None:
        out.append(f"            {result.latency_ratio:.3f}x the {result.reference} reference timed beside it "
              f"({result.reference_latency_ms:.3f} ms in the same window)")
    out.append(f"  memory    params {kib(result.param_bytes)} KiB + arena {kib(result.arena_bytes)} KiB; "
          f"process peak RSS {kib(result.peak_rss_bytes or 0)} KiB (TVM runtime alone "
          f"{kib(result.runtime_rss_bytes or 0)} KiB, model {kib(result.model_rss_bytes or 0)} KiB)")
    out.append(f"  accuracy  {result.accuracy_compiled:.4f} ({result.accuracy_source}), torch simulation {result.accuracy_sim:.4f}")
    for layer in result.layers:
        out.append(f"    {layer['name']:24s} weights {layer['weight_dtype']:8s} input {layer['activation_dtype']:8s} {layer['compute']}")
    return out


def pick_line(p: FrontPoint, study: str) -> str:
    latency = p.retimed_ms if p.retimed_ms is not None else p.latency_ms
    return (f"trial {p.trial}: {p.plan_label}, accuracy {p.accuracy:.4f}, {latency:.3f} ms, {kib(p.memory_bytes)} KiB "
            f"(export it: autocomp export --study {study} --trial {p.trial} --out DIR)")
