"""The Task structure a user returns from `--task package.module:function`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch
    from torch import nn


def top1_accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose argmax equals the target class."""
    return float((outputs.argmax(dim=1) == targets).float().mean())


@dataclass
class Task:
    """Everything a search needs to know about the user's problem.

    Attributes:
        name: identifies the task in study names and manifests.
        build_model: returns the trained fp32 model (autocomp puts it in eval mode).
        example_input: one input batch of batch size 1; fixes the compiled input shape.
        calib_data: inputs used only to calibrate activation ranges (never for evaluation).
        eval_inputs / eval_targets: the held-out data the metric is computed on.
        metric: (outputs, targets) -> float, higher is better (default: top-1 accuracy).
        protected_layers: layers whose output channels must never be pruned; the layer that
            produces the model's output is always protected.
        recovery_inputs: unlabeled inputs for the optional distillation fine-tune after pruning
            (default: the calibration inputs); never evaluation data.
    """

    name: str
    build_model: Callable[[], nn.Module]
    example_input: torch.Tensor
    calib_data: torch.Tensor
    eval_inputs: torch.Tensor
    eval_targets: torch.Tensor
    metric: Callable[[torch.Tensor, torch.Tensor], float] = top1_accuracy
    description: str = ""
    protected_layers: tuple[str, ...] = field(default_factory=tuple)
    recovery_inputs: torch.Tensor | None = None
