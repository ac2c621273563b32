"""The sensitivity step's one-group prune drops and their cost, against what the search's recovery gives.

    python scripts/bench_sensitivity.py [--task fashion-mnist] [--layers N] [--json]

For every prunable layer (the first N with --layers) and every ratio the step measures, on the step's
eval subset, in this process on one thread:

* `tail`: the step's recovery (50 distillation steps training the pruned layer and the layers after it);
* `whole`: 50 steps training every layer (the step before the prefix was frozen);
* `search`: the search's own recovery of the same single prune (its default steps, every layer): what
  a candidate with only this prune would score, which the two proxies estimate.

Prints each drop in points, each proxy's seconds, and each proxy's mean absolute difference from
`search`. The seconds are one thread's; `autocomp sensitivity` spreads the same jobs over the cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist")
    parser.add_argument("--layers", type=int, default=0, help="only the first N prunable layers (0: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from autocomp.candidate import prepare
    from autocomp.compress.pipeline import float_input_ranges
    from autocomp.device.profiles import load_profile
    from autocomp.measure.accuracy import accuracy_torch, torch_outputs
    from autocomp.plan import CompressionPlan, LayerPlan
    from autocomp.study import sensitivity, sensitivity_pool as pool
    from autocomp.study.config import DEFAULT_FINETUNE_STEPS
    from autocomp.study.space import SearchSpace
    from autocomp.tasks import load_task

    torch.set_num_threads(1)
    profile = load_profile("host")
    ctx = prepare(load_task(args.task), profile, None, DEFAULT_FINETUNE_STEPS)
    space = SearchSpace.for_profile(tuple(ctx.layers), tuple(ctx.prunable), profile)
    task = ctx.task
    subset = replace(task, eval_inputs=task.eval_inputs[: sensitivity.SUBSET],
                     eval_targets=task.eval_targets[: sensitivity.SUBSET])
    base = accuracy_torch(ctx.model, subset)
    ranges = float_input_ranges(ctx.model, list(space.layers), task.example_input, task.calib_data, ctx.protected,
                                ctx.channel_multiple())
    layers = list(space.prunable)[: args.layers or None]
    ratios = sensitivity.measured_ratios(space.prune_choices)

    def drop(outputs: torch.Tensor) -> float:
        return round(100 * (base - float(task.metric(outputs, subset.eval_targets))), 2)

    rows: dict[tuple[str, float], dict[str, float]] = {(n, r): {} for n in layers for r in ratios}
    seconds: dict[str, float] = {}
    for proxy, tail in (("tail", True), ("whole", False)):
        shared = pool.Shared(ctx.model, task.example_input, task.calib_data, ctx.protected,
                             profile.fp16_compute(), ctx.channel_multiple(), ranges,
                             ctx.recovery(sensitivity.RECOVERY_STEPS, from_first_change=tail),
                             subset.eval_inputs, tuple(ctx.layers))
        t = time.perf_counter()
        for name in layers:
            job = pool.LayerJob(name, tuple((f"p{r:g}", LayerPlan(name, 32, 32, r)) for r in ratios))
            for key, out in pool.layer_outputs(shared, job).items():
                rows[(name, float(key[1:]))][proxy] = drop(out)
        seconds[proxy] = round(time.perf_counter() - t, 1)
    for (name, r), row in rows.items():
        plan = CompressionPlan(tuple(LayerPlan(n, 32, 32, r if n == name else 0.0) for n in ctx.layers))
        row["search"] = drop(torch_outputs(ctx.compress(plan), subset.eval_inputs))
    error = {p: round(statistics.mean(abs(row[p] - row["search"]) for row in rows.values()), 2)
             for p in ("tail", "whole")}
    result = {"task": args.task, "cpu": _bench.cpu_banner(), "subset": len(subset.eval_inputs),
              "recovery_steps": sensitivity.RECOVERY_STEPS, "search_steps": ctx.finetune_steps, "seconds": seconds,
              "mean_abs_difference_from_search": error,
              "drops": [{"layer": n, "ratio": r, **row} for (n, r), row in rows.items()]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(result["cpu"])
    print(f"{args.task}: drops in points on {result['subset']} samples; tail/whole: {sensitivity.RECOVERY_STEPS} "
          f"steps, search: {ctx.finetune_steps} steps of every layer")
    print(f"{'layer':<24}{'ratio':>6}{'tail':>8}{'whole':>8}{'search':>8}")
    for (name, r), row in rows.items():
        print(f"{name:<24}{r:>6g}{row['tail']:>8.2f}{row['whole']:>8.2f}{row['search']:>8.2f}")
    print(f"seconds (one thread): tail {seconds['tail']}, whole {seconds['whole']}")
    print(f"mean |drop - search|: tail {error['tail']}, whole {error['whole']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
