"""Accuracy of a candidate: of its torch simulation and of the compiled artifact itself."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from autocomp.errors import CandidateError
from autocomp.tasks.base import Task

EVAL_BATCH = 256


def finite(outputs: torch.Tensor, what: str) -> torch.Tensor:
    """The outputs, if every value is finite: a metric of NaN outputs is a number, and it must not
    make a broken candidate look merely inaccurate (or feasible)."""
    bad = int((~torch.isfinite(outputs.reshape(len(outputs), -1))).any(dim=1).sum())
    if bad:
        raise CandidateError(f"{what} gives non-finite outputs (NaN or inf) on {bad} of {len(outputs)} eval samples")
    return outputs


def torch_outputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = torch.cat([model(inputs[i : i + EVAL_BATCH]) for i in range(0, len(inputs), EVAL_BATCH)])
    return finite(out, "the torch simulation")


def accuracy_torch(model: nn.Module, task: Task) -> float:
    return float(task.metric(torch_outputs(model.eval(), task.eval_inputs), task.eval_targets))


def compiled_outputs(run_one: Callable[[np.ndarray], np.ndarray], inputs: torch.Tensor) -> torch.Tensor:
    """Outputs of the compiled artifact, one sample at a time at its compiled (batch-1) shape."""
    x = inputs.numpy()
    return finite(torch.from_numpy(np.concatenate([run_one(x[i : i + 1]) for i in range(len(x))])), "the compiled artifact")


def accuracy_compiled(run_one: Callable[[np.ndarray], np.ndarray], task: Task) -> float:
    return float(task.metric(compiled_outputs(run_one, task.eval_inputs), task.eval_targets))
