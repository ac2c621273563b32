"""Accuracy of a candidate: of its torch simulation and of the compiled artifact itself."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from autocomp.tasks.base import Task

EVAL_BATCH = 256


def torch_outputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(inputs[i : i + EVAL_BATCH]) for i in range(0, len(inputs), EVAL_BATCH)])


def accuracy_torch(model: nn.Module, task: Task) -> float:
    return float(task.metric(torch_outputs(model.eval(), task.eval_inputs), task.eval_targets))


def compiled_outputs(run_one: Callable[[np.ndarray], np.ndarray], inputs: torch.Tensor) -> torch.Tensor:
    """Outputs of the compiled artifact, one sample at a time at its compiled (batch-1) shape."""
    x = inputs.numpy()
    return torch.from_numpy(np.concatenate([run_one(x[i : i + 1]) for i in range(len(x))]))


def accuracy_compiled(run_one: Callable[[np.ndarray], np.ndarray], task: Task) -> float:
    return float(task.metric(compiled_outputs(run_one, task.eval_inputs), task.eval_targets))
