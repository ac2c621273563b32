"""Seconds per candidate of a search, with a cold and with a warm tuning database, and with parallel builds.

    python scripts/bench_search_cost.py [--trials 20] [--tune-trials 6] [--jobs 0] [--task fashion-mnist] [--json]

Runs two searches on the host device into a temporary study storage: the first with an empty tuning
database (new conv workloads are tuned: `tune-trials` tiles timed each), the second, a new study, with
the database the first one left. Prints the median seconds per measured candidate split into stages
(compress, simulate, lower, compile incl. tuning, latency, evaluate, peak_rss) and the database hit rate of the
second search (VNNI kernels use one fixed schedule and are not counted). Trials that reuse an earlier
identical plan are not counted (they cost nothing).

Tile tuning times kernels, so those two searches build one candidate at a time. A third search uses the
warm database without tuning and compiles `--jobs` candidates at once (0: one per core), timing each
only when no compile runs; `wall_s_per_trial` (elapsed / trials) compares it with the warm search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402

STAGES = ("compress", "simulate", "lower", "compile", "latency", "evaluate", "peak_rss")


def run(study: str, url: str, args: argparse.Namespace, tune_trials: int, jobs: int) -> tuple[list[dict], float]:
    import optuna

    from autocomp.study.search import SearchConfig, load_study, run_search

    out = run_search(SearchConfig(task=args.task, device="host", trials=args.trials, storage=url, study=study,
                                  tune_trials=tune_trials, jobs=jobs))
    trials = load_study(study, url).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return [t.user_attrs["result"] for t in trials if "reused_from_trial" not in t.user_attrs], out.elapsed_s / out.trials_run


def summary(run_out: tuple[list[dict], float]) -> dict:
    results, wall = run_out
    per_stage = {s: statistics.median(r["timings_s"].get(s, 0.0) for r in results) for s in STAGES}
    totals = [sum(r["timings_s"].get(s, 0.0) for s in STAGES) for r in results]
    statuses = [v for r in results for v in r["kernels"].values() if "VNNI" not in v and "tile" in v or "tuned" in v]
    hits = sum("tuning database" in v for v in statuses)
    return {"candidates": len(results), "median_s": statistics.median(totals), "wall_s_per_trial": wall,
            "stages_median_s": per_stage,
            "kernels_counted": len(statuses), "cache_hit_rate": hits / len(statuses) if statuses else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--tune-trials", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=0, help="parallel builds of the third search (0: one per core)")
    parser.add_argument("--task", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-cost-"))
    os.environ["AUTOCOMP_TUNING_DIR"] = str(tmp / "tuning")  # cold: empty
    url = f"sqlite:///{tmp / 'studies.db'}"
    from autocomp.study.buildpool import default_jobs

    jobs = args.jobs or default_jobs()
    cold = summary(run("cold", url, args, args.tune_trials, 1))
    warm = summary(run("warm", url, args, args.tune_trials, 1))
    parallel = summary(run("parallel", url, args, 0, jobs))
    out = {"cold_median_s": cold["median_s"], "warm_median_s": warm["median_s"],
           "cache_hit_rate": warm["cache_hit_rate"], "cold": cold, "warm": warm, "parallel": parallel,
           "parallel_jobs": jobs, "parallel_speedup": warm["wall_s_per_trial"] / parallel["wall_s_per_trial"],
           "trials": args.trials, "tune_trials": args.tune_trials}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(_bench.cpu_banner())
    print(f"{args.trials} trials per search, {args.tune_trials} tiles timed per new conv workload")
    print(f"{'':9s} {'cands':>5s} {'median s':>8s} {'wall/trial':>10s} " + " ".join(f"{s:>9s}" for s in STAGES)
          + f" {'db hits':>8s}")
    for name, s in (("cold", cold), ("warm", warm), (f"warm x{jobs}", parallel)):
        print(f"{name:9s} {s['candidates']:5d} {s['median_s']:8.2f} {s['wall_s_per_trial']:10.2f} "
              + " ".join(f"{s['stages_median_s'][k]:9.2f}" for k in STAGES) + f" {s['cache_hit_rate']:8.0%}")
    print(f"parallel builds ({jobs} jobs, timing alone): {out['parallel_speedup']:.2f}x the warm search's trials per second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
