"""`autocomp report`: one self-contained HTML file (plotly, its JS inlined: it opens offline), and a PNG.

Sections: the front (every measured trial, latency vs memory, coloured by accuracy, infeasible ones
grey, uniform baselines and onnxruntime's own fp32 / int8 of the model marked, hover showing the
plan), search progress (hypervolume and best feasible speedup by trial), the chosen point per layer
(table and kernel-time bars), the per-layer sensitivity when the study has it, and where the numbers
come from.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from autocomp.errors import UserError
from autocomp.reports.report_data import ReportData

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:90%}
code{background:#f3f3f3;padding:1px 4px}table.meta td{text-align:left}"""


def _figures(data: ReportData) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go

    kib = 1024.0
    feasible = [p for p in data.points if p.feasible]
    grey = [p for p in data.points if not p.feasible]

    def hover(p: Any) -> str:
        return (f"trial {p.trial}: {html.escape(p.label)}<br>{p.latency_ms:.3f} ms, {p.memory_bytes / kib:.1f} KiB, "
                f"accuracy {p.accuracy:.4f}<br>{p.plan}")

    front = go.Figure()
    front.add_trace(go.Scatter(x=[p.latency_ms for p in grey], y=[p.memory_bytes / kib for p in grey], mode="markers",
                               name="infeasible", marker={"color": "lightgrey", "size": 8},
                               hovertext=[hover(p) for p in grey], hoverinfo="text"))
    front.add_trace(go.Scatter(x=[p.latency_ms for p in feasible], y=[p.memory_bytes / kib for p in feasible],
                               mode="markers", name="feasible",
                               marker={"color": [p.accuracy for p in feasible], "colorscale": "Viridis", "size": 10,
                                       "colorbar": {"title": {"text": "accuracy"}}, "showscale": bool(feasible)},
                               hovertext=[hover(p) for p in feasible], hoverinfo="text"))
    uniform = [p for p in data.points if p.uniform]
    front.add_trace(go.Scatter(x=[p.latency_ms for p in uniform], y=[p.memory_bytes / kib for p in uniform],
                               mode="markers+text", name="uniform baselines", text=[p.label for p in uniform],
                               textposition="top center",
                               marker={"symbol": "diamond-open", "size": 16, "color": "black", "line": {"width": 2}},
                               hovertext=[hover(p) for p in uniform], hoverinfo="text"))
    on_front = {f.trial for f in data.front}
    steps = sorted((p.latency_ms, p.memory_bytes / kib) for p in data.points if p.trial in on_front)
    front.add_trace(go.Scatter(x=[x for x, _ in steps], y=[y for _, y in steps], mode="lines", name="feasible front",
                               line={"shape": "hv", "color": "crimson"}, hoverinfo="skip"))
    for mark in data.onnxruntime:
        front.add_vline(x=mark.latency_ms, line={"dash": "dash", "color": "darkorange"},
                        annotation_text=f"onnxruntime {mark.name}", annotation_position="top")
    front.update_layout(xaxis_title="latency, ms (drift-corrected)", yaxis_title="memory, KiB (weights + arena)",
                        height=520, margin={"t": 30}, legend={"orientation": "h", "y": -0.18})

    progress = go.Figure()
    trials = [t for t, _, _ in data.progress]
    progress.add_trace(go.Scatter(x=trials, y=[hv for _, hv, _ in data.progress], name="hypervolume", mode="lines+markers"))
    progress.add_trace(go.Scatter(x=trials, y=[s for _, _, s in data.progress], name="best feasible speedup over fp32",
                                  mode="lines+markers", yaxis="y2"))
    progress.update_layout(xaxis_title="trial", yaxis_title="hypervolume (latency, memory / fp32; box 1.1 x 1.1)",
                           yaxis2={"title": {"text": "speedup"}, "overlaying": "y", "side": "right"},
                           height=360, margin={"t": 30}, legend={"orientation": "h"})
    figures = [("front", front), ("progress", progress)]

    if data.kernels:
        names = [f"{k} ({layer})" if layer else k for k, _, layer in data.kernels]
        bars = go.Figure(go.Bar(x=[t for _, t, _ in data.kernels], y=names, orientation="h"))
        bars.update_layout(xaxis_title="ms per inference", height=120 + 22 * len(names), margin={"t": 30, "l": 10},
                           yaxis={"autorange": "reversed", "automargin": True})
        figures.append(("kernels", bars))
    return figures


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,d}"
    return str(value)


def _sensitivity(sens: dict[str, Any] | None) -> str:
    if not sens:
        return "<p class=note>This study has no sensitivity step (searched with --no-sensitivity).</p>"
    drops = sens["drops"]
    choices = sorted({c for d in drops.values() for c in d})
    rows = [[name, *[d.get(c) for c in choices]] for name, d in drops.items()]
    lat = sens.get("latency_ms") or {}
    parts = [f"<p>Accuracy drop when only that layer takes the choice (PyTorch simulation, {sens['subset']} eval "
             f"samples; fp32 accuracy {sens['accuracy']:.4f}).</p>", _table(["layer", *choices], rows)]
    if lat:
        builds = list(lat)
        parts += [f"<p>Per-layer kernel time of the baseline builds ({html.escape(sens['latency_source'])}), ms:</p>",
                  _table(["layer", *builds], [[n, *[lat[b].get(n) for b in builds]] for n in drops])]
    return "".join(parts)


def render(data: ReportData) -> str:
    import plotly.io as pio

    figures = _figures(data)
    plots = {name: pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"plot-{name}")
             for i, (name, fig) in enumerate(figures)}
    base, chosen, s = data.baseline, data.chosen, data.settings
    speed = f"{base.latency_ms / chosen.latency_ms:.2f}x fp32, " if base else ""
    summary = (f"{len(data.points)} measured trials, {sum(p.feasible for p in data.points)} feasible, "
               f"{len(data.front)} on the feasible front; task {s.get('task')}, device {s.get('device')}, "
               f"max accuracy drop {s.get('max_accuracy_drop')}")
    layers = _table(["layer", "weight bits", "activation bits", "prune", "parameters", "MACs", "compute"],
                    [[r.name, r.w_bits, r.a_bits, r.prune, r.params, r.macs, r.compute] for r in data.layers])
    front_rows = [[p.trial, p.plan_label, p.latency_ms, p.memory_bytes, p.accuracy,
                   (base.latency_ms / p.latency_ms) if base else None] for p in data.front]
    ort_rows = [[f"onnxruntime {m.name}", m.latency_ms, m.ratio, m.accuracy,
                 (base.latency_ms / m.latency_ms) if base else None] for m in data.onnxruntime]
    ort = (_table(["build", "latency ms", "ratio to TVM fp32", "accuracy", "speedup"], ort_rows) if ort_rows else "")
    meta = dict(data.meta)
    meta["command"] = data.command or "not stored (a study from before autocomp stored its command)"
    if data.config:
        meta["config"] = json.dumps(data.config)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>autocomp report: {html.escape(data.study)}</title>
<style>{STYLE}</style></head><body>
<h1>autocomp report: {html.escape(data.study)}</h1>
<p>{html.escape(summary)}</p>
<h2>Front</h2>
<p class=note>Every measured trial; grey: infeasible; diamonds: the uniform baselines; red: the feasible front.
Latencies are the drift-corrected figures the search compared (each trial timed beside a reference).</p>
{plots['front']}
{_table(["trial", "plan", "latency ms", "memory bytes", "accuracy", "speedup"], front_rows)}
<p class=note>Orange dashed lines: onnxruntime's own builds of the same model, {html.escape(data.onnxruntime_source)}.</p>
{ort}
<h2>Search progress</h2>
{plots['progress']}
<h2>Trial {chosen.trial}: {html.escape(chosen.plan_label)}</h2>
<p>{chosen.latency_ms:.4g} ms ({html.escape(speed)}p10-p90 {chosen.latency_p10_ms:.4g}-{chosen.latency_p90_ms:.4g}),
{chosen.memory_bytes:,d} bytes, accuracy {chosen.accuracy:.4f}</p>
{layers}
<p class=note>Kernel times: {html.escape(data.kernels_source)}.</p>
{plots.get('kernels', '')}
<h2>Per-layer sensitivity</h2>
{_sensitivity(data.sensitivity)}
<h2>Where these numbers come from</h2>
{_table(["", ""], [[k, v] for k, v in meta.items()]).replace("<table>", "<table class=meta>", 1)}
</body></html>
"""


def write_png(data: ReportData, path: Path) -> None:
    """The front as a PNG (matplotlib), for CI logs and issues."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    grey = [p for p in data.points if not p.feasible]
    ok = [p for p in data.points if p.feasible]
    ax.scatter([p.latency_ms for p in grey], [p.memory_bytes / 1024 for p in grey], c="lightgrey", label="infeasible")
    shown = ax.scatter([p.latency_ms for p in ok], [p.memory_bytes / 1024 for p in ok], c=[p.accuracy for p in ok],
                       cmap="viridis", label="feasible")
    if ok:
        fig.colorbar(shown, label="accuracy")
    for p in data.points:
        if p.uniform:
            ax.annotate(p.label, (p.latency_ms, p.memory_bytes / 1024), textcoords="offset points", xytext=(4, 4))
    for mark in data.onnxruntime:
        ax.axvline(mark.latency_ms, color="darkorange", linestyle="--")
        ax.annotate(f"onnxruntime {mark.name}", (mark.latency_ms, 1), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=8, color="darkorange")
    ax.set_xlabel("latency, ms (drift-corrected)")
    ax.set_ylabel("memory, KiB")
    ax.set_title(f"{data.study}: {len(ok)} feasible of {len(data.points)}")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(data: ReportData, out: Path, png: Path | None = None, force: bool = False) -> None:
    """Both files whole or not at all: each is written beside its place, then renamed."""
    import os

    targets = [t for t in (out, png) if t is not None]
    for target in targets:
        if not target.parent.is_dir():
            raise UserError(f"the directory of {target} does not exist; create it first")
        if target.exists() and not force:
            raise UserError(f"{target} already exists; pass --force to replace it")
    text = render(data)
    tmp_html = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp_png = png.with_name(f".{png.name}.tmp{os.getpid()}.png") if png is not None else None
    try:
        tmp_html.write_text(text, encoding="utf-8")
        if png is not None and tmp_png is not None:
            write_png(data, tmp_png)
            os.replace(tmp_png, png)
        os.replace(tmp_html, out)
    finally:
        for tmp in (tmp_html, tmp_png):
            if tmp is not None and tmp.exists():
                tmp.unlink()
