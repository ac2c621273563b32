"""The search space follows what the device computes."""

from autocomp.device.profiles import load_profile
from autocomp.study.space import PRUNE_CHOICES, SearchSpace

LAYERS, PRUNABLE = ("a", "b"), ("a",)


def test_host_space_has_integer_and_float_choices():
    space = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("host"))
    if not load_profile("host").fp16_compute():
        assert (space.w_choices, space.a_choices) == ((2, 4, 8, 32, "k2", "k4"), (8, 32))
    assert [label for label, _ in space.baselines()][:1] == ["fp32"]
    assert "w8a8" in dict(space.baselines())


def test_fp16_is_searched_only_where_the_target_computes_it():
    rpi4 = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("rpi4"))
    rpi5 = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("rpi5"))
    assert 16 not in rpi4.w_choices and 16 not in rpi4.a_choices
    assert (rpi5.w_choices, rpi5.a_choices) == ((2, 4, 8, 16, 32, "k2", "k4"), (8, 16, 32))
    fp16 = dict(rpi5.baselines())["fp16"]
    assert {(lp.w_bits, lp.a_bits) for lp in fp16.layers} == {(16, 16)}


def test_integer_choices_follow_the_profile_precisions():
    mali = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("mali-g76"))  # fp32 / fp16 only
    assert (mali.w_choices, mali.a_choices) == ((16, 32), (16, 32))
    assert "w8a8" not in dict(mali.baselines())
    jetson = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("jetson-orin-nano"))  # int8, no int4
    assert not any(w in jetson.w_choices for w in (2, 4, "k2", "k4")) and 8 in jetson.w_choices


def test_a_shared_weight_choice_becomes_a_shared_layer_plan_and_back():
    import optuna

    from autocomp.plan import weight_choice

    space = SearchSpace(LAYERS, PRUNABLE)
    study = optuna.create_study()
    study.enqueue_trial({"w_bits:a": "k2", "a_bits:a": 8, "prune:a": 0.25, "w_bits:b": 4, "a_bits:b": 8})
    plan = space.suggest(study.ask())
    a, b = plan.layer("a"), plan.layer("b")
    assert (a.w_bits, a.a_bits, a.prune, a.shared) == (2, 8, 0.25, True) and (b.w_bits, b.shared) == (4, False)
    assert plan.summary() == "w4k2a8 p0.25"
    assert [weight_choice(a), weight_choice(b)] == ["k2", 4] and space.params(plan)["w_bits:a"] == "k2"


def test_an_enqueued_plan_is_measured_whole_and_records_only_what_the_sampler_is_offered():
    """fp32 layers not offered (int8 dominates there): the fp32 baseline still runs as fp32; its trial
    records the offered values only, and a sampled trial never proposes what is not offered."""
    import optuna

    from autocomp.study.config import make_sampler
    from autocomp.study.space import FIXED_PLAN

    space = SearchSpace(LAYERS, PRUNABLE, excluded={"w_bits:a": [32], "a_bits:a": [32]})
    study = optuna.create_study(directions=["minimize"], sampler=make_sampler(0))
    study.sampler.search_space = space.distributions()
    fp32 = dict(space.baselines())["fp32"]
    space.enqueue(study, fp32)
    trial = study.ask()
    assert trial.user_attrs[FIXED_PLAN] == fp32.to_dict() and space.suggest(trial) == fp32
    assert set(trial.params) == {"w_bits:b", "a_bits:b", "prune:a"}  # a's 32-bit values are not offered
    study.tell(trial, 1.0)
    for i in range(10):  # past TPE's startup trials: its own proposals, from the offered values only
        t = study.ask()
        plan = space.suggest(t)
        assert plan.layer("a").w_bits != 32 and plan.layer("a").a_bits != 32
        study.tell(t, float(i))
    assert space.params(fp32) == {"w_bits:b": 32, "a_bits:b": 32, "prune:a": 0.0}


def test_redundant_prune_ratios_are_not_offered_and_stay_out_of_the_space_resuming_compares():
    space = SearchSpace(("a", "b"), ("a", "b"), redundant={"a": [0.125, 0.375]})
    dists = space.distributions()
    assert dists["prune:a"].choices == (0.0, 0.25, 0.5, 0.625, 0.75)
    assert dists["prune:b"].choices == PRUNE_CHOICES  # another layer's channels: all offered
    assert "redundant" not in space.to_dict()  # stored beside it (settings["redundant"]), as `excluded` is
