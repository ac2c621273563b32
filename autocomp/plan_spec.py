"""`--plan`'s argument (evaluate, the API's evaluate): a uniform plan by name, or a plan JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autocomp.errors import UserError
from autocomp.plan import CompressionPlan

# name -> (w_bits, a_bits[, shared])
UNIFORM_PLANS = {"fp32": (32, 32), "w8a8": (8, 8), "w4a8": (4, 8), "w2a8": (2, 8), "k4a8": (4, 8, True),
                 "k2a8": (2, 8, True), "w16": (16, 32), "w8": (8, 32), "w4": (4, 32), "w16a16": (16, 16)}


def resolve_plan(spec: str, ctx: Any) -> CompressionPlan:
    """A uniform plan by name, or a plan JSON file (a plan, a manifest or a front point holding one),
    checked against `ctx` (a candidate.Context): its layers, and which of them may be pruned."""
    if spec == "w16" and ctx.profile.fp16_compute():  # fp16 weights, and fp16 arithmetic where there is some
        spec = "w16a16"
    if spec in UNIFORM_PLANS:
        w_bits, a_bits, *shared = UNIFORM_PLANS[spec]
        return CompressionPlan.uniform(ctx.layers, w_bits, a_bits, shared=bool(shared))
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--plan {spec!r} is neither one of {', '.join(UNIFORM_PLANS)} nor a plan JSON file")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--plan {spec}: cannot read JSON ({exc})") from exc
    if isinstance(data, dict) and "plan" in data:
        data = data["plan"]
    plan = CompressionPlan.from_dict(data)
    unknown = [lp.name for lp in plan.layers if lp.name not in ctx.layers]
    if unknown:
        raise UserError(f"--plan {spec}: layer {unknown[0]!r} is not a searchable layer of task "
                        f"{ctx.task.name} (its layers: {', '.join(ctx.layers)})")
    bad = [lp.name for lp in plan.layers if lp.prune > 0 and lp.name not in ctx.prunable]
    if bad:
        why = f"pruning is off for this model: {ctx.pruning_off}" if ctx.pruning_off else \
            f"prunable: {', '.join(ctx.prunable) or 'none'}"
        raise UserError(f"--plan {spec}: layer {bad[0]!r} cannot be pruned ({why})")
    return plan
