"""onnxruntime's own fp32 and int8 builds of the task's model, timed on this host beside the TVM reference.

Why: the user's alternative to autocomp is usually "export to ONNX and run it in onnxruntime", with
or without onnxruntime's own int8 quantization. The report marks both on the front so a user sees
whether a compressed build beats what they would otherwise ship. They are timed in the same A/B rounds
as the TVM fp32 reference (measure/interleave.py), so each is a ratio to it, and sits on the front's
drift-corrected latency axis as ratio x the study's reference figure, like every trial.

onnxruntime's int8 is its documented static recipe: QDQ, uint8 activations, int8 per-channel
weights, calibrated (MinMax) on the task's calibration inputs. Its accuracy is measured too, on the
eval set, with onnxruntime's default (fused) session: what a user of that file gets on this CPU.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


class OrtSession:
    """An onnxruntime session with the interface LocalRunner.compare times (args, warm, timer)."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # the same cores TVM times on
        options.inter_op_num_threads = 1
        # Its pool's threads spin after each run by default, on the cores the TVM reference is timed on
        # next in the A/B rounds: they sleep instead, so neither side is timed against the other's spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def args(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input: np.ascontiguousarray(x)}

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, self.args(x))[0]

    def warm(self, x: np.ndarray, n: int) -> None:
        feed = self.args(x)
        for _ in range(n):
            self.session.run(None, feed)

    def timer(self, x: np.ndarray, number: int) -> Callable[[], float]:
        """One sample per call: the mean of `number` back-to-back runs, in seconds."""
        feed = self.args(x)

        def sample() -> float:
            start = time.perf_counter()
            for _ in range(number):
                self.session.run(None, feed)
            return (time.perf_counter() - start) / number

        return sample


def quantize_static(fp32: Path, out: Path, calib: np.ndarray) -> None:
    """onnxruntime's own int8 of `fp32` (QDQ, u8 activations, s8 per-channel weights, MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    ort_quantize(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                 activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def measure(ctx: Any, runner: Any) -> dict[str, Any]:
    """Export the task's fp32 model, quantize it with onnxruntime, time both beside the TVM fp32
    reference (LocalRunner.compare) and measure both accuracies. Returns, per build, its ratio to the
    reference, its latency in this window and its accuracy; a build onnxruntime cannot make or run
    gets `error` (one line) instead."""
    from autocomp.lower.onnx_export import export_onnx
    from autocomp.errors import first_line
    from autocomp.device.threads import local_threads
    from autocomp.measure.accuracy import accuracy_compiled

    threads = local_threads(runner.measurement)
    x = ctx.task.example_input.numpy()
    out: dict[str, Any] = {"threads": threads}
    with tempfile.TemporaryDirectory(prefix="autocomp-ort-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(ctx.model, ctx.task.example_input, fp32)
        builds = {"fp32": fp32}
        try:
            quantize_static(fp32, Path(tmp) / "int8.onnx", ctx.task.calib_data.numpy())
            builds["int8"] = Path(tmp) / "int8.onnx"
        except Exception as exc:  # onnxruntime's quantizer refuses some graphs; say so, keep fp32
            out["int8"] = {"error": first_line(exc)}
        sessions = {name: OrtSession(path, threads) for name, path in builds.items()}
        ref_latency, comparisons = runner.compare(list(sessions.values()), runner.reference_session(ctx.reference()), x)
        for (name, session), c in zip(sessions.items(), comparisons):
            out[name] = {"ratio": c.ratio, "latency_ms": c.candidate.median_ms,
                         "accuracy": accuracy_compiled(session.run, ctx.task)}
    out.update(reference_ms=ref_latency.median_ms, rounds=comparisons[0].rounds)
    return out
