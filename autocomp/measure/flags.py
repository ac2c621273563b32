"""The flags every command that evaluates candidates takes (search, evaluate, the Python API), checked
before anything is loaded or written."""

from __future__ import annotations

import math

from autocomp.errors import UserError


def check_candidate_flags(tracker: str | None, estimate: bool, tune_trials: int, finetune_steps: int,
                          tracker_timeout_s: float = 10.0) -> None:
    """The flags every command that evaluates candidates takes (search, evaluate): one line naming the
    bad one, before anything is loaded or written."""
    if tracker is not None:
        from autocomp.measure.rpc import parse_tracker

        parse_tracker(tracker)
    if tune_trials < 0:
        raise UserError(f"--tune-trials must be >= 0, got {tune_trials}")
    if finetune_steps < 0:
        raise UserError(f"--finetune-steps must be >= 0, got {finetune_steps}")
    if estimate and tracker:
        raise UserError("--estimate and --tracker exclude each other: measure on the farm, or estimate")
    if not (math.isfinite(tracker_timeout_s) and tracker_timeout_s > 0):
        raise UserError(f"--tracker-timeout must be positive seconds, got {tracker_timeout_s}")
