"""The sampler's local moves, on a real Optuna study in SQLite (no model: the trials are told by hand)."""

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution

from autocomp.study import neighbours
from autocomp.study.tpe import SpaceTPESampler

SPACE = {
    "w_bits:a": CategoricalDistribution((2, 4, 8, 32, "k2", "k4")),
    "a_bits:a": CategoricalDistribution((8, 32)),
    "w_bits:b": CategoricalDistribution((8, 32)),  # sub-byte choices excluded for b (sensitivity)
    "prune:a": CategoricalDistribution((0.0, 0.125, 0.25)),
}
W8 = {"w_bits:a": 8, "a_bits:a": 8, "w_bits:b": 8, "prune:a": 0.0}


def test_a_step_moves_to_the_next_offered_choice():
    choices = SPACE["w_bits:a"].choices
    assert neighbours.step("w_bits:a", 32, choices, True) == 8  # 16 is not offered
    assert neighbours.step("w_bits:a", 8, choices, True) == "k4"
    assert neighbours.step("w_bits:a", "k4", choices, True) == 4
    assert neighbours.step("w_bits:a", 2, choices, True) is None
    assert neighbours.step("w_bits:a", "k4", choices, False) == 8
    assert neighbours.step("w_bits:a", 8, choices, False) is None  # never back to float
    assert neighbours.step("a_bits:a", 8, SPACE["a_bits:a"].choices, False) is None
    assert neighbours.step("prune:a", 0.25, SPACE["prune:a"].choices, True) is None
    assert neighbours.step("prune:a", 0.25, SPACE["prune:a"].choices, False) == 0.125


def test_a_neighbour_is_a_few_steps_away_new_and_never_leaves_the_space():
    rng = np.random.RandomState(0)
    for _ in range(200):
        n = neighbours.neighbour(W8, SPACE, rng, taken=set())
        changed = {k for k in W8 if n[k] != W8[k]}
        assert 1 <= len(changed) <= 3 and all(n[k] in SPACE[k].choices for k in n)
        order = {k: neighbours.ORDER[k.split(":")[0]] for k in changed}
        assert any(order[k].index(n[k]) > order[k].index(W8[k]) for k in changed)  # at least one step harder
    # a layer of weight 0 is stepped only when no other can be
    for _ in range(50):
        n = neighbours.neighbour(W8, SPACE, rng, taken=set(), weights={"a": 1.0, "b": 0.0})
        assert n["w_bits:b"] == 8
    # nothing left but plans already in the study: no neighbour
    only = {"w_bits:b": CategoricalDistribution((8, 32))}
    assert neighbours.neighbour({"w_bits:b": 32}, only, rng, taken={(("w_bits:b", 8),)}) is None


def tell(study, params, values, drop):
    trial = study.ask()  # the next queued plan
    assert {k: trial.suggest_categorical(k, SPACE[k].choices) for k in params} == params
    trial.set_constraint("accuracy_drop", drop)
    study.tell(trial, values)
    return trial.number


def test_parents_are_the_feasible_front_and_the_sampler_says_which(sqlite_url):
    study = optuna.create_study(storage=sqlite_url, directions=["minimize", "minimize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    assert neighbours.propose(study, SPACE, np.random.RandomState(0)) is None  # nothing measured yet
    for params in (W8, {**W8, "a_bits:a": 32}, {**W8, "prune:a": 0.25}, {**W8, "w_bits:a": 4}):
        study.enqueue_trial(params)
    fast = tell(study, W8, [1.0, 100.0, 0.9], -0.01)
    tell(study, {**W8, "a_bits:a": 32}, [2.0, 200.0, 0.9], -0.01)  # dominated: never a parent
    tell(study, {**W8, "prune:a": 0.25}, [0.5, 50.0, 0.5], 0.3)  # faster but infeasible: never a parent
    edge = tell(study, {**W8, "w_bits:a": 4}, [1.1, 60.0, 0.89], 0.0)  # on the front, at the budget's edge
    # the parent with room left (slack 0.01) is drawn ten times as often as the one at the edge (0)
    rng = np.random.RandomState(0)
    drawn = [neighbours.propose(study, SPACE, rng)[1] for _ in range(300)]
    assert set(drawn) == {fast, edge} and 0.85 < drawn.count(fast) / 300 < 0.97
    sampler = SpaceTPESampler(seed=0, n_startup_trials=1, multivariate=True)
    sampler.search_space, sampler.neighbour_share = SPACE, 1.0
    study.sampler = sampler
    for _ in range(3):
        trial = study.ask()
        params = {k: trial.suggest_categorical(k, SPACE[k].choices) for k in SPACE}
        parent = study.trials[study.trials[trial.number].user_attrs[neighbours.ORIGIN_ATTR]["neighbour_of"]].params
        assert 1 <= sum(params[k] != parent[k] for k in SPACE) <= 3
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    sampler.neighbour_share = 0.0
    trial = study.ask()
    {k: trial.suggest_categorical(k, SPACE[k].choices) for k in SPACE}
    assert neighbours.ORIGIN_ATTR not in study.trials[trial.number].user_attrs  # TPE's own sample


def test_layer_weights_follow_weight_count_and_measured_time():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 60))  # 16 and 240 weights
    sizes = neighbours.layer_weights(model, ("0", "1"), None)
    assert sizes == {"0": 16 / 256 + 0.5, "1": 240 / 256 + 0.5}
    timed = neighbours.layer_weights(model, ("0", "1"), {"latency_ms": {"w8a8": {"0": 3.0, "1": 1.0}}})
    assert timed["0"] == sizes["0"] + 0.75 and timed["1"] == sizes["1"] + 0.25


def test_the_proposer_is_drawn_by_its_feasible_record(sqlite_url):
    from autocomp.study import tpe

    study = optuna.create_study(storage=sqlite_url, directions=["minimize", "minimize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(W8)
    tell(study, W8, [1.0, 100.0, 0.9], -0.01)  # enqueued: neither proposer's
    for number in range(8):  # four neighbours, all feasible; four of TPE's: one feasible, one screened out
        trial = study.ask({k: SPACE[k] for k in W8})
        if number % 2 == 0:
            trial.set_user_attr(neighbours.ORIGIN_ATTR, {"neighbour_of": 0})
        trial.set_constraint("accuracy_drop", -0.01 if number % 2 == 0 or number == 1 else 0.02)
        if number == 3:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, [1.0, 100.0, 0.9])
    failed = study.ask({k: SPACE[k] for k in W8})
    study.tell(failed, state=optuna.trial.TrialState.FAIL)  # a killed worker's: nobody's record
    assert tpe.record(study) == {"neighbour": (4, 4), "tpe": (1, 4)}
    sampler = SpaceTPESampler(seed=0)
    draws = [sampler._neighbour_next(study) for _ in range(400)]
    # Beta(5, 1) against Beta(2, 4) wins ~94% of draws, and a tenth of the trials are TPE's regardless
    assert 0.78 < sum(draws) / 400 < 0.9
    sampler.neighbour_share = 0.0  # a fixed share overrides the record
    assert not any(sampler._neighbour_next(study) for _ in range(50))


DROPS = {"a": {"w8a8": 0.0, "k4a8": 0.0, "w4a8": 0.05, "k2a8": 0.08, "w2a8": 0.3, "w8a32": 0.0,
               "p0.25": 0.03},  # 0.125 is priced at 0.25's drop, the next measured ratio
         "b": {"w8a32": 0.002}}  # b has no a_bits parameter: its inputs stay fp32


def test_a_step_is_priced_by_the_sensitivity_profile():
    assert neighbours.step_cost(W8, {"w_bits:a": 4}, DROPS) == 0.05
    assert neighbours.step_cost(W8, {"w_bits:a": 4, "prune:a": 0.125}, DROPS) == 0.05 + 0.03
    assert neighbours.step_cost({**W8, "w_bits:a": 4}, {"w_bits:a": "k4"}, DROPS) == -0.05  # a step back
    assert neighbours.step_cost({**W8, "w_bits:b": 32}, {"w_bits:b": 8}, DROPS) == 0.002  # fp32 costs 0
    assert neighbours.step_cost(W8, {"w_bits:b": 8}, DROPS) == 0.0  # nothing moved


def test_a_parent_at_the_budget_edge_takes_only_steps_the_profile_says_are_free(sqlite_url):
    study = optuna.create_study(storage=sqlite_url, directions=["minimize", "minimize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(W8)
    edge = tell(study, W8, [1.0, 100.0, 0.9], 0.0)  # the only parent, with no room left
    rng = np.random.RandomState(0)
    unpriced = [neighbours.propose(study, SPACE, rng)[0] for _ in range(100)]
    assert any(n["prune:a"] == 0.125 for n in unpriced)  # without the profile: pruning, costing 3 points
    found = neighbours.propose(study, SPACE, rng, drops=DROPS)
    assert found == ({**W8, "w_bits:a": "k4"}, edge)  # the one step that costs nothing here
    study.enqueue_trial(found[0])
    tell(study, found[0], [0.9, 60.0, 0.9], 0.001)  # measured: over the budget, not a parent
    assert neighbours.propose(study, SPACE, rng, drops=DROPS) is None  # every other step costs more
