"""Compiled latency of autocomp's fp32 and int8 artifacts vs onnxruntime and PyTorch, in one run.

    python scripts/bench_latency.py [--json] [--models builtin,resnet18,mobilenet] [--profile host]
                                    [--winograd auto|stored|off] [--tracker HOST:PORT [--rpc-key K]]

Models: the built-in task's FashionNet (1x1x28x28), a ResNet-18-shaped net and a MobileNet-v1-shaped
net (depthwise convs) at 1x3x224x224 (random weights: latency only). Paths: autocomp-fp32, autocomp-int8 (uniform w8a8), ort-fp32, ort-int8
(onnxruntime quantize_static, QDQ, u8/s8), torch (eager fp32). GFLOP/s counts 2 x the conv / linear
multiply-accumulates of the fp32 model; "% pk" is that over this CPU's fp32 FMA peak, measured in the same run
(_bench.measured_fma_peak_gflops). Winograd convs do fewer multiplies than that count, so with them the
figure is direct-conv-equivalent and can pass 100%. The paths take turns over --rounds rounds (median of rounds), so
the ratios compare the same minutes of a machine whose speed drifts. The CPU is printed first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402


def model_cases(names: list[str]):  # type: ignore[no-untyped-def]
    import torch

    from autocomp.tasks import Task, load_task

    for name in names:
        if name == "builtin":
            yield "fashionnet-28", load_task(None)
        elif name in ("resnet18", "mobilenet"):
            net = _bench.resnet18_like() if name == "resnet18" else _bench.mobilenet_like()
            gen = torch.Generator().manual_seed(0)
            calib = torch.randn(16, 3, 224, 224, generator=gen)
            x = torch.randn(8, 3, 224, 224, generator=gen)
            yield f"{name}-224", Task(name=f"{name}-like", build_model=lambda net=net: net, example_input=x[:1],
                                      calib_data=calib, eval_inputs=x, eval_targets=torch.zeros(8, dtype=torch.long))
        else:
            raise SystemExit(f"unknown model {name!r}: builtin, resnet18, mobilenet")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--models", default="builtin,resnet18,mobilenet")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per model (median of rounds)")
    parser.add_argument("--profile", default="host",
                        help="a locally measured device profile to compile autocomp's paths for (e.g. one with "
                             "mcpu = haswell, to time the AVX2 kernels on a newer x86)")
    parser.add_argument("--tracker", metavar="HOST:PORT",
                        help="with an RPC profile (rpi4, rpi5, ...): time autocomp's paths on a board of the profile's "
                             "key at this TVM RPC tracker; onnxruntime and PyTorch do not run there, so only "
                             "autocomp's rows are printed, with GFLOP/s but no ratios and no peak")
    parser.add_argument("--rpc-key", help="with --tracker: the boards' key (default: the profile's rpc_key)")
    parser.add_argument("--winograd", choices=("auto", "stored", "off"),
                        help="override the profile's winograd key for the fp32 3x3 convs (default: the profile's)")
    args = parser.parse_args()

    from autocomp.lower.onnx_export import export_onnx
    from autocomp.candidate import prepare
    from autocomp.measure.estimate import layer_macs
    from autocomp.measure.local import LocalRunner
    from autocomp.device.profiles import load_profile

    profile = load_profile(args.profile)
    if args.winograd:
        profile = dataclasses.replace(profile, winograd=args.winograd)
    if profile.measure != "local" or args.tracker:
        if not args.tracker:
            raise SystemExit(f"--profile {args.profile} is measured over RPC: pass --tracker HOST:PORT of a tracker "
                             f"where its boards register (key '{profile.rpc_key}')")
        return _remote(args, profile)
    runner = LocalRunner(profile.measurement, peak_rss=False)
    peak, peak_text = _bench.measured_fma_peak_gflops(profile.tvm_target())
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    rows = []
    for model_name, task in model_cases(args.models.split(",")):
        ctx = prepare(task, profile)
        x = task.example_input
        gflop = 2 * sum(m for m, _ in layer_macs(ctx.model, x).values()) / 1e9
        fp32_onnx = tmp / f"{model_name}.onnx"
        export_onnx(ctx.model, x, fp32_onnx)
        int8_onnx = tmp / f"{model_name}-int8.onnx"
        _bench.ort_quantize_static(fp32_onnx, int8_onnx, task.calib_data.numpy())
        timers = {"ort-fp32": _bench.ort_timer(fp32_onnx, x.numpy()), "ort-int8": _bench.ort_timer(int8_onnx, x.numpy()),
                  "torch": _bench.torch_timer(ctx.model, x)}
        for path, _model, built in _bench.autocomp_builds(ctx, profile):
            session = runner.session(built)
            timers[path] = lambda session=session: runner.time(session, x.numpy()).median_ms
        timings = _bench.interleaved_ms(timers, rounds=args.rounds)
        for path in ("autocomp-fp32", "autocomp-int8", "ort-fp32", "ort-int8", "torch"):
            ms = timings[path]
            rows.append({"model": model_name, "path": path, "winograd": profile.winograd, "latency_ms": ms, "gflops": gflop / (ms / 1e3),
                         "pct_fma_peak": 100 * gflop / (ms / 1e3) / peak, "vs_ort_fp32": ms / timings["ort-fp32"], "vs_ort_int8": ms / timings["ort-int8"]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_bench.cpu_banner())
    if args.profile != "host":
        print(f"autocomp paths compiled for profile {args.profile}: {profile.resolved_target()}")
    print(peak_text)
    print(f"autocomp fp32 3x3 convs: winograd = {profile.winograd} (auto: transformed weights per call, "
          "same bytes; stored: 4x those weights, stored; off: direct)")
    print(f"{'model':14s} {'path':14s} {'latency ms':>10s} {'GFLOP/s':>8s} {'% fp32 pk':>9s} {'x ort fp32':>10s} {'x ort int8':>10s}")
    for r in rows:
        print(f"{r['model']:14s} {r['path']:14s} {r['latency_ms']:10.3f} {r['gflops']:8.1f} "
              f"{r['pct_fma_peak']:8.1f}% {r['vs_ort_fp32']:10.2f} {r['vs_ort_int8']:10.2f}")
    return 0


def _remote(args: argparse.Namespace, profile) -> int:  # type: ignore[no-untyped-def]
    """autocomp's two paths timed on a board through the RPC tracker (the runner a search uses)."""
    from autocomp.candidate import prepare
    from autocomp.measure.estimate import layer_macs
    from autocomp.measure.base import MeasureOptions
    from autocomp.measure.runners import runner_for

    runner = runner_for(profile, MeasureOptions(tracker=args.tracker, rpc_key=args.rpc_key))
    rows = []
    for model_name, task in model_cases(args.models.split(",")):
        ctx = prepare(task, profile)
        x = task.example_input
        gflop = 2 * sum(m for m, _ in layer_macs(ctx.model, x).values()) / 1e9
        for path, model, built in _bench.autocomp_builds(ctx, profile):
            result = runner.run(built, model, task)
            ms = result.latency.median_ms
            rows.append({"model": model_name, "path": path, "winograd": profile.winograd, "latency_ms": ms,
                         "gflops": gflop / (ms / 1e3), "pct_fma_peak": None, "vs_ort_fp32": None, "vs_ort_int8": None,
                         "measured_on": result.measured_on})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"profile {profile.name}: {profile.resolved_target()}, timed at {rows[0]['measured_on'] if rows else args.tracker}")
    if rows and rows[0]["measured_on"].startswith("emulated"):
        print("EMULATED device (qemu): these latencies are not the board's; they check that the path runs")
    print(f"autocomp fp32 3x3 convs: winograd = {profile.winograd}")
    print(f"{'model':14s} {'path':14s} {'latency ms':>10s} {'GFLOP/s':>8s}")
    for r in rows:
        print(f"{r['model']:14s} {r['path']:14s} {r['latency_ms']:10.3f} {r['gflops']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
