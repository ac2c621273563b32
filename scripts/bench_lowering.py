"""Latency and size of autocomp's compiled artifact vs onnxruntime and PyTorch, in one run.

    python scripts/bench_lowering.py [--task fashion-mnist] [--json]

For the built-in task's model at fp32 / w8a8 / w4a8 / mixed: autocomp's compiled latency (TVM time
evaluator, as the search measures it), onnxruntime on autocomp's own ONNX export of the same plan,
onnxruntime fp32 and onnxruntime's own int8 (quantize_static, QDQ), and PyTorch eager fp32; ratios are
against onnxruntime fp32 measured in this run. Compare ratios, not absolute times, across machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402


def mixed_plan(ctx):  # type: ignore[no-untyped-def]
    from autocomp.plan import CompressionPlan, LayerPlan

    first, last = ctx.layers[0], ctx.layers[-1]
    return CompressionPlan(tuple(
        LayerPlan(n, 8 if n in (first, last) else 4, 8, 0.25 if n in ctx.prunable and n not in (first,) else 0.0)
        for n in ctx.layers))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from autocomp.lower.onnx_export import export_onnx
    from autocomp.build.compile import build, export_library
    from autocomp.candidate import prepare
    from autocomp.compress import compress
    from autocomp.measure.accuracy import accuracy_compiled, accuracy_torch
    from autocomp.lower import lower
    from autocomp.measure.local import LocalRunner
    from autocomp.plan import CompressionPlan
    from autocomp.device.profiles import load_profile
    from autocomp.tasks import load_task

    task = load_task(args.task)
    host = load_profile("host")
    ctx = prepare(task, host)
    x = task.example_input
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-lowering-"))
    fp32_onnx = tmp / "fp32.onnx"
    export_onnx(ctx.model, x, fp32_onnx)
    ort_fp32 = _bench.ort_ms(fp32_onnx, x.numpy())
    ort_int8_path = tmp / "ort_int8.onnx"
    _bench.ort_quantize_static(fp32_onnx, ort_int8_path, task.calib_data.numpy())
    ort_int8 = _bench.ort_ms(ort_int8_path, x.numpy())
    rows.append({"path": "ort-fp32", "plan": "fp32", "latency_ms": ort_fp32, "model_bytes": fp32_onnx.stat().st_size,
                 "accuracy": _bench.onnx_accuracy(fp32_onnx, task)})
    rows.append({"path": "ort-int8 (quantize_static)", "plan": "w8a8", "latency_ms": ort_int8,
                 "model_bytes": ort_int8_path.stat().st_size, "accuracy": _bench.onnx_accuracy(ort_int8_path, task)})
    rows.append({"path": "torch-fp32", "plan": "fp32", "latency_ms": _bench.torch_ms(ctx.model, x),
                 "model_bytes": sum(p.numel() * p.element_size() for p in ctx.model.parameters()),
                 "accuracy": accuracy_torch(ctx.model, task)})

    plans = {
        "fp32": CompressionPlan.uniform(ctx.layers),
        "w8a8": CompressionPlan.uniform(ctx.layers, 8, 8),
        "w4a8": CompressionPlan.uniform(ctx.layers, 4, 8),
        "mixed": mixed_plan(ctx),
    }
    runner = LocalRunner(host.measurement)
    for name, plan in plans.items():
        model = compress(ctx.model, plan, x, task.calib_data, ctx.protected)
        built = build(lower(model, x), host)
        session = runner.session(built)
        lat = runner.time(session, x.numpy())
        lib = export_library(built, host, tmp / name)
        rows.append({"path": "autocomp-tvm", "plan": f"{name} ({plan.summary()})", "latency_ms": lat.median_ms,
                     "param_bytes": built.param_bytes, "arena_bytes": built.arena_bytes,
                     "model_bytes": built.param_bytes + lib.stat().st_size,
                     "accuracy": accuracy_compiled(session.run, task)})
        onnx_path = tmp / f"{name}.onnx"
        export_onnx(model, x, onnx_path)
        rows.append({"path": "ort on autocomp's ONNX", "plan": f"{name} ({plan.summary()})",
                     "latency_ms": _bench.ort_ms(onnx_path, x.numpy()), "model_bytes": onnx_path.stat().st_size,
                     "accuracy": _bench.onnx_accuracy(onnx_path, task)})
    for r in rows:
        r["vs_ort_fp32"] = r["latency_ms"] / ort_fp32
    if args.json:
        print(json.dumps({"cpu": _bench.cpu_banner(), "task": task.name, "rows": rows}, indent=2))
        return 0
    print(_bench.cpu_banner())
    print(f"task {task.name}: {task.description}; batch 1; model_bytes = params + library (TVM) or file size (ONNX)")
    print(f"{'path':28s} {'plan':32s} {'latency ms':>10s} {'x ort fp32':>10s} {'model KiB':>10s} {'accuracy':>8s}")
    for r in rows:
        print(f"{r['path']:28s} {r['plan']:32s} {r['latency_ms']:10.3f} {r['vs_ort_fp32']:10.2f} "
              f"{r['model_bytes'] / 1024:10.1f} {r['accuracy']:8.4f}")
    torch.set_num_threads(_bench.THREADS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
