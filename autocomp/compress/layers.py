"""Which layers a search can touch, found on the model itself."""

from __future__ import annotations

import torch
from torch import nn

SEARCHABLE_TYPES = (nn.Conv2d, nn.Linear)


def searchable_layers(model: nn.Module) -> list[str]:
    """Every Conv2d / Linear, by qualified name, in definition order."""
    return [name for name, m in model.named_modules() if isinstance(m, SEARCHABLE_TYPES)]


def output_layers(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """The searchable layer(s) executed last: their output channels are the model's outputs."""
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name))
        for name, m in model.named_modules()
        if isinstance(m, SEARCHABLE_TYPES)
    ]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    return order[-1:]
