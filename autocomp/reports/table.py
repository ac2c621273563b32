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


def timing_line(retimed: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """How to read the latency columns."""
    ref = reference or {}
    if ref.get("latency_ms"):
        text = (f"latency ms: drift-corrected (each trial's ratio to the {ref.get('plan')} reference timed beside "
                f"it, x {ref['latency_ms']:.3f} ms, the reference when the study began); raw ms: as timed, in that trial's window")
    else:
        text = "latency ms: as timed in each trial's own window (a study from before reference timing)"
    if retimed.get("points"):
        text += (f"; re-timed ms: the front and baselines timed together at {retimed['at']} "
                 f"({retimed['rounds']} rounds, {retimed['reference']} reference {retimed['reference_ms']:.3f} ms), "
                 "and speedups from those")
    return text
