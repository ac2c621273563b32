"""Neighbours of the feasible front: the sampler's local moves (tpe.SpaceTPESampler).

Why: under a one-point accuracy budget the feasible plans are a thin shell around the uniform ones.
TPE, with two dozen categorical parameters and a handful of observations, samples nearly at random
there, and random plans break the budget (bench_search, seed 0: 21 of TPE's 25 samples and all of random
sampling's were screened out). A plan one or two steps from a feasible front point is feasible far more
often, and a step towards fewer bits or more pruning moves the front if it stays feasible.
"""

from __future__ import annotations

from typing import Any

# each kind's choices from least to most compressed; a step moves to the next offered one
ORDER: dict[str, tuple[Any, ...]] = {
    "w_bits": (32, 16, 8, "k4", 4, "k2", 2),  # a codebook keeps more than uniform weights of its width
    "a_bits": (32, 16, 8),
    "prune": (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75),
}
ORIGIN_ATTR = "proposed_as"  # user attr of a sampled trial that is a neighbour: {"neighbour_of": number}


def step(param: str, value: Any, choices: tuple[Any, ...], harder: bool) -> Any | None:
    """The next offered choice after `value` towards more (harder) or less compression; None at the end."""
    order = [v for v in ORDER[param.split(":", 1)[0]] if v in choices]
    if value not in order:
        return None
    i = order.index(value) + (1 if harder else -1)
    return order[i] if 0 <= i < len(order) else None


def front(trials: list[Any]) -> list[Any]:
    """Feasible trials no other feasible trial beats on both latency and memory (values[0], values[1])."""
    from autocomp.study.pareto import feasible

    ok = [t for t in trials if t.values and feasible(t)]
    return [t for t in ok if not any(o.values[0] <= t.values[0] and o.values[1] <= t.values[1]
                                     and o.values[:2] != t.values[:2] for o in ok)]


def neighbour(parent: dict[str, Any], space: dict[str, Any], rng: Any, taken: set[tuple],
              tries: int = 20) -> dict[str, Any] | None:
    """`parent` moved one or two steps towards more compression (and, in a third of the draws, one
    parameter a step back: a trade between layers), not a plan already in the study."""
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
                name = options[rng.randint(len(options))]
                params[name] = step(name, params[name], space[name].choices, harder)
                moved.add(name)
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if moved and key not in taken:
            return params
    return None


def propose(study: Any, space: dict[str, Any], rng: Any) -> tuple[dict[str, Any], int] | None:
    """A neighbour of a random feasible front trial that holds every parameter of `space`, and its
    parent's number; None before any such trial exists or when no new neighbour is found."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    parents = [t for t in front(done) if all(n in t.params and t.params[n] in space[n].choices for n in space)]
    if not parents:
        return None
    taken = {tuple(sorted(((n, v) for n, v in t.system_attrs.get("fixed_params", t.params).items() if n in space),
                          key=lambda kv: kv[0])) for t in trials}  # queued plans too
    parent = parents[rng.randint(len(parents))]
    params = neighbour({n: parent.params[n] for n in space}, space, rng, taken)
    return (params, parent.number) if params is not None else None
