"""The search space follows what the device computes."""

from autocomp.device.profiles import load_profile
from autocomp.study.space import SearchSpace

LAYERS, PRUNABLE = ("a", "b"), ("a",)


def test_host_space_has_integer_and_float_choices():
    space = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("host"))
    if not load_profile("host").fp16_compute():
        assert (space.w_choices, space.a_choices) == ((4, 8, 32), (8, 32))
    assert [label for label, _ in space.baselines()][:1] == ["fp32"]
    assert "w8a8" in dict(space.baselines())


def test_fp16_is_searched_only_where_the_target_computes_it():
    rpi4 = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("rpi4"))
    rpi5 = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("rpi5"))
    assert 16 not in rpi4.w_choices and 16 not in rpi4.a_choices
    assert (rpi5.w_choices, rpi5.a_choices) == ((4, 8, 16, 32), (8, 16, 32))
    fp16 = dict(rpi5.baselines())["fp16"]
    assert {(lp.w_bits, lp.a_bits) for lp in fp16.layers} == {(16, 16)}


def test_integer_choices_follow_the_profile_precisions():
    mali = SearchSpace.for_profile(LAYERS, PRUNABLE, load_profile("mali-g76"))  # fp32 / fp16 only
    assert (mali.w_choices, mali.a_choices) == ((16, 32), (16, 32))
    assert "w8a8" not in dict(mali.baselines())
