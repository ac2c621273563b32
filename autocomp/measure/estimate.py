"""Estimated latency, for when no device can be reached and the user asked for `--estimate`.

latency = sum over conv / linear layers of MACs / (the profile's sustained rate for that layer's
arithmetic). The rates are the profile's `[estimate]` table: numbers the user supplies for their board,
not measurements. Accuracy is the PyTorch simulation's. Every figure is labelled `estimate`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autocomp.errors import UserError
from autocomp.measure.base import Latency, Reference, RunResult
from autocomp.device.profiles import DeviceProfile


def layer_macs(model: nn.Module, example_input: torch.Tensor) -> dict[str, tuple[int, str]]:
    """Per conv / linear (plain or quantized): multiply-accumulates, and its arithmetic (int8 | fp16 | fp32)."""
    from autocomp.compress.quantize import QuantizedLayer

    from autocomp.compress.layers import SEARCHABLE_TYPES, run_with_hooks

    found: dict[str, tuple[int, str]] = {}

    def hook(name: str) -> Any:
        def record(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            if isinstance(mod, QuantizedLayer):
                shape, kind = mod.weight_shape, "int8" if mod.integer else ("fp16" if mod.half else "fp32")
            else:
                shape, kind = tuple(mod.weight.shape), "fp32"
            per_output = 1
            for d in shape[1:]:
                per_output *= d
            found[name] = (int(out.numel()) * per_output, kind)
        return record

    run_with_hooks(model, example_input, {
        name: hook(name) for name, m in model.named_modules() if isinstance(m, (*SEARCHABLE_TYPES, QuantizedLayer))
    })
    return found


class EstimateRunner:
    measured_on = "estimate"

    def __init__(self, profile: DeviceProfile) -> None:
        if not profile.estimate:
            raise UserError(
                f"--estimate needs the rates of device '{profile.name}': add an [estimate] table with "
                f"fp32_gflops and int8_gops to {profile.source}"
            )
        self.profile = profile

    def run(self, built: Any, model: Any, task: Any, reference: Reference | None = None) -> RunResult:
        ms = self.estimate_ms(model, task)
        latency = Latency(ms, ms, ms, 0, 0, 0)
        comparison = None
        if reference is not None:  # no drift to correct, but the search compares ratios alike
            from autocomp.measure.interleave import Comparison

            ref_ms = self.estimate_ms(reference.model, task)
            ratio = ms / ref_ms
            comparison = Comparison(latency, Latency(ref_ms, ref_ms, ref_ms, 0, 0, 0), ratio, ratio, ratio, 0)
        return RunResult(latency, self.measured_on, None, "simulation (estimate)", comparison=comparison)

    def estimate_ms(self, model: Any, task: Any) -> float:
        rates = self.profile.estimate
        key = {"int8": "int8_gops", "fp16": "fp16_gflops", "fp32": "fp32_gflops"}
        seconds = 0.0
        for macs, kind in layer_macs(model, task.example_input).values():
            if key[kind] not in rates:
                raise UserError(f"--estimate: this candidate computes in fp16; add fp16_gflops to the "
                                f"[estimate] table of {self.profile.source}")
            seconds += 2 * macs / (rates[key[kind]] * 1e9)
        return seconds * 1e3
