"""The knapsack's whole-plan checks in the PyTorch simulation, on the digits task (real compression,
real spawned workers)."""

from dataclasses import replace

from autocomp.measure.accuracy import accuracy_torch
from autocomp.plan import CompressionPlan
from autocomp.study.plan_checks import SimulatedCheck
from autocomp.study.sensitivity import first_passing


def test_a_check_compresses_the_plan_as_the_search_will(digits_ctx):
    """The verdict is the simulated accuracy of the candidate the search would build (its distillation
    included), within the budget or not, and every verdict is logged."""
    ctx = replace(digits_ctx, finetune_steps=20)
    log = []
    w8a8 = CompressionPlan.uniform(ctx.layers, 8, 8)
    pruned = CompressionPlan.uniform(ctx.layers, 8, 8, 0.5, ctx.prunable)
    w2a8 = CompressionPlan.uniform(ctx.layers, 2, 8)
    check = SimulatedCheck(ctx, 0.01, log, workers=1)
    assert check(w8a8) and not check(w2a8)  # ternary weights everywhere: far over
    check(pruned)
    base = accuracy_torch(ctx.model, ctx.task)
    drops = [base - accuracy_torch(ctx.compress(p), ctx.task) for p in (w8a8, w2a8, pruned)]
    assert [entry["simulated_drop"] for entry in log] == [round(d, 4) for d in drops] and drops[1] > 0.01
    assert [entry["kept"] for entry in log] == [d <= 0.01 for d in drops]


def test_chains_checked_side_by_side_end_as_one_after_another(digits_ctx):
    """Three chains of plans (each passes on its first plan that keeps the budget): in two spawned
    workers, the first passing plan of each chain and the checks made are those of the one-by-one
    order, and a plan two chains share is checked once."""
    ctx = replace(digits_ctx, finetune_steps=20)
    w2a8, w8a8 = CompressionPlan.uniform(ctx.layers, 2, 8), CompressionPlan.uniform(ctx.layers, 8, 8)
    pruned = CompressionPlan.uniform(ctx.layers, 8, 8, 0.25, ctx.prunable)
    tries = {0: [w2a8, pruned, w8a8], 1: [w2a8, w8a8], 2: [None]}
    chains = [lambda k, c=c: tries[c][k] if k < len(tries[c]) else None for c in tries]

    side_log, alone_log = [], []
    side = SimulatedCheck(ctx, 0.01, side_log, workers=2).first_passing(chains, 3)
    alone = first_passing(chains, SimulatedCheck(ctx, 0.01, alone_log, workers=1).__call__)  # a plain callable
    assert side == alone and side[2] is None and side[1] == w8a8
    assert sorted(map(str, side_log)) == sorted(map(str, alone_log))  # the same checks, the same drops
    assert sum(entry["plan"] == w2a8.summary() for entry in side_log) == 1  # shared by chains 0 and 1
