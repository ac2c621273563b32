import hashlib
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


def test_shared_weights_round_trip_and_leave_other_plans_unchanged():
    """`shared` is written only where true: plans without it keep the JSON (and key) they always had."""
    plain = CompressionPlan((LayerPlan("a", 4, 8, 0.0), LayerPlan("b", 8, 8, 0.0)))
    assert "shared" not in plain.to_json()
    old_format = {"_type": "autocomp.CompressionPlan", "_version": 1, "layers": [
        {"name": "a", "w_bits": 4, "a_bits": 8, "prune": 0.0}, {"name": "b", "w_bits": 8, "a_bits": 8, "prune": 0.0}]}
    assert plain.key() == hashlib.sha256(json.dumps(old_format, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert plain.key() == CompressionPlan.from_dict(json.loads(plain.to_json())).key()
    shared = CompressionPlan((LayerPlan("a", 2, 8, 0.0, shared=True), LayerPlan("b", 8, 8, 0.0)))
    again = CompressionPlan.from_dict(json.loads(shared.to_json()))
    assert again == shared and again.key() != plain.key() and again.summary() == "w8k2a8"
    assert CompressionPlan.uniform(["a"], 4, 8).summary() == "w4a8"


@pytest.mark.parametrize("layer, match", [
    ({"name": "a", "w_bits": 8, "a_bits": 8, "prune": 0.0, "shared": True}, "shared weights need w_bits in"),
    ({"name": "a", "w_bits": 4, "a_bits": 8, "prune": 0.0, "shared": 1}, "shared must be true or false"),
    ({"name": "a", "w_bits": 4, "a_bits": 8, "prune": 0.0, "codebook": 4}, "optionally shared"),
])
def test_bad_shared_weight_entries_are_named(layer, match):
    with pytest.raises(UserError, match=match):
        CompressionPlan.from_dict({"_type": "autocomp.CompressionPlan", "_version": 1, "layers": [layer]})
