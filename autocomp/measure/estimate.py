"""Estimated latency, for when no device can be reached and the user asked for `--estimate`.

Two models, the first the profile has:

* `[mca]` (rpi4, rpi5): the candidate's own library, cross-compiled for the device, is disassembled and
  each kernel's hot loop goes through llvm-mca on the profile's core model (measure/mca.py): latency =
  sum over kernels of (multiply-adds / lanes per iteration) x cycles per iteration / clock, one core.
  A kernel-level model: it sees that the Pi 4's int8 loops issue fewer MACs per cycle than its fp32
  ones, which flat rates cannot. Labelled `estimate (llvm-mca)`.
* `[estimate]`: sum over conv / linear layers of MACs / (the profile's sustained rate for that layer's
  arithmetic), numbers the user supplies for their board, not measurements. Labelled `estimate`.

Accuracy is the PyTorch simulation's. Every figure says `estimate`.
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


MCA_LABEL = "estimate (llvm-mca)"


class EstimateRunner:
    def __init__(self, profile: DeviceProfile) -> None:
        if profile.mca:
            from autocomp.measure import mca

            if problem := mca.available():
                raise UserError(f"--estimate for device '{profile.name}' runs llvm-mca: {problem}")
        elif not profile.estimate:
            raise UserError(
                f"--estimate needs a model of device '{profile.name}': add an [mca] table (cpu = llvm-mca's "
                f"-mcpu, clock_ghz) or an [estimate] table with fp32_gflops and int8_gops to {profile.source}"
            )
        self.profile = profile
        self.measured_on = MCA_LABEL if profile.mca else "estimate"

    def run(self, built: Any, model: Any, task: Any, reference: Reference | None = None) -> RunResult:
        ms = self._ms(built, model, task)
        latency = Latency(ms, ms, ms, 0, 0, 0)
        comparison = None
        if reference is not None:  # no drift to correct, but the search compares ratios alike
            from autocomp.measure.interleave import Comparison

            if "estimate_ms" not in reference.loaded:
                reference.loaded["estimate_ms"] = self._ms(reference.built, reference.model, task)
            ref_ms = reference.loaded["estimate_ms"]
            ratio = ms / ref_ms
            comparison = Comparison(latency, Latency(ref_ms, ref_ms, ref_ms, 0, 0, 0), ratio, ratio, ratio, 0)
        return RunResult(latency, self.measured_on, None, "simulation (estimate)", comparison=comparison)

    def _ms(self, built: Any, model: Any, task: Any) -> float:
        return self.mca_ms(built) if self.profile.mca else self.estimate_ms(model, task)

    def mca_ms(self, built: Any) -> float:
        """The library as it would be deployed (export_library cross-links it), kernel by kernel."""
        import tempfile
        from pathlib import Path

        from autocomp.build.compile import export_library
        from autocomp.errors import CandidateError
        from autocomp.measure import mca

        with tempfile.TemporaryDirectory(prefix="autocomp-mca-") as d:
            library = export_library(built, self.profile, Path(d))
            if library.suffix != ".so":
                raise UserError(f"--estimate for '{self.profile.name}' reads the linked library: install its "
                                f"cross compiler {self.profile.cross_cc} (`make emulator` does)")
            estimates = mca.kernel_estimates(library, built.kernel_work, self.profile.mca["cpu"])
        try:
            return mca.model_ms(estimates, self.profile.mca["clock_ghz"] * 1e9)
        except RuntimeError as exc:
            raise CandidateError(str(exc)) from exc

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
