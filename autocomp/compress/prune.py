"""Structured pruning: output channels physically removed, through Torch-Pruning's DepGraph.

The dependency graph decides which layers lose channels together (a BatchNorm follows its conv, the next
conv loses the matching input channels, coupled residual branches share a ratio); we never walk the
graph ourselves. The packed q/k/v projection of an unfused attention module (compress/attention.py) is
never a root of Torch-Pruning's graph: the graph couples its outputs through the heads to `out_proj` and
cannot score them (Torch-Pruning's head pruning wants PyTorch's own nn.MultiheadAttention). Instead its
prune ratio removes whole heads (`Attention.prune_heads`), before the graph prunes the rest. Channel
counts are rounded to multiples of ROUND_TO so pruned shapes stay friendly to SIMD lanes and so that
distinct candidates share workloads.
"""

from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
import torch_pruning as tp
from torch import nn

from autocomp.compress.attention import Attention
from autocomp.compress.layers import SEARCHABLE_TYPES
from autocomp.compress.shuffle import CUSTOMIZED_PRUNERS, touches_shuffle
from autocomp.errors import first_line

ROUND_TO = 8  # the default; a search rounds to its target's (device/features.channel_multiple)


def kept_channels(layer: nn.Module, ratio: float, multiple: int) -> int | None:
    """The output channels `prune` leaves `layer` at `ratio`: the multiple of `multiple` nearest to
    (1 - ratio) of them (ties: more), at least one multiple, at most all; None for a layer without a
    channel count (an attention module: heads are pruned there)."""
    channels = getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)
    if not channels:
        return None
    if ratio <= 0:
        return channels
    return min(channels, max(multiple, math.floor((1 - ratio) * channels / multiple + 0.5) * multiple))


def _rounded(layer: nn.Module, ratio: float, multiple: int) -> float:
    """The ratio that makes Torch-Pruning keep `kept_channels`; 0 when that is all of them. Torch-Pruning
    alone rounds the kept count down, which took a 32-channel layer from 28 to 16 at ratio 0.125 with
    multiples of 16."""
    kept = kept_channels(layer, ratio, multiple)
    if kept is None:
        return ratio
    channels = getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)
    return 0.0 if kept >= channels else 1 - (kept + 0.5) / channels  # +0.5: Torch-Pruning truncates


def same_channels(model: nn.Module, roots: Iterable[str], ratios: Iterable[float], multiple: int) -> dict[str, list[float]]:
    """Per pruning root: the ratios that keep as many channels as a smaller ratio does, i.e. the same
    pruned model under another name. Why: with AVX-512's multiple of 16, 0.125 leaves FashionNet's
    32-, 48- and 64-channel layers whole and 0.375 prunes a 48-channel one as 0.25 does; a search
    offered them spent trials stepping to them (12 of 38 trials held such a ratio, 3 measured a model
    measured before)."""
    by_name = _modules_by_name(model)
    out: dict[str, list[float]] = {}
    for name in roots:
        layer = None if isinstance(by_name.get(name.removesuffix(".in_proj")), Attention) else by_name.get(name)
        seen: set[int] = set()
        for ratio in sorted(ratios):
            kept = None if layer is None else kept_channels(layer, ratio, multiple)
            if kept is None:
                break
            if kept in seen:
                out.setdefault(name, []).append(ratio)
            seen.add(kept)
    return out


class PruningUnavailable(Exception):
    """Torch-Pruning cannot trace this model's channel dependencies: the model is searched without pruning
    (bits only) rather than failing every trial."""


def _modules_by_name(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


def _ignored(model: nn.Module, protected: Iterable[str]) -> list[nn.Module]:
    by_name = _modules_by_name(model)
    return [by_name[n] for n in protected] + [m.in_proj for m in model.modules() if isinstance(m, Attention)]


def prunable_layers(model: nn.Module, example_input: torch.Tensor, protected: Iterable[str]) -> list[str]:
    """Layers that root a pruning group (each gets its own ratio in the search space)."""
    by_name = _modules_by_name(model)
    names = {m: n for n, m in by_name.items()}
    ignored = _ignored(model, protected)
    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input,
                                                        customized_pruners=CUSTOMIZED_PRUNERS)
    except Exception as exc:  # Torch-Pruning's tracer meets a pattern it cannot map (e.g. a shuffle of its own)
        where = _innermost(exc)
        raise PruningUnavailable(f"Torch-Pruning's dependency graph cannot trace it ({type(exc).__name__}: "
                                 f"{first_line(exc)} in {where})") from exc
    roots: list[str] = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=list(SEARCHABLE_TYPES)):
        root = group[0].dep.target.module
        if touches_shuffle(group):  # a permutation Torch-Pruning cannot map (compress/shuffle.py)
            continue
        if root in names and isinstance(root, SEARCHABLE_TYPES) and names[root] not in roots:
            roots.append(names[root])
    roots += _head_roots(model, protected)
    order = list(by_name)
    return sorted(roots, key=order.index)


def _head_roots(model: nn.Module, protected: Iterable[str]) -> list[str]:
    """The `in_proj` of every attention module with heads to spare: its prune ratio is a fraction of heads."""
    skip = set(protected)
    return [f"{n}.in_proj" for n, m in model.named_modules()
            if isinstance(m, Attention) and m.num_heads >= 2 and f"{n}.in_proj" not in skip]


def pruning_roots(model: nn.Module, example_input: torch.Tensor,
                  protected: Iterable[str]) -> tuple[list[str], str | None]:
    """`prunable_layers`, or none and why when Torch-Pruning cannot trace the model (searched bits only)."""
    try:
        return prunable_layers(model, example_input, protected), None
    except PruningUnavailable as exc:
        return [], str(exc)


def _innermost(exc: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].name}()" if frames else "its tracer"


def prune(model: nn.Module, example_input: torch.Tensor, ratios: dict[str, float],
          protected: Iterable[str], round_to: int = ROUND_TO) -> nn.Module:
    """A pruned copy: each named layer loses `ratio` of its output channels (L2-magnitude order; counts
    rounded to multiples of `round_to`, the target's: device/features.channel_multiple); an attention
    module's `in_proj` loses that fraction of its heads (rounded down, one head always kept)."""
    model = copy.deepcopy(model).eval()
    ratios = {n: r for n, r in ratios.items() if r > 0}
    by_name = _modules_by_name(model)
    for name in [n for n in ratios if isinstance(by_name.get(n.removesuffix(".in_proj")), Attention)]:
        by_name[name.removesuffix(".in_proj")].prune_heads(ratios.pop(name))  # before the graph sees the model
    if not ratios:
        return model
    by_name = _modules_by_name(model)
    ratios = {n: r for n, r in ((n, _rounded(by_name[n], r, round_to)) for n, r in ratios.items()) if r > 0}
    if not ratios:
        return model
    pruner = tp.pruner.MetaPruner(
        model,
        example_input,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.0,
        pruning_ratio_dict={by_name[n]: r for n, r in ratios.items()},
        ignored_layers=_ignored(model, protected),
        round_to=round_to,
        customized_pruners=CUSTOMIZED_PRUNERS,
    )
    pruner.step()
    return model.eval()
