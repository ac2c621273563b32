"""Per-layer sensitivity: measured on digits, and how the search uses it (space pruning, knapsack)."""

import pytest

from autocomp.study.sensitivity import Sensitivity, excluded, knapsack_plans, measure
from autocomp.study.space import SearchSpace


def test_every_layer_and_choice_is_measured_on_digits(digits_ctx):
    space = SearchSpace(tuple(digits_ctx.layers), tuple(digits_ctx.prunable), (4, 8, 32), (8, 32), (0.0, 0.25, 0.5))
    sens = measure(digits_ctx, space)
    assert sens.subset > 0 and 0.5 < sens.accuracy <= 1.0
    for name in digits_ctx.layers:
        assert {"w4a8", "w8a8", "w4a32", "w8a32"} <= set(sens.drops[name])
        assert all(-1.0 <= d <= 1.0 for d in sens.drops[name].values())
    for name in digits_ctx.prunable:
        assert {"p0.25", "p0.5"} <= set(sens.drops[name])
    assert sens.latency_source == "vm instrument (measured)"
    for build in ("fp32", "w8a8", "w4a8"):
        assert set(sens.latency_ms[build]) == set(digits_ctx.layers)
        assert all(t > 0 for t in sens.latency_ms[build].values())
        assert sum(sens.share(build).values()) == pytest.approx(1.0)
    assert Sensitivity.from_dict(sens.to_dict()) == sens


def hand_made():
    """Layer a: cheap to quantize, most of the time; b: w4 breaks it; c: pruning it is costly."""
    drops = {"a": {"w8a8": 0.001, "w4a8": 0.004, "w8a32": 0.0, "w4a32": 0.003, "p0.25": 0.002, "p0.5": 0.004},
             "b": {"w8a8": 0.002, "w4a8": 0.2, "w8a32": 0.001, "w4a32": 0.15, "p0.25": 0.003, "p0.5": 0.006},
             "c": {"w8a8": 0.003, "w4a8": 0.005, "w8a32": 0.002, "w4a32": 0.004, "p0.25": 0.05, "p0.5": 0.3}}
    latency = {"fp32": {"a": 1.0, "b": 0.2, "c": 0.3}, "w8a8": {"a": 0.3, "b": 0.1, "c": 0.1}}
    space = SearchSpace(("a", "b", "c"), ("a", "b", "c"), (4, 8, 32), (8, 32), (0.0, 0.25, 0.5))
    return Sensitivity(1000, 0.9, drops, latency, "vm instrument (measured)", 1.0), space


def test_choices_that_alone_break_the_budget_or_that_int8_dominates_are_not_offered():
    sens, space = hand_made()
    gone = excluded(sens, space, max_drop=0.01)
    assert gone == {"w_bits:b": [4], "prune:c": [0.5],  # alone over the budget; c's p0.25 too, but w8a8 p0.25 uses it
                    "w_bits:a": [32], "a_bits:a": [32]}  # a: int8 faster, and within one sample of the subset
    # b and c keep fp32 layers: their int8 costs 2 and 3 samples of the subset's 1000
    pruned = space.__class__(**{**space.to_dict(), "excluded": gone})
    assert pruned.choices("w_bits:b", pruned.w_choices) == [8, 32] and pruned.choices("w_bits:a", pruned.w_choices) == [4, 8]
    slower = Sensitivity(**{**sens.to_dict(), "latency_ms": {"fp32": {"a": 0.2, "b": 0.2, "c": 0.3},
                                                              "w8a8": {"a": 0.3, "b": 0.1, "c": 0.1}}})
    assert "w_bits:a" not in excluded(slower, space, max_drop=0.01)  # int8 measured slower there: fp32 stays
    weight_only = {**sens.drops, "a": {**sens.drops["a"], "w4a8": 0.009}}  # w4 needs fp32 inputs on a
    assert "a_bits:a" not in excluded(Sensitivity(**{**sens.to_dict(), "drops": weight_only}), space, max_drop=0.01)


def test_knapsack_spends_the_budget_where_the_measured_time_is():
    sens, space = hand_made()
    plans = knapsack_plans(sens, space, max_drop=0.01, fractions=(0.3, 1.0))
    assert plans
    tight = {lp.name: lp for lp in plans[0].layers}
    assert tight["a"].w_bits == 8 and tight["a"].a_bits == 8  # the layer with most of the time goes int8 first
    for plan in plans:
        layers = {lp.name: lp for lp in plan.layers}
        assert layers["b"].w_bits != 4 and layers["c"].prune < 0.5  # never a choice over the budget
        cost = sum(sens.drops[lp.name][f"w{lp.w_bits}a{lp.a_bits}"] for lp in plan.layers if lp.w_bits < 32)
        cost += sum(sens.drops[lp.name][f"p{lp.prune:g}"] for lp in plan.layers if lp.prune > 0)
        assert cost <= 0.01 + 1e-9
    assert knapsack_plans(Sensitivity(100, 0.9, sens.drops, {}, "not measured", 1.0, []), space, 0.01) == []


def test_the_memory_knapsack_stores_4_bit_weights_where_the_time_knapsack_does_not():
    """Same measured drops, weight counts added (c holds most weights): the latency plans never pick w4
    (no faster than w8, costlier in accuracy); the memory plan puts w4 on c, the largest layer whose w4 is
    within the budget, and the balanced plan saves on both."""
    sens, space = hand_made()
    sens = Sensitivity(**{**sens.to_dict(), "weights": {"a": 1000, "b": 2000, "c": 50000}})
    plans = knapsack_plans(sens, space, max_drop=0.01)
    by_layer = [{lp.name: lp for lp in p.layers} for p in plans]
    assert len(plans) == 4  # latency at 0.5 / 0.8 / 1.0 of the budget; balanced and memory agree here
    assert all(p["c"].w_bits != 4 for p in by_layer[:3])
    memory = by_layer[-1]
    assert memory["c"].w_bits == 4 and memory["b"].w_bits != 4
    for plan in plans:
        cost = sum(sens.drops[lp.name][f"w{lp.w_bits}a{lp.a_bits}"] for lp in plan.layers if lp.w_bits < 32)
        cost += sum(sens.drops[lp.name][f"p{lp.prune:g}"] for lp in plan.layers if lp.prune > 0)
        assert cost <= 0.01 + 1e-9
    latency_only = knapsack_plans(sens, space, max_drop=0.01, fractions=(1.0,))
    assert len(latency_only) == 1 and {lp.name: lp for lp in latency_only[0].layers}["c"].w_bits != 4

    # where the w4a8 build measures 2- and 4-bit convs faster than w8 (AVX2's u8 x s8 pair sums), time
    # saved pays for w4's accuracy on c, the layer with the most time left after int8
    faster = {**sens.latency_ms, "w4a8": {**sens.latency_ms["w8a8"], "c": 0.1 * sens.latency_ms["w8a8"]["c"]}}
    sub_byte = knapsack_plans(Sensitivity(**{**sens.to_dict(), "latency_ms": faster}), space, max_drop=0.01,
                              fractions=(1.0,))
    assert len(sub_byte) == 1 and {lp.name: lp for lp in sub_byte[0].layers}["c"].w_bits == 4


def test_a_search_stores_the_sensitivity_and_runs_the_knapsack_plans_after_the_baselines(sqlite_url):
    from autocomp.study.search import SearchConfig, load_study, run_search

    run_search(SearchConfig(task="digits", device="host", storage=sqlite_url, study="s", trials=1, jobs=1,
                            max_accuracy_drop=0.05))
    study = load_study("s", sqlite_url)
    settings = study.user_attrs["autocomp"]
    assert study.user_attrs["sensitivity"]["latency_source"] == "vm instrument (measured)"
    assert isinstance(settings["excluded"], dict) and settings["proposals"]
    from autocomp.study.space import FIXED_PLAN, SearchSpace

    fixed = [t for t in study.trials if FIXED_PLAN in t.user_attrs]
    space = SearchSpace(**settings["space"])
    plans = [t.user_attrs[FIXED_PLAN] for t in fixed]
    assert plans[:len(space.baselines())] == [p.to_dict() for _, p in space.baselines()]  # first, in order
    assert len(fixed) <= len(space.baselines()) + len(settings["proposals"])  # then the proposals: each plan once
    assert len({str(p) for p in plans}) == len(plans)
    # the fp32 baseline is measured as fp32 even where the sampler is not offered fp32 layers
    assert fixed[0].user_attrs["result"]["plan_label"] == "fp32" and fixed[0].state.name == "COMPLETE"
    gone = [param for param, values in settings["excluded"].items() if 32 in values and param.startswith("w_bits")]
    assert not set(gone) & set(fixed[0].params), (gone, fixed[0].params)  # what the sampler is not offered


def test_the_finer_prune_grid_measures_every_other_ratio_and_costs_the_rest_from_above():
    from autocomp.study.sensitivity import measured_ratios, prune_drop

    grid = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)
    assert measured_ratios(grid) == [0.75, 0.5, 0.25]
    assert measured_ratios((0.0, 0.25, 0.5)) == [0.5, 0.25]
    drops = {"p0.25": 0.01, "p0.5": 0.03, "p0.75": 0.2}
    assert [prune_drop(drops, r, grid) for r in grid[1:]] == [0.01, 0.01, 0.03, 0.03, 0.2, 0.2]
    assert prune_drop({"p0.25": 0.01}, 0.5, grid) is None  # nothing measured above: not costed
    sens, space = hand_made()
    finer = SearchSpace(space.layers, space.prunable, space.w_choices, space.a_choices, grid)
    gone = excluded(sens, finer, max_drop=0.01)
    assert 0.375 not in gone.get("prune:c", []) and 0.5 in gone["prune:c"]  # only measured ratios are excluded


def test_a_plan_that_fails_the_check_is_solved_again_at_half_the_budget_or_left_out():
    """The check stands for the simulation of the whole plan (simulated_check): a plan it rejects is not
    proposed; the knapsack tries again with half the summed-cost budget, then a quarter."""
    sens, space = hand_made()

    def summed(plan):
        cost = sum(sens.drops[lp.name][f"w{lp.w_bits}a{lp.a_bits}"] for lp in plan.layers if lp.w_bits < 32)
        return cost + sum(sens.drops[lp.name][f"p{lp.prune:g}"] for lp in plan.layers if lp.prune > 0)

    checked = []

    def strict(plan):  # errors add up more than the sum says: only plans summing to 40% of the budget pass
        checked.append(summed(plan))
        return summed(plan) <= 0.004

    plans = knapsack_plans(sens, space, max_drop=0.01, fractions=(1.0,), check=lambda ps: [strict(p) for p in ps])
    assert len(plans) == 1 and summed(plans[0]) <= 0.004
    assert checked[0] > 0.004 and len(checked) >= 2  # the full-budget plan was tried first and rejected
    assert knapsack_plans(sens, space, max_drop=0.01, fractions=(1.0,), check=lambda ps: [False] * len(ps)) == []


def test_the_simulated_check_compresses_the_plan_as_the_search_will(digits_ctx):
    """simulated_check's verdict is the simulated accuracy of the candidate the search would build (its
    distillation included), within the budget or not, and every verdict is logged."""
    from autocomp.measure.accuracy import accuracy_torch
    from autocomp.plan import CompressionPlan
    from autocomp.study.sensitivity import simulated_check

    from dataclasses import replace

    ctx = replace(digits_ctx, finetune_steps=30)
    log = []
    w8a8 = CompressionPlan.uniform(ctx.layers, 8, 8)
    w2a8 = CompressionPlan.uniform(ctx.layers, 2, 8)
    pruned = CompressionPlan.uniform(ctx.layers, 8, 8, 0.5, ctx.prunable)
    base = accuracy_torch(ctx.model, ctx.task)
    with simulated_check(ctx, 0.01, log) as check:  # in worker processes, one per core
        verdicts = check([w8a8, w2a8, pruned, w8a8])
        assert verdicts[:2] == [True, False] and verdicts[3]  # ternary weights everywhere: far over
        assert check([w2a8]) == [False] and len(log) == 3  # checked once
    import psutil

    assert not [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    drops = [base - accuracy_torch(ctx.compress(plan), ctx.task) for plan in (w2a8, pruned)]  # here, as the search
    assert [entry["simulated_drop"] for entry in log[1:]] == [round(d, 4) for d in drops]
    assert log[1]["simulated_drop"] > 0.01 and [entry["kept"] for entry in log] == [True, False, drops[1] <= 0.01]


def test_a_sub_byte_choice_the_subset_shows_as_free_still_costs_one_sample():
    """Five layers whose 2-bit codebooks read no drop on a 300-sample subset: the memory plan may take at
    most as many as one sample each fits in the budget (3 of 1.1 points), widest weights among equals."""
    names = tuple("abcde")
    drops = {n: {"w8a8": 0.0, "k2a8": 0.0} for n in names}
    latency = {"fp32": {n: 1.0 for n in names}, "w8a8": {n: 0.5 for n in names}}
    sens = Sensitivity(300, 0.9, drops, latency, "vm instrument (measured)", 1.0, [], {n: 1000 for n in names})
    space = SearchSpace(names, (), (8, 32, "k2"), (8, 32), (0.0,))
    plans = knapsack_plans(sens, space, max_drop=0.011)
    memory = plans[-1]
    assert sum(lp.shared for lp in memory.layers) == 3
    assert all(not lp.shared for lp in plans[0].layers)  # latency: k2 saves no more time than w8
