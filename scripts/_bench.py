"""Shared helpers of the bench_*.py scripts: timing of the reference runtimes, the CPU banner."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

THREADS = 2


def cpu_banner() -> str:
    from autocomp import hostcpu

    return f"CPU: {hostcpu.detect().describe()}; {THREADS} threads for every runtime"


def median_ms(fn: Callable[[], Any], warmup: int = 10, runs: int = 200, min_s: float = 1.0) -> float:
    """Median wall time of fn() over at least `runs` calls and `min_s` seconds, after warm-up."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_s:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_ms(path: Path, x: np.ndarray) -> float:
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    return median_ms(lambda: sess.run(None, {name: x}))


def torch_ms(model: Any, x: Any) -> float:
    import torch

    torch.set_num_threads(THREADS)
    with torch.no_grad():
        return median_ms(lambda: model(x))


def ort_quantize_static(fp32_onnx: Path, out: Path, calib: np.ndarray) -> None:
    """onnxruntime's own int8: QDQ, uint8 activations, int8 per-channel weights."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(fp32_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def onnx_accuracy(path: Path, task: Any) -> float:
    import torch

    sess = ort_session(path)
    x = task.eval_inputs.numpy()
    out = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    return float(task.metric(torch.from_numpy(out), task.eval_targets))
