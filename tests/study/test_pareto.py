"""Front selection logic on hand-made trials (the figures here are inputs, not measurements)."""

import optuna

from autocomp.study import pareto
from autocomp.plan import CompressionPlan

LAYERS = ["a", "b"]


def add(study, plan, latency, memory, acc, drop):
    t = study.ask()
    t.set_user_attr("plan", plan.to_dict())
    t.set_user_attr("result", {
        "plan_key": plan.key(), "plan_label": plan.summary(), "latency_ms": latency, "latency_p10_ms": latency,
        "latency_p90_ms": latency, "memory_bytes": memory, "param_bytes": memory, "arena_bytes": 0,
        "accuracy_compiled": acc, "accuracy_sim": acc, "compute": "native", "measured_on": "local", "device": "host"})
    t.set_constraint("accuracy_drop", drop)
    study.tell(t, [latency, memory, acc])
    return t.number


def test_front_is_feasible_and_non_dominated():
    study = optuna.create_study(directions=["minimize", "minimize", "maximize"])
    u = CompressionPlan.uniform
    base = add(study, u(LAYERS), 10.0, 1000, 0.90, -0.01)
    fast = add(study, u(LAYERS, 8, 8), 5.0, 400, 0.895, -0.005)
    add(study, u(LAYERS, 8, 32), 6.0, 500, 0.89, 0.0)  # dominated by `fast`
    add(study, u(LAYERS, 4, 8), 2.0, 100, 0.70, 0.19)  # best figures, but infeasible
    points = pareto.front(study)
    assert [p.trial for p in points] == [fast, base]
    b = pareto.baseline(study)
    assert b is not None and b.trial == base
    j = points[0].to_json(b)
    assert j["speedup"] == 2.0 and j["memory_ratio"] == 0.4 and j["baseline_accuracy"] == 0.90
    assert {"trial", "latency_ms", "memory_bytes", "accuracy", "plan"} <= set(j)


def test_pick_names_the_most_accurate_point_within_the_limits():
    study = optuna.create_study(directions=["minimize", "minimize", "maximize"])
    u = CompressionPlan.uniform
    add(study, u(LAYERS), 10.0, 4 * 2**20, 0.90, -0.01)
    fast = add(study, u(LAYERS, 8, 8), 5.0, 2**20, 0.895, -0.005)
    small = add(study, u(LAYERS, 4, 8), 6.0, 2**19, 0.893, -0.003)
    points = pareto.front(study)
    assert pareto.pick(points).accuracy == 0.90  # no limits: the most accurate
    assert pareto.pick(points, max_latency_ms=8.0).trial == fast
    assert pareto.pick(points, max_memory_mb=0.75).trial == small
    assert pareto.pick(points, max_latency_ms=1.0) is None


def test_latency_and_memory_limits_are_constraints():
    from types import SimpleNamespace

    from autocomp.study.config import constraint_values, memory_limit_bytes

    r = SimpleNamespace(accuracy_compiled=0.89, memory_bytes=3 * 2**20)
    c = constraint_values(r, 0.90, 0.02, memory_limit_bytes(0, 2.0), latency_ms=4.0, max_latency_ms=5.0)
    assert c["accuracy_drop"] < 0 and c["memory"] == 2**20 and c["latency"] == -1.0
    assert memory_limit_bytes(512, 2.0) == 2 * 2**20 and memory_limit_bytes(1, None) == 2**20
    assert memory_limit_bytes(0, None) == 0 and "latency" not in constraint_values(r, 0.9, 0.02, 0)
