"""Apply a CompressionPlan to a trained model: prune (re-estimate BatchNorm statistics on the
calibration data, optionally distill from the original), fold BatchNorm into convolutions, then
quantize with calibration."""

from __future__ import annotations

import torch
from torch import nn

from autocomp.compress.distill import Recovery, distill
from autocomp.compress.fold import fold_batchnorm
from autocomp.compress.prune import ROUND_TO, prune
from autocomp.compress.quantize import calibrate_input_ranges, quantize
from autocomp.compress.recalibrate import recalibrate_batchnorm
from autocomp.plan import CompressionPlan


def compress(model: nn.Module, plan: CompressionPlan, example_input: torch.Tensor,
             calib_data: torch.Tensor, protected: tuple[str, ...], recovery: Recovery | None = None,
             fp16_compute: bool = False, round_to: int = ROUND_TO,
             ranges: dict[str, tuple[float, float]] | None = None) -> nn.Module:
    """A new compressed model; `model` is left untouched. Deterministic for a given plan.

    With `recovery`, a pruned model is fine-tuned by distillation from `model` before quantization.
    `fp16_compute`: the target does fp16 arithmetic (DeviceProfile.fp16_compute); `round_to`: pruned
    channel counts' multiple (device/features.channel_multiple); `ranges`: `float_input_ranges` of
    `model`, for a caller that compresses it many ways (used only when the plan prunes nothing).
    """
    ratios = {lp.name: lp.prune for lp in plan.layers if lp.prune > 0}
    pruned = prune(model, example_input, ratios, protected, round_to)
    if ratios:
        recalibrate_batchnorm(pruned, calib_data)
        if recovery is not None:
            distill(pruned, model, recovery)
    folded, _ = fold_batchnorm(pruned)
    return quantize(folded, plan, calib_data, fp16_compute, None if ratios else ranges)


def float_input_ranges(model: nn.Module, names: list[str], example_input: torch.Tensor, calib_data: torch.Tensor,
                       protected: tuple[str, ...], round_to: int = ROUND_TO) -> dict[str, tuple[float, float]]:
    """The input ranges `compress` calibrates for any plan that prunes nothing: calibration runs on the
    folded float model before any layer is quantized, so they are the same for every such plan."""
    folded, _ = fold_batchnorm(prune(model, example_input, {}, protected, round_to))
    return calibrate_input_ranges(folded, names, calib_data)
