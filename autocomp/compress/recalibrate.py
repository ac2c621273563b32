"""BatchNorm re-estimation after pruning.

Removing channels shifts what every later layer sees, so the BatchNorm running statistics measured on
the unpruned model no longer fit. Re-estimating them on the calibration data (forward passes only, no
weight changes) recovers much of the loss at the cost of one pass over that data.
"""

from __future__ import annotations

import torch
from torch import nn

BATCH = 128


def recalibrate_batchnorm(model: nn.Module, data: torch.Tensor) -> nn.Module:
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all calibration batches
        m.train()
    try:
        with torch.no_grad():
            for i in range(0, len(data), BATCH):
                model(data[i : i + BATCH])
    finally:
        for m, (momentum, training) in zip(bns, saved):
            m.momentum = momentum
            m.train(training)
    return model
