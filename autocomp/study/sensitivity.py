"""Per-layer sensitivity: what each choice alone costs in accuracy, and what each layer costs in time.

Accuracy: the fp32 model with only one layer quantized (each bit width the space offers) or only one
pruning group pruned (each ratio, recovered by a short distillation like the search's, which trains only
the pruned layer and what follows it: compress.distill.frozen_prefix), on a subset of
the eval data, in the PyTorch simulation: the drop from the fp32 model on the same subset.
Latency: each layer's kernels timed inside the VM (its instrument hook) on the fp32 and the w8a8 builds,
so the search knows where the time goes. The search uses both (search.py): choices that alone break the
accuracy budget are not sampled, and a knapsack over (latency saved, accuracy cost), as HAWQ-V3 picks bit
widths with an integer program, proposes the first plans after the baselines: for latency, for memory
and for both.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from autocomp.measure.kernel_times import LAYER_OPS, by_layer, kernel_times
from autocomp.plan import CompressionPlan, LayerPlan, parse_weight_choice, stored_bits, weight_choice

SUBSET = 300  # eval samples per sensitivity measurement
RECOVERY_STEPS = 50  # distillation steps after a one-group prune (the search's default is more)


@dataclass(frozen=True)
class Sensitivity:
    subset: int
    accuracy: float  # the fp32 model's, on the subset
    drops: dict[str, dict[str, float]]  # layer -> choice ("w8a8", "w4a32", "p0.5", ...) -> accuracy drop
    latency_ms: dict[str, dict[str, float]]  # build ("fp32", "w8a8") -> layer -> its kernels' time, ms
    latency_source: str  # "vm instrument (measured)" or why not
    seconds: float
    notes: list[str] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)  # layer -> weight count (what its bits multiply)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sensitivity:
        return cls(**data)

    def share(self, build: str) -> dict[str, float]:
        times = self.latency_ms.get(build, {})
        total = sum(times.values()) or 1.0
        return {name: t / total for name, t in times.items()}


def choice_key(w: int | str, a: int | str) -> str:
    """"w8a8", "w4a32", "k2a8" (shared weights, 2-bit codebook indices)."""
    return f"{w if isinstance(w, str) else f'w{w}'}a{a}"


def _layer(name: str, w: int | str, a: int, prune: float) -> LayerPlan:
    w_bits, shared = parse_weight_choice(w)
    return LayerPlan(name, w_bits, a, prune, shared)


def measure(ctx: Any, space: Any, workers: int | None = None) -> Sensitivity:
    """Every single-layer choice of `space`, measured on `ctx`'s task (see the module docstring), a
    layer at a time in `workers` processes (default: one per core; sensitivity_pool)."""
    from autocomp.compress.pipeline import float_input_ranges
    from autocomp.device.timing_lock import shared_use
    from autocomp.measure import accuracy
    from autocomp.study import sensitivity_pool as pool
    from autocomp.study.buildpool import default_jobs

    t0 = time.perf_counter()
    task = ctx.task
    subset = replace(task, eval_inputs=task.eval_inputs[:SUBSET], eval_targets=task.eval_targets[:SUBSET])
    recovery = ctx.recovery(RECOVERY_STEPS, from_first_change=True)
    ratios = measured_ratios(space.prune_choices)
    jobs = [pool.LayerJob(name, tuple((choice_key(w, a), _layer(name, w, a, 0.0)) for w, a in layer_choices(space)))
            for name in space.layers]  # a distillation per prune ratio is the long part: a job each, evenly spread
    jobs += [pool.LayerJob(name, ((f"p{r:g}", _layer(name, 32, 32, r)),)) for name in space.prunable for r in ratios]
    with shared_use():
        base = accuracy.accuracy_torch(ctx.model, subset)
        ranges = float_input_ranges(ctx.model, list(space.layers), task.example_input, task.calib_data, ctx.protected,
                                    ctx.channel_multiple())  # once, not once per int8 choice
        shared = pool.Shared(ctx.model, task.example_input, task.calib_data, ctx.protected, ctx.profile.fp16_compute(),
                             ctx.channel_multiple(), ranges, recovery, subset.eval_inputs, tuple(ctx.layers))
        outputs = pool.run(shared, jobs, default_jobs() if workers is None else workers)
    drops = {name: {key: base - float(task.metric(out, subset.eval_targets)) for key, out in outputs[name].items()}
             for name in space.layers}
    latency, source = layer_latency(ctx, sub_byte=any(isinstance(w, int) and w < 8 for w in space.w_choices))
    notes = [f"prune drops after {RECOVERY_STEPS} distillation steps" if recovery else "prune drops without recovery"]
    skipped = sorted(set(r for r in space.prune_choices if r > 0) - set(measured_ratios(space.prune_choices)))
    if skipped and space.prunable:
        notes.append("not measured: prune ratios " + ", ".join(f"{r:g}" for r in skipped)
                     + " (the knapsack costs each at the next larger measured ratio's drop; never excluded)")
    modules = dict(ctx.model.named_modules())
    weights = {name: int(modules[name].weight.numel()) for name in space.layers if name in modules}
    return Sensitivity(len(subset.eval_inputs), base, drops, latency, source, time.perf_counter() - t0, notes,
                       weights)


def measured_ratios(choices: tuple[float, ...]) -> list[float]:
    """The prune ratios whose drop is measured: all of up to three, else every other one down from the
    largest (0.75, 0.5, 0.25 of 0.125..0.75). Each costs a distillation per layer; the ones between are
    costed at the next larger measured ratio's drop (prune_drop): the finer grid doubled the step's time."""
    ratios = sorted((r for r in choices if r > 0), reverse=True)
    return ratios if len(ratios) <= 3 else ratios[::2]


def prune_drop(drops: dict[str, float], ratio: float, choices: tuple[float, ...]) -> float | None:
    """`ratio`'s measured drop, else the next larger measured ratio's (None: nothing measured above)."""
    if f"p{ratio:g}" in drops:
        return drops[f"p{ratio:g}"]
    larger = sorted(r for r in choices if r > ratio and f"p{r:g}" in drops)
    return drops[f"p{larger[0]:g}"] if larger else None


def layer_cost(drops: dict[str, float], w: int | str, a: int, ratio: float) -> float:
    """A layer's single-layer accuracy cost in the profile (`drops`, one layer's): its bits' drop (0 for
    fp32, or a pair not measured) plus its prune ratio's (prune_drop over the measured ratios; 0 when
    none is measured at or above it)."""
    bits = 0.0 if w == 32 and a == 32 else drops.get(choice_key(w, a), 0.0)
    measured = tuple(float(k[1:]) for k in drops if k.startswith("p"))
    return bits + ((prune_drop(drops, ratio, measured) or 0.0) if ratio > 0 else 0.0)


def layer_choices(space: Any) -> list[tuple[int | str, int]]:
    """(weight choice, activation bits) pairs measured per layer: the pairs a layer computes natively
    (integer or shared weights with int8 inputs, fp16 with fp16) and weight-only compression (fp32 inputs)."""
    return [(w, a) for w in space.w_choices for a in space.a_choices
            if (a == 8 and stored_bits(w) <= 8) or (a == 16 and w == 16) or (a == 32 and w != 32)]


def layer_latency(ctx: Any, runs: int = 20, sub_byte: bool = True) -> tuple[dict[str, dict[str, float]], str]:
    """Per build (fp32, w8a8 and, where the space offers 2- or 4-bit weights, w4a8, each where the device
    computes it): each layer's kernel time, the median over `runs` instrumented calls; the kernels between
    two layers (requantize, transpose, pool) are counted with the layer after them. Only on a locally
    measured device."""
    from autocomp.measure.local import LocalRunner

    opts = ctx.options
    if ctx.profile.measure != "local" or (opts is not None and (opts.tracker or opts.estimate)):
        return {}, "not measured: the device is not this machine (the VM instrument runs locally)"
    builds = {"fp32": CompressionPlan.uniform(ctx.layers)}
    if "int8" in ctx.profile.precisions:
        builds["w8a8"] = CompressionPlan.uniform(ctx.layers, 8, 8)
    if sub_byte and "int4" in ctx.profile.precisions:  # sub-byte convs may take another kernel (AVX2: 0.8x w8's time)
        builds["w4a8"] = CompressionPlan.uniform(ctx.layers, 4, 8)
    from autocomp.device.threads import local_threads, master_off_worker_cores, use_threads
    from autocomp.device.timing_lock import shared_use, timing_lock

    out: dict[str, dict[str, float]] = {}
    for label, plan in builds.items():
        if label == ctx.reference().label:
            built = ctx.reference().built
        else:
            with shared_use():
                built = ctx.compile(plan).built
        session = LocalRunner(ctx.profile.measurement).session(built)
        use_threads(local_threads(ctx.profile.measurement))
        with timing_lock(), master_off_worker_cores():  # kernel times are timings: quiet cores, as for a trial
            per_call = kernel_times(session, ctx.task.example_input.numpy(), runs)
        layers = by_layer(per_call, ctx.layers)
        if layers is None and label == "w4a8":
            continue  # optional: the knapsack costs sub-byte weights at w8a8's times without it
        if layers is None:
            found = sum(any(op in n for op in LAYER_OPS) for n, _ in per_call)
            return {}, (f"not measured: the {label} build runs {found} layer kernels for {len(ctx.layers)} layers "
                        "(e.g. Winograd splits a conv), so kernels cannot be told apart by layer")
        out[label] = layers
    return out, "vm instrument (measured)"


def excluded(sens: Sensitivity, space: Any, max_drop: float) -> dict[str, list[Any]]:
    """Choices not offered to the sampler (enqueued plans may still hold them, space.FIXED_PLAN):

    * a choice that alone drops accuracy by more than the budget, except the values the uniform
      baselines use: single-group prune drops (50 distillation steps, 300 samples) are noisy and
      pessimistic; on the built-in task groups measured over the budget at 0.25 alone are inside it
      all together at 0.25 after the search's 150 steps (`w8a8 p0.25`: 0.9 points);
    * on a layer whose measured int8 kernels are faster than its fp32 ones and whose int8 alone costs
      no accuracy the subset can show (at most one sample's worth), fp32 weights (w32) and fp32 inputs
      (a32): they are slower and larger for nothing. In searches of the built-in task 7 of 9 sampled
      plans kept some float layer and were dominated by uniform w8a8.
    """
    keep_w = {weight_choice(lp) for _, plan in space.baselines() for lp in plan.layers}
    keep_a = {lp.a_bits for _, plan in space.baselines() for lp in plan.layers}
    keep_p = {lp.prune for _, plan in space.baselines() for lp in plan.layers}
    out: dict[str, list[Any]] = {}
    fp32, int8 = sens.latency_ms.get("fp32", {}), sens.latency_ms.get("w8a8", {})
    for name, drops in sens.drops.items():
        for w in space.w_choices:
            costs = [d for k, d in drops.items() if k.startswith(choice_key(w, ""))]
            if w not in keep_w and costs and min(costs) > max_drop:
                out.setdefault(f"w_bits:{name}", []).append(w)
        for ratio in space.prune_choices:
            d = drops.get(f"p{ratio:g}")
            if ratio not in keep_p and d is not None and d > max_drop:
                out.setdefault(f"prune:{name}", []).append(ratio)
        for a in space.a_choices:
            costs = [d for k, d in drops.items() if k.endswith(f"a{a}") and not k.startswith("w32")]
            if a not in keep_a and costs and min(costs) > max_drop:
                out.setdefault(f"a_bits:{name}", []).append(a)
        if _int8_dominates(drops, fp32.get(name), int8.get(name), 1.0 / max(sens.subset, 1), space):
            for param, value in ((f"w_bits:{name}", 32), (f"a_bits:{name}", 32)):
                if value not in out.get(param, []):
                    out.setdefault(param, []).append(value)
    return out


def _int8_dominates(drops: dict[str, float], fp32_ms: float | None, int8_ms: float | None, tol: float,
                    space: Any) -> bool:
    """Whether int8 on this layer is measured faster than fp32 and costs no more accuracy (within `tol`)
    than fp32 (drop 0) or than weight-only compression (fp32 inputs, computed in fp32) at any weight width."""
    if fp32_ms is None or int8_ms is None or int8_ms >= fp32_ms or 8 not in space.a_choices:
        return False
    w8 = drops.get(choice_key(8, 8))
    if w8 is None or w8 > tol:
        return False
    return all(drops[choice_key(w, 8)] <= drops[choice_key(w, 32)] + tol for w in space.w_choices
               if w != 32 and choice_key(w, 8) in drops and choice_key(w, 32) in drops)


OBJECTIVES = (("latency", (0.5, 0.8, 1.0)), ("balanced", (1.0,)), ("memory", (1.0,)))


def knapsack_plans(sens: Sensitivity, space: Any, max_drop: float, fractions: tuple[float, ...] | None = None,
                   bins: int = 200, check: Callable[[list[CompressionPlan]], list[bool]] | None = None
                   ) -> list[CompressionPlan]:
    """Plans that save the most for a summed single-layer accuracy cost within `fraction` x the budget
    (a multiple-choice knapsack, by dynamic programming over the cost in `bins` steps), one per objective
    and fraction (OBJECTIVES; `fractions` replaces the latency objective's and drops the others):

    * latency: measured kernel time saved. Int8 on a layer saves its fp32 kernel time minus its w8a8
      one (2- and 4-bit weights: its w4a8 one, where measured: their kernel may differ, `_quantized_ms`);
      pruning by r saves r x that time (its kernels shrink with its output channels);
    * memory: weight bytes saved, fp32 bytes minus (1 - r) x the weight bits (4-bit weights are stored
      and read packed);
    * balanced: the sum of both, each as a fraction of the fp32 model's total.

    The search's front is two-dimensional: latency-only plans had w8 where w4 costs as little accuracy
    and nothing, and the smallest corner was never proposed. Empty when latency was not measured.

    `check` (simulated_check): whether each of some plans keeps the budget all together. Summed
    single-layer costs miss how quantization errors add up (a built-in search's memory plan, layers
    costing 0-0.3 points each alone, dropped 3 points), so a plan that fails it is solved again at half
    the cost budget, up to CHECK_TRIES times, and left out if it still fails. Every objective's plan of
    a round is checked in one call (the checks run side by side: simulated_check)."""
    fp32, int8 = sens.latency_ms.get("fp32"), sens.latency_ms.get("w8a8")
    if not fp32 or not int8 or max_drop <= 0:
        return []
    sub_byte = sens.latency_ms.get("w4a8") or int8
    total_ms = sum(fp32.values()) or 1.0
    total_bytes = 4.0 * sum(sens.weights.values()) or 1.0
    options: dict[str, list[tuple[float, float, float, LayerPlan]]] = {}  # (cost, ms saved, bytes saved, plan)
    for name in space.layers:
        opts = [(0.0, 0.0, 0.0, LayerPlan(name, 32, 32, 0.0))]
        drops = sens.drops.get(name, {})
        n = sens.weights.get(name, 0)
        # widest weights first, a codebook before evenly spaced levels of its width: among options that save
        # as much for as little, the DP keeps the first
        for w, a in sorted(layer_choices(space), key=lambda c: -stored_bits(c[0]) - 0.5 * isinstance(c[0], str)):
            if a != 8 or choice_key(w, a) not in drops:
                continue
            base = max(drops[choice_key(w, a)], _floor(w, sens.subset))
            q_ms = _quantized_ms(w, int8[name], sub_byte.get(name, int8[name]))
            q_saving = fp32[name] - q_ms
            opts.append((base, q_saving, n * (4 - stored_bits(w) / 8), _layer(name, w, a, 0.0)))
            if name in space.prunable:
                for ratio in space.prune_choices:
                    d = prune_drop(drops, ratio, space.prune_choices)
                    if ratio > 0 and d is not None:
                        opts.append((base + max(d, 0.0), q_saving + ratio * q_ms,
                                     n * (4 - (1 - ratio) * stored_bits(w) / 8), _layer(name, w, a, ratio)))
        options[name] = opts
    value = {"latency": lambda ms, b: ms, "memory": lambda ms, b: b,
             "balanced": lambda ms, b: ms / total_ms + b / total_bytes}
    runs = [("latency", fractions)] if fractions is not None else list(OBJECTIVES)
    scored = {objective: {name: [(c, value[objective](ms, b), lp) for c, ms, b, lp in opts]
                          for name, opts in options.items()} for objective, _ in runs}
    wanted = [(objective, fraction * max_drop) for objective, fracs in runs for fraction in fracs]
    found: list[CompressionPlan | None] = [None] * len(wanted)
    open_ = list(range(len(wanted)))
    for attempt in range(CHECK_TRIES if check is not None else 1):  # the budget, half of it, a quarter
        solved = {i: _solve(scored[wanted[i][0]], space.layers, wanted[i][1] / 2**attempt, bins) for i in open_}
        todo = list(dict.fromkeys(p for p in solved.values() if p is not None and _compresses(p)))
        verdict = dict(zip(todo, check(todo))) if check is not None and todo else {}
        open_ = [i for i, plan in solved.items() if not verdict.get(plan, True)]
        for i, plan in solved.items():
            found[i] = None if i in open_ else plan
        if not open_:
            break
    plans: list[CompressionPlan] = []
    for plan in found:
        if plan is not None and plan not in plans and _compresses(plan):
            plans.append(plan)
    return plans


def _compresses(plan: CompressionPlan) -> bool:
    return any(lp.w_bits < 32 or lp.prune > 0 for lp in plan.layers)


def _quantized_ms(w: int | str, w8_ms: float, w4_ms: float) -> float:
    """A layer's kernel time with weights `w` and int8 inputs: the w4a8 build's for 2 and 4 bits (the same
    kernel: unpacked in the conv, on AVX2 with u8 x s8 pair sums), the w8a8 build's for 8 bits and codebooks."""
    return w4_ms if isinstance(w, int) and w < 8 else w8_ms


CHECK_TRIES = 3  # knapsack solves per objective and fraction: the budget, half of it, a quarter


def _floor(w: int | str, subset: int) -> float:
    """The least a weight choice below 8 bits is costed: one sample of the subset. A drop the subset
    cannot show is not none: five sub-byte layers that each read 0 (or less) alone dropped 5-10 points
    all together in a built-in search, and a zero cost let the knapsack take every one of them."""
    return 1.0 / max(subset, 1) if stored_bits(w) < 8 else 0.0


@contextmanager
def simulated_check(ctx: Any, max_drop: float, log: list[dict[str, Any]],
                    workers: int | None = None) -> Iterator[Callable[[list[CompressionPlan]], list[bool]]]:
    """Whether each plan's accuracy in the PyTorch simulation, compressed exactly as its candidate will be
    (the search's distillation included) on the whole eval set, is within `max_drop` of the fp32 model's:
    the compiled artifact's accuracy, which the search measures, is the simulation's on this project's
    CPU targets. The plans of a call are compressed side by side in `workers` processes (default: one per
    core; sensitivity_pool.Workers, kept for the knapsack's later rounds): a distillation runs on one
    thread (compress/distill.py), so one at a time left the other cores idle. Each check is appended to
    `log` (the study's settings keep it). A context manager: the workers stop with it."""
    from autocomp.device.timing_lock import shared_use
    from autocomp.measure.accuracy import accuracy_torch
    from autocomp.study import sensitivity_pool as pool
    from autocomp.study.buildpool import default_jobs

    task = ctx.task
    with shared_use():
        base = accuracy_torch(ctx.model, task)
    shared = pool.Shared(ctx.model, task.example_input, task.calib_data, ctx.protected, ctx.profile.fp16_compute(),
                         ctx.channel_multiple(), None, ctx.recovery(), task.eval_inputs, tuple(ctx.layers))
    seen: dict[str, bool] = {}
    procs = pool.Workers(shared, default_jobs() if workers is None else workers)

    def check(plans: list[CompressionPlan]) -> list[bool]:
        new = list({p.key(): p for p in plans if p.key() not in seen}.values())
        with shared_use():
            outputs = procs.outputs([pool.PlanJob(p.key(), p) for p in new]) if new else {}
        for plan in new:
            drop = base - float(task.metric(outputs[plan.key()]["plan"], task.eval_targets))
            seen[plan.key()] = drop <= max_drop
            log.append({"plan": plan.summary(), "simulated_drop": round(drop, 4), "kept": seen[plan.key()]})
        return [seen[p.key()] for p in plans]

    with procs:
        yield check


def _solve(options: dict[str, list[tuple[float, float, LayerPlan]]], layers: tuple[str, ...], budget: float,
           bins: int) -> CompressionPlan | None:
    step = budget / bins
    best: dict[int, tuple[float, tuple[LayerPlan, ...]]] = {0: (0.0, ())}
    for name in layers:
        nxt: dict[int, tuple[float, tuple[LayerPlan, ...]]] = {}
        for used, (saved, chosen) in best.items():
            for cost, saving, lp in options[name]:
                u = used + int(round(cost / step)) if step > 0 else used
                if u > bins:
                    continue
                cand = (saved + saving, chosen + (lp,))
                if u not in nxt or cand[0] > nxt[u][0]:
                    nxt[u] = cand
        best = nxt
    if not best:
        return None
    _saved, chosen = max(best.values(), key=lambda v: v[0])
    return CompressionPlan(chosen)
