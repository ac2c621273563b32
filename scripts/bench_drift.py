"""Timing drift across a search: one plan timed again and again while a search runs, raw and corrected.

    python scripts/bench_drift.py [--task fashion-mnist] [--trials 30] [--probes 10] [--plan w8a8-p0.25] [--json]

A search runs (one candidate at a time, as `--jobs 1`); after every few trials the same compiled probe
plan is timed exactly as a trial is timed (LocalRunner.compare: A/B rounds beside the reference build).
The probes are spread over the search's whole wall time, so they meet the machine's slow and fast windows.
Printed per probe: the raw median, the ratio to the reference timed beside it, and the drift-corrected
figure (ratio x the study's reference figure); then the spread (max / min) of the raw and the corrected
figures over all probes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402


def probe_plan(spec: str, ctx):  # type: ignore[no-untyped-def]
    from autocomp.plan_spec import resolve_plan
    from autocomp.plan import CompressionPlan

    if spec == "w8a8-p0.25":
        return CompressionPlan.uniform(ctx.layers, 8, 8, 0.25, ctx.prunable)
    if spec == "mixed":  # int8 throughout but one fp32 layer, w4 in the middle, half the groups pruned
        from autocomp.plan import LayerPlan

        layers = []
        for i, name in enumerate(ctx.layers):
            w, a = (32, 32) if i == 1 else (8, 8)
            w = 4 if i == len(ctx.layers) // 2 else w
            layers.append(LayerPlan(name, w, a, 0.25 if name in ctx.prunable and i % 2 == 0 else 0.0))
        return CompressionPlan(tuple(layers))
    return resolve_plan(spec, ctx)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--plan", default="w8a8-p0.25", help="w8a8-p0.25, mixed, a uniform name or a plan JSON file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from autocomp.measure.local import LocalRunner
    from autocomp.study.search import SearchConfig, prepare_search

    url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-drift-')}/s.db"
    prepared = prepare_search(SearchConfig(task=args.task, device="host", trials=args.trials, storage=url,
                                           study="drift", jobs=1, max_accuracy_drop=0.01))
    ctx = prepared.ctx
    reference_ms = prepared.settings["reference"]["latency_ms"]
    plan = probe_plan(args.plan, ctx)
    runner = LocalRunner(ctx.profile.measurement, peak_rss=False)
    session = runner.session(ctx.compile(plan).built)
    ref_session = runner.reference_session(ctx.reference())
    x = ctx.task.example_input.numpy()
    every = max(1, args.trials // max(1, args.probes - 1))
    probes: list[dict] = []
    t0 = time.time()

    def probe() -> None:
        _ref, (c,) = runner.compare([session], ref_session, x)
        probes.append({"t_s": round(time.time() - t0, 1), "raw_ms": c.candidate.median_ms,
                       "reference_ms": c.reference.median_ms, "ratio": c.ratio, "corrected_ms": c.ratio * reference_ms})
        if not args.json:
            p = probes[-1]
            print(f"probe {len(probes):2d} at {p['t_s']:6.1f} s: raw {p['raw_ms']:.4f} ms, reference {p['reference_ms']:.4f} ms, "
                  f"ratio {p['ratio']:.4f}, corrected {p['corrected_ms']:.4f} ms", flush=True)

    def on_trial(done: int, total: int, trial) -> None:  # type: ignore[no-untyped-def]
        if done % every == 0 and len(probes) < args.probes - 1:
            probe()

    probe()
    prepared.run(on_trial)
    while len(probes) < args.probes:
        probe()
    raw = [p["raw_ms"] for p in probes]
    corrected = [p["corrected_ms"] for p in probes]
    summary = {"task": args.task, "plan": plan.summary(), "reference": ctx.reference().label, "probes": len(probes),
               "span_s": probes[-1]["t_s"], "raw_spread": max(raw) / min(raw),
               "corrected_spread": max(corrected) / min(corrected), "reference_ms": reference_ms}
    if args.json:
        print(json.dumps({"summary": summary, "probes": probes}, indent=2))
        return 0
    print(_bench.cpu_banner())
    print(f"{summary['plan']} timed {summary['probes']} times over {summary['span_s']:.0f} s of a {args.trials}-trial "
          f"search beside the {summary['reference']} reference: raw spread {summary['raw_spread']:.3f}x (max/min), "
          f"corrected spread {summary['corrected_spread']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
