"""Search quality: autocomp's search against random sampling with the same trial budget.

    python scripts/bench_search.py [--tasks fashion-mnist,fashion-mobilenet] [--seeds 0,1,2] [--trials 32]
                                   [--max-accuracy-drop 0.01] [--json]

For each task and seed, two searches on the host device into a temporary SQLite study: autocomp's
(its default sampler, TPE) and Optuna's RandomSampler, both starting from the same enqueued uniform
baselines. After both searches of a task and seed, both studies' fronts and baselines are compiled
again and re-timed together beside the reference, in one window (the machine's speed drifts between
windows by up to 1.8x, and not evenly across kernels: hypervolumes from two windows differed by 25%
on the same baselines), and every latency figure below comes from that one window:

- feasible_fraction: feasible trials among those the search proposed and measured (the uniform baselines
  excluded; the sensitivity step's knapsack plans count as the search's); screened: sampled candidates
  the simulation screened out (pruned before compiling; they do not count towards --trials, search.py);
  feasible_fraction_with_screened: the same share with the screened ones counted as proposed;
- hypervolume: of the feasible re-timed points in (latency, memory), each divided by the fp32 trial's,
  reference point (1.1, 1.1); hypervolume_uniform: the same of the feasible uniform baselines alone
  (fp32, w8a8, w8a8 p0.25); hypervolume_unpruned: of fp32 and w8a8 alone (issue 17's table: the pruned
  baseline was added later, distilled, and is a strong point of its own);
- best_speedup: fp32 latency / the fastest feasible point's; best_speedup_vs_w8a8 likewise against the
  uniform w8a8 baseline; best_speedup_vs_ort: onnxruntime fp32 (the task's fp32 model exported to ONNX,
  same input) / the fastest feasible point's, timed interleaved right after the re-timing;
- neighbours: sampled trials that are neighbours of the feasible front (study/neighbours.py), and of them
  the feasible and the screened ones;
- smallest_memory_ratio: the smallest feasible memory / fp32 memory; wall_s: the search's wall time.

A feasible point keeps the accuracy drop within --max-accuracy-drop of fp32 on the task's eval set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402

from autocomp.study.neighbours import ORIGIN_ATTR  # noqa: E402
from autocomp.study.pareto import hypervolume_2d  # noqa: E402  (reference point (1.1, 1.1))
from autocomp.study.space import FIXED_PLAN  # noqa: E402


def one_search(task: str, seed: int, sampler: str, args: argparse.Namespace, url: str) -> tuple[Any, float]:
    """Run one search: the prepared search (its study and context) and its wall time."""
    from autocomp.study.search import SearchConfig, prepare_search

    name = f"{task}-{sampler}-{seed}"
    cfg = SearchConfig(task=task, device="host", trials=args.trials, storage=url, study=name, seed=seed,
                       sampler="random" if sampler == "random" else "tpe", max_accuracy_drop=args.max_accuracy_drop,
                       sensitivity=sampler != "random")  # random sampling: the baselines, then the sampler alone
    t0 = time.perf_counter()
    prepared = prepare_search(cfg)
    prepared.run()
    return prepared, time.perf_counter() - t0


def retime_together(studies: list[Any], ctx: Any) -> list[dict[str, Any]]:
    """Each study's front and uniform baselines (remeasure.trials_to_retime) timed in one window
    (remeasure.time_together): the samplers' studies of one task and seed are compared on figures timed
    next to each other. Per study, trial number -> {"latency_ms"}."""
    from autocomp.study.remeasure import time_together, trials_to_retime

    chosen = [(i, t) for i, study in enumerate(studies) for t in trials_to_retime(study)]
    _runner, _ref, comparisons = time_together([t for _, t in chosen], ctx)
    out: list[dict[str, Any]] = [{} for _ in studies]
    for (i, t), c in zip(chosen, comparisons):
        out[i][str(t.number)] = {"latency_ms": c.candidate.median_ms}
    return out


def summarise(task: str, seed: int, sampler: str, study: Any, points: dict[str, Any], ctx: Any,
              wall: float) -> dict:
    """One row of the table, from `points` (this study's share of the joint re-timing)."""
    from autocomp.study import pareto

    completed = pareto.completed(study)
    by_number = {t.number: t for t in completed}
    # the uniform baselines, by plan: the knapsack proposals are enqueued too, but they are the search's own
    baseline_numbers = {t.number for t in completed if FIXED_PLAN in t.user_attrs and uniform_plan(t)}
    proposed = [t for t in completed if t.number not in baseline_numbers]
    fp32 = pareto.baseline(study)
    w8a8 = next((t for t in completed if t.user_attrs["result"]["plan_label"] == "w8a8"), None)
    f_ms, f_mem = points[str(fp32.trial)]["latency_ms"], fp32.memory_bytes

    def norm(n: int) -> tuple[float, float]:
        return points[str(n)]["latency_ms"] / f_ms, by_number[n].user_attrs["result"]["memory_bytes"] / f_mem

    feasible = [int(n) for n in points if pareto.feasible(by_number[int(n)])]
    uniform = [n for n in feasible if n in baseline_numbers]
    unpruned = [n for n in uniform if not any(lp["prune"] > 0 for lp in by_number[n].user_attrs["plan"]["layers"])]
    fastest = min(feasible, key=lambda n: points[str(n)]["latency_ms"])
    ort = ort_ratio(ctx, by_number[fastest], Path(tempfile.mkdtemp(prefix="bench-search-")))
    screened = sum("screened" in t.user_attrs for t in study.get_trials(deepcopy=False))
    feasible_proposed = sum(pareto.feasible(t) for t in proposed)
    near = [t for t in study.get_trials(deepcopy=False) if ORIGIN_ATTR in t.user_attrs]
    return {
        "task": task, "sampler": sampler, "seed": seed, "trials": len(completed),
        "feasible_fraction": (feasible_proposed / len(proposed)) if proposed else 0.0,
        "screened": screened,
        "feasible_fraction_with_screened": feasible_proposed / max(1, len(proposed) + screened),
        "neighbours": len(near), "neighbours_feasible": sum(pareto.feasible(t) for t in near),
        "neighbours_screened": sum("screened" in t.user_attrs for t in near),
        "hypervolume": hypervolume_2d([norm(n) for n in feasible]),
        "hypervolume_uniform": hypervolume_2d([norm(n) for n in uniform]),
        "hypervolume_unpruned": hypervolume_2d([norm(n) for n in unpruned]),
        "best_speedup": f_ms / points[str(fastest)]["latency_ms"],
        "best_speedup_vs_w8a8": (points[str(w8a8.number)]["latency_ms"] / points[str(fastest)]["latency_ms"]
                                 if w8a8 is not None and str(w8a8.number) in points else None),
        "best_speedup_vs_ort": ort,
        "best_plan": by_number[fastest].user_attrs["result"]["plan_label"],
        "best_accuracy_drop": study.user_attrs["autocomp"]["baseline_accuracy"]
        - by_number[fastest].user_attrs["result"]["accuracy_compiled"],
        "smallest_memory_ratio": min(norm(n)[1] for n in feasible),
        "wall_s": wall,
        "wall_s_per_trial": wall / max(1, len(completed)),
        **candidate_seconds([t for t in completed if "reused_from_trial" not in t.user_attrs]),
    }


def uniform_plan(trial) -> bool:  # type: ignore[no-untyped-def]
    """Every layer at the same bits, and every pruned group at one ratio: the space's baselines
    (fp32, fp16, w8a8, w8a8 p0.25), not the knapsack's mixed plans."""
    layers = trial.user_attrs["plan"]["layers"]
    return len({(lp["w_bits"], lp["a_bits"], lp.get("shared", False)) for lp in layers}) == 1 and len({lp["prune"] for lp in layers} - {0.0}) <= 1


def candidate_seconds(trials: list) -> dict:
    """What one candidate costs, from its own stage timings (distillation counts in `compress`): the
    median and the largest, and the median of the pruned ones (the ones that are distilled)."""
    def total(t) -> float:  # type: ignore[no-untyped-def]
        return sum(t.user_attrs["result"].get("timings_s", {}).values())

    pruned = [total(t) for t in trials if any(lp.get("prune", 0) > 0 for lp in t.user_attrs["plan"]["layers"])]
    every = [total(t) for t in trials]
    return {"candidate_s_median": statistics.median(every) if every else None, "candidate_s_max": max(every, default=None),
            "pruned_candidate_s_median": statistics.median(pruned) if pruned else None}


def ort_ratio(ctx, trial, tmp: Path) -> float:  # type: ignore[no-untyped-def]
    """onnxruntime fp32 latency / the trial's, timed interleaved (bench_latency.py's method)."""
    from autocomp.lower.onnx_export import export_onnx
    from autocomp.measure.local import LocalRunner
    from autocomp.plan import CompressionPlan

    x = ctx.task.example_input
    onnx_path = tmp / "fp32.onnx"
    export_onnx(ctx.model, x, onnx_path)
    runner = LocalRunner(ctx.profile.measurement, peak_rss=False)
    session = runner.session(ctx.compile(CompressionPlan.from_dict(trial.user_attrs["plan"])).built)
    timings = _bench.interleaved_ms({"ort": _bench.ort_timer(onnx_path, x.numpy()),
                                     "autocomp": lambda: runner.time(session, x.numpy()).median_ms}, rounds=5)
    return timings["ort"] / timings["autocomp"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="fashion-mnist,fashion-mobilenet")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01)
    parser.add_argument("--samplers", default="autocomp,random", help="a subset, to rerun one side only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-search-')}/studies.db"
    rows = []
    samplers = args.samplers.split(",")
    for task in args.tasks.split(","):
        for seed in map(int, args.seeds.split(",")):
            runs = [one_search(task, seed, sampler, args, url) for sampler in samplers]
            studies = [prepared.study for prepared, _wall in runs]
            ctx = runs[0][0].ctx
            for sampler, study, points, (_prepared, wall) in zip(samplers, studies, retime_together(studies, ctx), runs):
                rows.append(summarise(task, seed, sampler, study, points, ctx, wall))
                if not args.json:
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_bench.cpu_banner())
    print(f"{args.trials} trials per search, max accuracy drop {args.max_accuracy_drop}; latencies from one "
          "re-timing window per task and seed, shared by the samplers' fronts and baselines")
    cols = ("task", "sampler", "seed", "feasible_fraction", "hypervolume", "hypervolume_uniform",
            "hypervolume_unpruned", "screened", "feasible_fraction_with_screened", "neighbours",
            "neighbours_feasible", "neighbours_screened", "best_speedup",
            "best_speedup_vs_w8a8", "best_speedup_vs_ort", "smallest_memory_ratio", "wall_s", "candidate_s_median",
            "candidate_s_max", "pruned_candidate_s_median", "best_plan")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    for task in args.tasks.split(","):
        for sampler in samplers:
            mine = [r for r in rows if r["task"] == task and r["sampler"] == sampler]
            mean = {k: statistics.mean(r[k] for r in mine) for k in
                    ("feasible_fraction", "hypervolume", "hypervolume_uniform", "hypervolume_unpruned", "best_speedup",
                     "smallest_memory_ratio")}
            print(f"mean {task} {sampler}: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
        pairs = [(a, r) for a in rows for r in rows if a["task"] == r["task"] == task and a["seed"] == r["seed"]
                 and (a["sampler"], r["sampler"]) == ("autocomp", "random")]
        if pairs:
            ratios = [a["hypervolume"] / r["hypervolume"] for a, r in pairs]
            print(f"{task}: autocomp's hypervolume / random's, timed in one window per seed: "
                  + ", ".join(f"{x:.3f}" for x in ratios) + f" (mean {statistics.mean(ratios):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
