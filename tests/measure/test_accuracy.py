"""Accuracy is only computed from finite outputs: NaN must fail a candidate, not score it."""

import numpy as np
import pytest
import torch

from autocomp.errors import CandidateError
from autocomp.measure import accuracy


def test_non_finite_outputs_fail_the_candidate(digits_task):
    def nan_artifact(x):
        out = np.zeros((len(x), 10), dtype=np.float32)
        out[:, 0] = np.nan
        return out

    with pytest.raises(CandidateError, match="the compiled artifact gives non-finite outputs"):
        accuracy.accuracy_compiled(nan_artifact, digits_task)
    class InfOnThree(torch.nn.Module):
        def forward(self, x):
            logits = x.flatten(1)[:, :10]
            return torch.where(torch.arange(len(x))[:, None] < 3, torch.inf, logits)

    with pytest.raises(CandidateError, match=r"the torch simulation gives non-finite outputs \(NaN or inf\) on \d+ of \d+ eval samples"):
        accuracy.accuracy_torch(InfOnThree(), digits_task)


def test_finite_outputs_score(digits_task, digits_ctx):
    assert 0.5 < accuracy.accuracy_torch(digits_ctx.model, digits_task) <= 1.0
