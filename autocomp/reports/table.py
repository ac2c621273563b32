"""Terminal output: the front as a rich table, sizes in human units."""

from __future__ import annotations

from typing import Any

from autocomp.study.pareto import FrontPoint


def kib(n: float) -> str:
    return f"{n / 1024:,.1f}"


def front_table(points: list[FrontPoint], baseline: FrontPoint | None, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, justify in [("trial", "right"), ("plan", "left"), ("latency ms", "right"), ("p10-p90", "right"),
                         ("speedup", "right"), ("memory KiB", "right"), ("mem ratio", "right"),
                         ("params KiB", "right"), ("accuracy", "right"), ("drop", "right"),
                         ("compute", "left"), ("measured on", "left")]:  # noqa: E501
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in points:
        speed = f"{baseline.latency_ms / p.latency_ms:.2f}x" if baseline else "-"
        mem = f"{p.memory_bytes / baseline.memory_bytes:.2f}" if baseline else "-"
        drop = f"{(baseline.accuracy - p.accuracy) * 100:+.1f} pt" if baseline else "-"
        table.add_row(
            str(p.trial), p.plan_label, f"{p.latency_ms:.3f}", f"{p.latency_p10_ms:.2f}-{p.latency_p90_ms:.2f}",
            speed, kib(p.memory_bytes), mem, kib(p.param_bytes), f"{p.accuracy:.4f}", drop, p.compute,
            p.measured_on + (" (estimated)" if p.estimated else ""),
        )
    return table


def baseline_line(baseline: FrontPoint | None) -> str:
    if baseline is None:
        return "fp32 baseline: not measured yet in this study"
    return (f"fp32 baseline (trial {baseline.trial}): {baseline.latency_ms:.3f} ms, "
            f"{kib(baseline.memory_bytes)} KiB (params {kib(baseline.param_bytes)} KiB), accuracy {baseline.accuracy:.4f}")
