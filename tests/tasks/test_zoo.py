"""The model zoo (torchvision's definitions, a Conv1d keyword spotter) through prepare, compress and a real host
build. The whole matrix (8 models x fp32 / w8a8 / mixed pruned x host / rpi4) is scripts/check_zoo.py: too
slow for the suite; these are the cases that once failed."""

import numpy as np
import pytest
import torch

from autocomp.candidate import prepare
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan, LayerPlan
from autocomp.tasks.zoo import ZOO, zoo_task


def _agrees(ctx, model, x: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    session = LocalSession(ctx.build(ctx.lower(model)))
    got = np.concatenate([session.run(x[i:i + 1].numpy()) for i in range(len(x))])
    with torch.no_grad():
        want = model(x).numpy()
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_every_zoo_model_builds_from_torchvision_beside_the_cpu_torch():
    for name, spec in ZOO.items():
        out = spec.build().eval()(torch.randn(1, *spec.input_shape) if not spec.resizable
                                  else torch.randn(1, spec.input_shape[0], 32, 32))
        assert out.shape[0] == 1 and torch.isfinite(out).all(), name


def test_shufflenet_prunes_inside_its_branches_around_the_channel_shuffles(host):
    """ShuffleNetV2's channel shuffles are modules Torch-Pruning stops at (compress/shuffle.py): each
    block's branch is pruned inside, no group that reaches a shuffle is, and a pruned half-int8 build is exact."""
    task = zoo_task("shufflenet_v2_x0_5", size=32, evals=2)
    ctx = prepare(task, host)
    assert not ctx.pruning_off
    inside = [n for n in ctx.prunable if ".branch2." in n]
    assert len(inside) == 16  # one group per block: its first 1x1 conv and depthwise conv
    assert not [n for n in ctx.prunable if n.endswith(".branch2.5") or ".branch1." in n]  # they feed a shuffle
    half = set(ctx.layers[::2])
    plan = CompressionPlan(tuple(LayerPlan(n, 8 if n in half else 32, 8 if n in half else 32,
                                           0.5 if n in inside else 0.0) for n in ctx.layers))
    model = ctx.compress(plan)
    def stages(m):  # the blocks' weights (the 1000-way classifier holds most of the model's), int8 or not
        return sum(t.numel() for n, t in m.state_dict().items() if n.startswith("stage") and n.endswith(".weight"))

    assert stages(model) < 0.85 * stages(ctx.model)
    assert _agrees(ctx, model, task.eval_inputs) <= 0.02


def test_a_shuffle_torch_pruning_cannot_trace_turns_pruning_off_in_one_line(host, capsys):
    """ShuffleNet blocks of the user's own class (compress/shuffle.py rewrites torchvision's only): the
    dependency graph fails at the shuffle, and the search goes on with bits only, saying so in one line."""
    task = zoo_task("shufflenet_v2_x0_5", size=32, evals=2)
    model = task.build_model()
    base = type(model.stage2[0])
    mine = type("MyBlock", (base,), {})
    for m in model.modules():
        if type(m) is base:
            m.__class__ = mine
    ctx = prepare(task, host)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pruning is off for this model" in err and "ZeroDivisionError" in err
    assert ctx.prunable == [] and ctx.pruning_off and len(ctx.layers) > 50


def test_mobilenet_v3_mixed_pruned_plan_keeps_se_and_depthwise_coupled(host):
    """Hardswish, squeeze-excitation gates and depthwise convs, pruned and half int8: valid and exact."""
    task = zoo_task("mobilenet_v3_small", size=32, evals=2)
    ctx = prepare(task, host)
    half, pruned = set(ctx.layers[::2]), set(ctx.prunable[1::2])
    plan = CompressionPlan(tuple(LayerPlan(n, 8 if n in half else 32, 8 if n in half else 32,
                                           0.25 if n in pruned else 0.0) for n in ctx.layers))
    model = ctx.compress(plan)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in ctx.model.parameters())
    assert _agrees(ctx, model, task.eval_inputs) <= 0.02


@pytest.mark.parametrize("plan", ["fp32", "w8a8", "mixed"])
def test_keyword_spotter_conv1d_layers_take_bits_and_pruning_and_agree(host, plan):
    """Conv1d layers are searched like Conv2d ones (computed as conv2d of height 1, build/passes/conv1d.py)."""
    task = zoo_task("kws_conv1d", evals=2)
    ctx = prepare(task, host)
    conv1d = [n for n, m in ctx.model.named_modules() if isinstance(m, torch.nn.Conv1d)]
    assert set(conv1d) <= set(ctx.layers) and set(ctx.prunable) & set(conv1d)
    if plan == "mixed":  # w4a8 / fp32 alternating, a quarter of every prunable Conv1d's channels removed
        plan_ = CompressionPlan(tuple(LayerPlan(n, 4 if i % 2 else 32, 8 if i % 2 else 32,
                                                0.25 if n in ctx.prunable else 0.0) for i, n in enumerate(ctx.layers)))
    else:
        bits = 32 if plan == "fp32" else 8
        plan_ = CompressionPlan.uniform(ctx.layers, bits, bits)
    model = ctx.compress(plan_)
    if plan == "w8a8":
        assert all(model.get_submodule(n).describe().compute.endswith("-> int32") for n in conv1d)
    assert _agrees(ctx, model, task.eval_inputs) <= 0.02
