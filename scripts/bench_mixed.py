"""What a mixed plan pays: per-layer kernel times of fp32, w8a8, sub-byte and shared weights (w4a8, w2a8,
k4a8, k2a8) and w8a8 with one layer float.

    python scripts/bench_mixed.py [--task fashion-mnist] [--rounds 7] [--json]

Each plan is compiled once for the host; then every plan's kernels are timed through the Relax VM's
instrument hook (measure/kernel_times.py: the kernels between two layers count with the layer after
them), the plans taking turns within each round so they share the machine's minutes. Medians over rounds.
Per one-float-layer plan it prints the transition cost: its total minus w8a8's total with that layer at
its fp32 time. A cost near 0 means the float layer pays only for its own arithmetic (no layout or dtype
kernels around it); w4a8 / w2a8 / k4a8 / k2a8 against w8a8, per layer, show what unpacking (and looking up
a shared-weight codebook) costs, in the kernel where the dot-product template runs the conv, per call elsewhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one array, one object per plan")
    args = parser.parse_args()

    from autocomp.candidate import prepare
    from autocomp.device.profiles import load_profile
    from autocomp.device.threads import local_threads, use_threads
    from autocomp.measure.kernel_times import by_layer, kernel_times
    from autocomp.measure.local import LocalRunner
    from autocomp.plan import CompressionPlan, LayerPlan
    from autocomp.tasks import load_task

    ctx = prepare(load_task(args.task), load_profile("host"))
    layers = list(ctx.layers)
    uniform = CompressionPlan.uniform
    plans = {"fp32": uniform(ctx.layers), "w8a8": uniform(ctx.layers, 8, 8), "w4a8": uniform(ctx.layers, 4, 8),
             "w2a8": uniform(ctx.layers, 2, 8), "k4a8": uniform(ctx.layers, 4, 8, shared=True),
             "k2a8": uniform(ctx.layers, 2, 8, shared=True)}
    for i in range(1, len(layers) - 1):
        plans[f"w8a8, {layers[i]} float"] = CompressionPlan(tuple(
            LayerPlan(n, 32, 32, 0.0) if j == i else LayerPlan(n, 8, 8, 0.0) for j, n in enumerate(layers)))
    sessions = {k: LocalRunner(ctx.profile.measurement).session(ctx.compile(p).built) for k, p in plans.items()}
    use_threads(local_threads(ctx.profile.measurement))
    x = ctx.task.example_input.numpy()
    per_round: dict[str, list[dict[str, float]]] = {k: [] for k in plans}
    kernels: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for k, session in sessions.items():
            calls = kernel_times(session, x, 20)
            kernels[k] = [n for n, _t in calls if not n.startswith("vm.builtin")]
            per_round[k].append(by_layer(calls, layers) or {})
    ms = {k: {n: statistics.median(r[n] for r in rounds) for n in layers} for k, rounds in per_round.items()}
    rows = []
    for k in plans:
        total = sum(ms[k].values())
        row = {"plan": k, "task": args.task, "total_ms": total, "layer_ms": ms[k], "kernels": kernels[k]}
        if k.endswith(" float"):
            name = k.split(", ")[1].removesuffix(" float")
            expected = sum(ms["w8a8"].values()) - ms["w8a8"][name] + ms["fp32"][name]
            row["transition_ms"] = total - expected
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_bench.cpu_banner())
    print(f"per-layer kernel ms, median of {args.rounds} rounds (kernels before a layer count with it)")
    print(f"{'plan':28s} " + " ".join(f"{n[-10:]:>10s}" for n in layers) + f" {'total':>8s} {'transition':>10s}")
    for r in rows:
        extra = f" {r['transition_ms']:+10.4f}" if "transition_ms" in r else ""
        print(f"{r['plan'][:28]:28s} " + " ".join(f"{r['layer_ms'][n]:10.4f}" for n in layers)
              + f" {r['total_ms']:8.4f}{extra}")
    w8 = rows[1]["total_ms"]
    for r in rows[2:6]:
        per_call = sum("floor_divide" in n or "gather" in n for n in r["kernels"])
        print(f"{r['plan']} / w8a8 = {r['total_ms'] / w8:.2f} ({per_call} per-call unpack / lookup kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
