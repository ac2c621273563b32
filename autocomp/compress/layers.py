"""Which layers a search can touch, found on the model itself, and which stay float and why."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

SEARCHABLE_TYPES = (nn.Conv2d, nn.Conv1d, nn.Linear)  # a Conv1d computes as a Conv2d of height 1
# layers with weights (or attention) that have no low-precision lowering: reported, never searched
FLOAT_TYPES = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Bilinear,
               nn.LayerNorm, nn.MultiheadAttention)


def searchable_layers(model: nn.Module) -> list[str]:
    """Every Conv2d / Conv1d / Linear, by qualified name, in definition order."""
    return [name for name, m in model.named_modules() if isinstance(m, SEARCHABLE_TYPES)]


def run_with_hooks(model: nn.Module, example_input: torch.Tensor, hooks: dict[str, Callable[..., None]]) -> None:
    """One no-grad forward pass with a forward hook on each named module; the hooks are removed after."""
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(hook) for name, hook in hooks.items()]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()


def float_layers(model: nn.Module, example_input: torch.Tensor) -> dict[str, str]:
    """Layers that stay float32 whatever the plan, each with the reason (the result's `compute` says it).

    A Conv2d / Conv1d / Linear is searchable only when its own forward runs (a parent that reads its `.weight`
    directly, as PyTorch's attention does with `out_proj`, would bypass a quantized replacement) and its
    options are ones QuantizedLayer reproduces; other weighted layers and attention have no integer lowering.
    """
    from autocomp.compress.attention import Attention, UnfusedEncoderLayer, can_unfuse

    called: set[str] = set()
    run_with_hooks(model, example_input, {
        name: (lambda _m, _i, _o, name=name: called.add(name))
        for name, m in model.named_modules() if isinstance(m, SEARCHABLE_TYPES)
    })
    fused = [f"{n}." for n, m in model.named_modules()  # a subclass unfuse_attention left alone
             if isinstance(m, nn.TransformerEncoderLayer) and not isinstance(m, UnfusedEncoderLayer)]
    out: dict[str, str] = {}
    for name, m in model.named_modules():
        if isinstance(m, SEARCHABLE_TYPES) and any(name.startswith(f) for f in fused):
            out[name] = "float32 (inside an nn.TransformerEncoderLayer whose fused eval path reads the weight)"
        elif isinstance(m, SEARCHABLE_TYPES) and name not in called:
            out[name] = "float32 (not run as a module: its parent reads the weight directly)"
        elif isinstance(m, (nn.Conv2d, nn.Conv1d)) and (isinstance(m.padding, str) or m.padding_mode != "zeros"):
            out[name] = f"float32 (padding={m.padding!r}, padding_mode={m.padding_mode!r}: no integer lowering)"
        elif isinstance(m, Attention):
            out[name] = "float32 (attention scores, softmax, context: activation x activation)"
        elif isinstance(m, nn.MultiheadAttention):
            out[name] = f"float32 (nn.MultiheadAttention with {can_unfuse(m)}: no integer lowering)"
        elif isinstance(m, FLOAT_TYPES):
            out[name] = f"float32 ({type(m).__name__}: no low-precision lowering)"
    return out


def output_layers(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """The searchable layer(s) executed last: their output channels are the model's outputs."""
    order: list[str] = []
    run_with_hooks(model, example_input, {
        name: (lambda _m, _i, _o, name=name: order.append(name))
        for name, m in model.named_modules() if isinstance(m, SEARCHABLE_TYPES)
    })
    return order[-1:]
