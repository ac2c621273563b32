import json

import pytest

from autocomp.errors import UserError
from autocomp.plan import CompressionPlan, LayerPlan


def test_json_round_trip_and_stable_key():
    plan = CompressionPlan((LayerPlan("a", 8, 8, 0.25), LayerPlan("b", 4, 32, 0.0)))
    again = CompressionPlan.from_dict(json.loads(plan.to_json()))
    assert again == plan
    assert again.key() == plan.key()
    assert CompressionPlan.uniform(["a", "b"], 8, 8).key() != plan.key()


def test_uniform_prunes_only_prunable_layers():
    plan = CompressionPlan.uniform(["a", "b"], 8, 8, 0.25, prunable=["a"])
    assert [lp.prune for lp in plan.layers] == [0.25, 0.0]
    assert plan.summary() == "w8a8 p0.25"
    assert CompressionPlan.uniform(["a"]).summary() == "fp32"


@pytest.mark.parametrize("kwargs", [{"w_bits": 3}, {"a_bits": 4}, {"prune": 0.95}, {"prune": -0.1}])
def test_invalid_layer_settings_are_user_errors(kwargs):
    with pytest.raises(UserError, match="layer 'x'"):
        LayerPlan("x", **kwargs)


@pytest.mark.parametrize("data", [{"layers": []}, {"_type": "other"}, [1, 2]])
def test_from_dict_rejects_what_is_not_a_plan(data):
    with pytest.raises(UserError, match="not a compression plan"):
        CompressionPlan.from_dict(data)


def test_from_dict_rejects_unknown_version():
    data = CompressionPlan.uniform(["a"]).to_dict() | {"_version": 99}
    with pytest.raises(UserError, match="version 99"):
        CompressionPlan.from_dict(data)
