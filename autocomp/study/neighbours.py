"""Neighbours of the feasible front: the sampler's local moves (tpe.SpaceTPESampler).

Why: under a one-point accuracy budget the feasible plans are a thin shell around the uniform ones.
TPE, with two dozen categorical parameters and a handful of observations, samples nearly at random
there, and random plans break the budget (bench_search, seed 0: 21 of TPE's 25 samples and all of random
sampling's were screened out). A plan one or two steps from a feasible front point is feasible far more
often, and a step towards fewer bits or more pruning moves the front if it stays feasible.
"""

from __future__ import annotations

from typing import Any, Callable

# each kind's choices from least to most compressed; a step moves to the next offered one
ORDER: dict[str, tuple[Any, ...]] = {
    "w_bits": (32, 16, 8, "k4", 4, "k2", 2),  # a codebook keeps more than uniform weights of its width
    "a_bits": (32, 16, 8),
    "prune": (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75),
}
ORIGIN_ATTR = "proposed_as"  # user attr of a sampled trial that is a neighbour: {"neighbour_of": number}


def step(param: str, value: Any, choices: tuple[Any, ...], harder: bool) -> Any | None:
    """The next offered choice after `value` towards more (harder) or less compression; None at the end.
    A step back never returns a layer to float (16 or 32 bits): that buys little accuracy for much time
    and memory (a float layer among int8 ones was dominated in every search of the built-in task)."""
    order = [v for v in ORDER[param.split(":", 1)[0]] if v in choices]
    if value not in order:
        return None
    i = order.index(value) + (1 if harder else -1)
    if not 0 <= i < len(order) or (not harder and order[i] in (16, 32)):  # prune ratios are never 16 or 32
        return None
    return order[i]


def front(trials: list[Any]) -> list[Any]:
    """Feasible trials no other feasible trial beats on both latency and memory (values[0], values[1])."""
    from autocomp.study.pareto import feasible

    ok = [t for t in trials if t.values and feasible(t)]
    return [t for t in ok if not any(o.values[0] <= t.values[0] and o.values[1] <= t.values[1]
                                     and o.values[:2] != t.values[:2] for o in ok)]


def neighbour(parent: dict[str, Any], space: dict[str, Any], rng: Any, taken: set[tuple],
              weights: dict[str, float] | None = None, tries: int = 20,
              fits: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
    """`parent` moved one or two steps towards more compression (and, in a third of the draws, one
    parameter a step back: a trade between layers), not a plan already in the study, and one that `fits`
    (the accuracy budget, `step_cost`) where given. A parameter is picked with probability in proportion
    to its layer's `weights` (layer -> share), else uniformly."""
    names = sorted(space)
    for _ in range(tries):
        params = dict(parent)
        moves = [(1 + int(rng.rand() < 0.5), True), (int(rng.rand() < 1 / 3), False)]
        moved: set[str] = set()
        for count, harder in moves:
            for _ in range(count):
                options = [n for n in names if n not in moved
                           and step(n, params[n], space[n].choices, harder) is not None]
                if not options:
                    break
                name = options[_pick(rng, [(weights or {}).get(n.split(":", 1)[1], 1.0) for n in options])]
                params[name] = step(name, params[name], space[name].choices, harder)
                moved.add(name)
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if moved and key not in taken and (fits is None or fits(params)):
            return params
    return None


def _pick(rng: Any, weights: list[float]) -> int:
    """An index drawn in proportion to `weights` (uniformly if they are all 0)."""
    total = sum(weights)
    if total <= 0:
        return int(rng.randint(len(weights)))
    return int(rng.choice(len(weights), p=[w / total for w in weights]))


def slack(trial: Any) -> float:
    """How far inside the accuracy budget the trial is (0 at its edge)."""
    return max(0.0, -trial.constraints.get("accuracy_drop", 0.0))


def step_cost(parent: dict[str, Any], params: dict[str, Any], drops: dict[str, dict[str, float]]) -> float:
    """What moving `parent` (all its parameters) to `params` is expected to add to its accuracy drop:
    for each layer changed, its single-layer cost in the sensitivity profile (`drops`) after the move
    minus before. Why: the front's points sit at the budget's edge, and a third of their neighbours
    broke it (bench_search, 32 trials, seeds 0 and 1: 33 of 72), mostly by steps the profile already
    prices over the room left (pruning a layer whose measured drop at the next ratio is 4 points)."""
    from autocomp.study.sensitivity import layer_cost

    def cost(values: dict[str, Any], layer: str) -> float:
        return layer_cost(drops.get(layer, {}), values.get(f"w_bits:{layer}", 32), values.get(f"a_bits:{layer}", 32),
                          values.get(f"prune:{layer}", 0.0))

    after = {**parent, **params}
    layers = {name.split(":", 1)[1] for name in after if after[name] != parent.get(name)}
    return sum(cost(after, layer) - cost(parent, layer) for layer in layers)


def _values(trial: Any) -> dict[str, Any]:
    """Every layer's parameters in the trial's plan, the ones not searched (one choice) included."""
    from autocomp.plan import CompressionPlan, weight_choice

    out: dict[str, Any] = {}
    if "plan" in trial.user_attrs:
        for lp in CompressionPlan.from_dict(trial.user_attrs["plan"]).layers:
            out.update({f"w_bits:{lp.name}": weight_choice(lp), f"a_bits:{lp.name}": lp.a_bits, f"prune:{lp.name}": lp.prune})
    return {**out, **trial.params}


def layer_weights(model: Any, layers: tuple[str, ...], sensitivity: dict[str, Any] | None) -> dict[str, float]:
    """How often a step lands on each layer: its share of the weights (what its bits and pruning save
    in memory) plus its share of the measured kernel time (sensitivity step, w8a8 build) where there is
    one, plus an even floor. Uniform draws mostly moved small layers and saved nothing that showed."""
    modules = dict(model.named_modules())
    sizes = {n: float(modules[n].weight.numel()) if n in modules else 0.0 for n in layers}
    times = ((sensitivity or {}).get("latency_ms") or {}).get("w8a8") or {}
    out = {}
    for name in layers:
        share = sizes[name] / (sum(sizes.values()) or 1.0)
        if times:
            share += times.get(name, 0.0) / (sum(times.values()) or 1.0)
        out[name] = share + 1.0 / len(layers)
    return out


def propose(study: Any, space: dict[str, Any], rng: Any, weights: dict[str, float] | None = None,
            drops: dict[str, dict[str, float]] | None = None, parents_tried: int = 5) -> tuple[dict[str, Any], int] | None:
    """A neighbour of a feasible front trial that holds every parameter of `space`, and its parent's
    number; None before any such trial exists or when no new neighbour is found. A parent is drawn in
    proportion to its slack (plus a tenth of the largest): a point at the accuracy budget's edge has
    little room left for a step towards more compression. With a sensitivity profile (`drops`), a
    neighbour whose `step_cost` exceeds its parent's slack is not proposed; another is drawn, from up
    to `parents_tried` parents."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    parents = [t for t in front(done) if all(n in t.params and t.params[n] in space[n].choices for n in space)]
    if not parents:
        return None
    taken = {tuple(sorted(((n, v) for n, v in t.system_attrs.get("fixed_params", t.params).items() if n in space),
                          key=lambda kv: kv[0])) for t in trials}  # queued plans too
    room = [slack(t) for t in parents]
    for _ in range(parents_tried):
        parent = parents[_pick(rng, [r + 0.1 * max(room) for r in room])]
        fits = None if drops is None else (
            lambda params, v=_values(parent), room=slack(parent): step_cost(v, params, drops) <= room + 1e-9)
        params = neighbour({n: parent.params[n] for n in space}, space, rng, taken, weights, fits=fits)
        if params is not None:
            return params, parent.number
    return None
