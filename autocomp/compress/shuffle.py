"""Channel shuffles as modules, so that Torch-Pruning can prune the layers around them.

Why: ShuffleNetV2's blocks end in a channel shuffle (view to 5-D, transpose, view back), and
Torch-Pruning's dependency graph cannot trace it (its reshape rule divides by zero), so the whole model
was searched without pruning. `isolate_shuffles` gives each of torchvision's ShuffleNetV2 blocks a
`ChannelShuffle` module doing the same arithmetic; Torch-Pruning sees it as one layer (CUSTOMIZED) and
stops there. A shuffle interleaves two branches' channels, a permutation Torch-Pruning cannot map, so a
group that reaches one (the branches' last convs, a stride-2 block's first depthwise conv) is never
pruned (`touches_shuffle`); the groups inside a branch (its first 1x1 conv and depthwise conv, half of
the block's weights) and those after the last block are.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch_pruning as tp
from torch import nn


class ChannelShuffle(nn.Module):
    """torchvision's `channel_shuffle(x, groups)` as a module: the same view / transpose / view."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.view(b, self.groups, c // self.groups, h, w)
        return torch.transpose(x, 1, 2).contiguous().view(b, c, h, w)


class _Unprunable(tp.pruner.BasePruningFunc):
    """A shuffle has no parameters and is never pruned (groups that reach it are not offered)."""

    def prune_out_channels(self, layer: nn.Module, idxs: Any) -> nn.Module:
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Any) -> nn.Module:
        return layer

    def get_out_channels(self, layer: nn.Module) -> None:
        return None

    def get_in_channels(self, layer: nn.Module) -> None:
        return None


CUSTOMIZED_PRUNERS = {ChannelShuffle: _Unprunable()}  # Torch-Pruning's DependencyGraph / MetaPruner argument


@functools.cache  # one class for every rewritten block, in every call
def _block_class() -> type | None:
    try:
        from torchvision.models.shufflenetv2 import InvertedResidual
    except Exception:  # torchvision absent (or unusable): no such blocks to find
        return None

    class ShuffleBlock(InvertedResidual):
        """torchvision's ShuffleNetV2 block, its shuffle called as the `shuffle` module."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.stride == 1:
                x1, x2 = x.chunk(2, dim=1)
                out = torch.cat((x1, self.branch2(x2)), dim=1)
            else:
                out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
            return self.shuffle(out)

    return ShuffleBlock


def isolate_shuffles(model: nn.Module) -> nn.Module:
    """`model` with each of torchvision's ShuffleNetV2 blocks computing its shuffle in a ChannelShuffle
    module (in place; same outputs, same state dict); other models are returned as they are."""
    import sys

    if "torchvision.models.shufflenetv2" not in sys.modules:  # never imported: no such block in the model
        return model
    block = _block_class()
    if block is None:
        return model
    for module in model.modules():
        if type(module) is block.__base__:
            module.__class__ = block
            module.shuffle = ChannelShuffle(2)  # torchvision's blocks always shuffle 2 groups
    return model


def touches_shuffle(group: Any) -> bool:
    """Whether a Torch-Pruning group reaches a channel shuffle (pruning it would need the permutation)."""
    return any(isinstance(dep.target.module, ChannelShuffle) for dep, _ in group)
