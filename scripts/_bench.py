"""Shared helpers of the bench_*.py scripts: timing of the reference runtimes, the CPU banner."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

THREADS = 2


def cpu_banner() -> str:
    from autocomp.device import hostcpu

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


def interleaved_ms(timers: dict[str, Callable[[], float]], rounds: int = 5, pause_s: float = 0.2) -> dict[str, float]:
    """Median over `rounds` rounds of each timer's median, the timers taking turns within a round.

    Why: this machine's speed drifts by tens of percent over a minute (shared host), and a runtime's
    idle threads spin for a while after it returns. Timing every path in each round, with a pause
    between paths, gives ratios that compare the same minutes of the machine."""
    per_path: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            time.sleep(pause_s)
            per_path[name].append(timer())
    return {name: statistics.median(values) for name, values in per_path.items()}


def ort_timer(path: Path, x: np.ndarray, runs: int = 50, min_s: float = 0.3) -> Callable[[], float]:
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    return lambda: median_ms(lambda: sess.run(None, {name: x}), runs=runs, min_s=min_s)


def torch_timer(model: Any, x: Any, runs: int = 50, min_s: float = 0.3) -> Callable[[], float]:
    import torch

    def timer() -> float:
        torch.set_num_threads(THREADS)
        with torch.no_grad():
            return median_ms(lambda: model(x), runs=runs, min_s=min_s)

    return timer


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_ms(path: Path, x: np.ndarray) -> float:
    return ort_timer(path, x, runs=200, min_s=1.0)()


def torch_ms(model: Any, x: Any) -> float:
    return torch_timer(model, x, runs=200, min_s=1.0)()


def ort_quantize_static(fp32_onnx: Path, out: Path, calib: np.ndarray) -> None:
    """onnxruntime's own int8: QDQ, uint8 activations, int8 per-channel weights (the report's marks use
    the same recipe)."""
    from autocomp.measure.onnxruntime_marks import quantize_static

    quantize_static(fp32_onnx, out, calib)


def onnx_accuracy(path: Path, task: Any) -> float:
    import torch

    sess = ort_session(path)
    x = task.eval_inputs.numpy()
    out = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    return float(task.metric(torch.from_numpy(out), task.eval_targets))


def resnet18_like(num_classes: int = 1000) -> Any:
    """ResNet-18's layout (BasicBlocks 2-2-2-2, 64-512 channels) with random weights: for latency only."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
            chans, layers, cin = [64, 128, 256, 512], [], 64
            for i, c in enumerate(chans):
                layers += [Block(cin, c, 1 if i == 0 else 2), Block(c, c, 1)]
                cin = c
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(torch.mean(self.layers(self.stem(x)), dim=(2, 3), keepdim=True), 1))

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained net has
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


def mobilenet_like(num_classes: int = 1000) -> Any:
    """MobileNet-v1's layout (3x3 depthwise + 1x1 pointwise pairs, 32-1024 channels) with random
    weights at 224x224: the depthwise kernels a dense-conv template does not cover."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    cfg = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
           *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()]
            for cin, cout, stride in cfg:
                layers += block(cin, cout, stride)
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(1024, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(torch.mean(self.features(x), dim=(2, 3), keepdim=True), 1))

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


def measured_fma_peak_gflops(target: Any, threads: int = THREADS) -> tuple[float, str]:
    """fp32 FMA peak of this CPU, measured: a TIR loop of independent vector FMA chains built for the
    TVM target the paths are compiled for, one chain set per runtime thread, best of 5 repeats.

    Why measured: clock x lanes x pipes from /proc/cpuinfo is wrong both ways (Zen 4 runs a 512-bit
    FMA as two 256-bit halves, and boost clocks exceed the nominal one), which made int8 paths read
    over 180% of "peak"."""
    import tvm
    from tvm.script import tirx as T

    from autocomp.device.threads import master_off_worker_cores, use_threads
    from autocomp.device.features import num_vector_regs, vector_bits

    threads = use_threads(threads)  # the runtime's default is half the logical CPUs on x86
    lanes = vector_bits(target) // 32
    acc = 12 if num_vector_regs(target) >= 32 else 10  # enough chains to cover the FMA latency
    steps = 1_000_000

    @T.prim_func
    def fma_chains(out: T.Buffer((threads, acc, lanes), "float32")) -> None:
        for p in T.parallel(threads):
            chain = T.alloc_buffer((acc, lanes), "float32", scope="local")
            for j in T.unroll(acc):
                for v in T.vectorized(lanes):
                    chain[j, v] = T.float32(1.0) + T.Cast("float32", j)
            for _ in range(steps):
                for j in T.unroll(acc):
                    for v in T.vectorized(lanes):
                        chain[j, v] = chain[j, v] * T.float32(0.9999999) + T.float32(1e-7)
            for j in T.unroll(acc):
                for v in T.vectorized(lanes):
                    out[p, j, v] = chain[j, v]

    lib = tvm.tirx.build(tvm.IRModule({"main": fma_chains}), target=target)
    out = tvm.runtime.tensor(np.zeros((threads, acc, lanes), "float32"))
    with master_off_worker_cores():
        seconds = min(lib.time_evaluator("main", tvm.cpu(), number=1, repeat=5)(out).results)
    peak = threads * steps * acc * lanes * 2 / seconds / 1e9
    return peak, (f"measured fp32 FMA peak {peak:.0f} GFLOP/s ({threads} threads x {acc} chains of {lanes}-lane FMAs, "
                  f"best of 5); % pk below is of this figure")


def autocomp_builds(ctx, profile):  # type: ignore[no-untyped-def]
    """(path, compressed model, build) of autocomp's two paths: uniform fp32 and w8a8, lowered as a
    search lowers them."""
    from autocomp.build.compile import build
    from autocomp.compress import compress
    from autocomp.plan import CompressionPlan

    x = ctx.task.example_input
    for path, (w, a) in {"autocomp-fp32": (32, 32), "autocomp-int8": (8, 8)}.items():
        model = compress(ctx.model, CompressionPlan.uniform(ctx.layers, w, a), x, ctx.task.calib_data, ctx.protected)
        yield path, model, build(ctx.lower(model), profile)
