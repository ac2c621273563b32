"""Which layers a search can touch, found on the model itself."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

SEARCHABLE_TYPES = (nn.Conv2d, nn.Linear)


def searchable_layers(model: nn.Module) -> list[str]:
    """Every Conv2d / Linear, by qualified name, in definition order."""
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


def output_layers(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """The searchable layer(s) executed last: their output channels are the model's outputs."""
    order: list[str] = []
    run_with_hooks(model, example_input, {
        name: (lambda _m, _i, _o, name=name: order.append(name))
        for name, m in model.named_modules() if isinstance(m, SEARCHABLE_TYPES)
    })
    return order[-1:]
