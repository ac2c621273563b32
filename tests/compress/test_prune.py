import torch
from torch import nn

from autocomp.compress.layers import output_layers, searchable_layers
import pytest

from autocomp.compress.prune import PruningUnavailable, prunable_layers, prune
from autocomp.tasks.builtin import FashionNet


def _net():
    torch.manual_seed(0)
    return FashionNet().eval()


def test_output_layer_is_protected_and_not_prunable():
    model, x = _net(), torch.randn(1, 1, 28, 28)
    assert output_layers(model, x) == ["classifier"]
    roots = prunable_layers(model, x, ["classifier"])
    assert "classifier" not in roots
    assert roots == [n for n in searchable_layers(model) if n != "classifier"]


def test_channels_are_physically_removed_in_multiples_of_8():
    model, x = _net(), torch.randn(1, 1, 28, 28)
    pruned = prune(model, x, {"features.1.0": 0.25, "features.5.0": 0.5}, ["classifier"])
    mods = dict(pruned.named_modules())
    assert mods["features.1.0"].out_channels == 40  # 48 * 0.75 = 36: the nearest multiple of 8 (a tie: more)
    assert mods["features.1.1"].num_features == 40  # its BatchNorm follows
    assert mods["features.2.0"].in_channels == 40  # the next conv loses matching inputs
    assert mods["features.5.0"].out_channels == 64 and mods["features.6.0"].in_channels == 64
    assert mods["classifier"].in_features == 128 and mods["classifier"].out_features == 10
    assert pruned(x).shape == (1, 10)
    n_before = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in pruned.parameters()) < n_before
    # the original is untouched
    assert dict(model.named_modules())["features.1.0"].out_channels == 48


@pytest.mark.parametrize("ratio, kept", [(0.125, 48), (0.25, 32), (0.375, 32), (0.5, 32), (0.625, 16), (0.75, 16)])
def test_kept_channels_are_the_nearest_multiple_of_the_targets_vector(ratio, kept):
    """AVX-512 targets round to 16 (device/features.channel_multiple): FashionNet's 48-channel conv keeps
    the multiple of 16 nearest (1 - ratio) x 48; a ratio that rounds to no change leaves the layer whole."""
    model, x = _net(), torch.randn(1, 1, 28, 28)
    pruned = prune(model, x, {"features.1.0": ratio}, ["classifier"], round_to=16)
    assert dict(pruned.named_modules())["features.1.0"].out_channels == kept
    assert pruned(x).shape == (1, 10)


def test_zero_ratios_return_an_equal_copy():
    model, x = _net(), torch.randn(2, 1, 28, 28)
    same = prune(model, x[:1], {"features.0.0": 0.0}, ["classifier"])
    assert same is not model
    assert torch.equal(same(x), model(x))


def test_pruning_follows_coupled_residual_channels():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 16, 3, padding=1)
            self.b = nn.Conv2d(16, 16, 3, padding=1)
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            y = self.a(x)
            y = y + self.b(y)
            return self.head(y.mean((2, 3)))

    model, x = Res().eval(), torch.randn(1, 3, 8, 8)
    roots = prunable_layers(model, x, ["head"])
    assert len(roots) == 1  # a and b are one group: they share a ratio
    pruned = prune(model, x, {roots[0]: 0.5}, ["head"])
    assert pruned.a.out_channels == pruned.b.out_channels == 8
    assert pruned(x).shape == (1, 4)



def test_a_model_the_dependency_graph_cannot_trace_is_named_not_crashed():
    """torchvision's ShuffleNetV2 as torchvision writes it, its shuffle a function call (what a model
    with a shuffle of its own meets; compress/shuffle.isolate_shuffles rewrites torchvision's blocks):
    Torch-Pruning's reshape rule divides by zero, and that is one line naming where."""
    from autocomp.tasks.zoo import _torchvision

    model = _torchvision().shufflenet_v2_x0_5().eval()
    with pytest.raises(PruningUnavailable, match=r"cannot trace it \(ZeroDivisionError: .* in update_reshape_index_mapping\(\)\)"):
        prunable_layers(model, torch.randn(1, 3, 32, 32), ["fc"])


@pytest.mark.parametrize("multiple", [8, 16])
def test_redundant_ratios_are_the_ones_that_prune_as_a_smaller_one_does(multiple):
    """same_channels is checked against what prune() really leaves, ratio by ratio."""
    from autocomp.compress.prune import same_channels

    model, x = _net(), torch.randn(1, 1, 28, 28)
    roots = prunable_layers(model, x, ["classifier"])
    ratios = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)
    redundant = same_channels(model, roots, ratios, multiple)
    for name in roots:
        kept = [dict(prune(model, x, {name: r}, ["classifier"], multiple).named_modules())[name].out_channels
                for r in ratios]
        assert redundant.get(name, []) == [r for i, r in enumerate(ratios) if kept[i] in kept[:i]], (name, kept)
    assert redundant["features.1.0"] == ([0.125, 0.375, 0.5, 0.75] if multiple == 16 else [0.25, 0.75])  # 48 channels
