"""The models users bring (torchvision's CNN zoo, a DeiT-tiny-shaped ViT, a Conv1d keyword spotter), batch 1:
autocomp fp32 and w8a8 against onnxruntime fp32 and int8 and PyTorch, in one run.

    python scripts/bench_zoo.py [--json] [--models resnet18,...] [--size 224] [--rounds 5]

Models: autocomp/tasks/zoo.py (random weights with settled BatchNorm statistics: latency only). Paths:
autocomp-fp32, autocomp-int8 (uniform w8a8; layers with no integer lowering stay float, counted in
`float_layers`), ort-fp32, ort-int8 (onnxruntime quantize_static, QDQ, per-channel s8 weights, u8
activations), torch (eager fp32). The paths take turns over --rounds rounds (median of rounds), so the
ratios compare the same minutes of a machine whose speed drifts. The CPU is printed first.
`--json` prints one array, one object per (model, path) with `model`, `path`, `latency_ms` and the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import _bench  # noqa: E402

PATHS = ("autocomp-fp32", "autocomp-int8", "ort-fp32", "ort-int8", "torch")


def bench_model(name: str, size: int | None, rounds: int, runner, profile, tmp: Path) -> list[dict]:  # type: ignore[no-untyped-def]
    from autocomp.candidate import prepare
    from autocomp.lower.onnx_export import export_onnx
    from autocomp.tasks.zoo import zoo_task

    task = zoo_task(name, size=size)
    ctx = prepare(task, profile)
    x = task.example_input
    fp32_onnx, int8_onnx = tmp / f"{name}.onnx", tmp / f"{name}-int8.onnx"
    export_onnx(ctx.model, x, fp32_onnx)
    _bench.ort_quantize_static(fp32_onnx, int8_onnx, task.calib_data.numpy())
    timers = {"ort-fp32": _bench.ort_timer(fp32_onnx, x.numpy()), "ort-int8": _bench.ort_timer(int8_onnx, x.numpy()),
              "torch": _bench.torch_timer(ctx.model, x)}
    build_s = {}
    for path, _model, built in _bench.autocomp_builds(ctx, profile):
        build_s[path] = round(built.compile_s, 1)
        session = runner.session(built)
        timers[path] = lambda session=session: runner.time(session, x.numpy()).median_ms
    ms = _bench.interleaved_ms(timers, rounds=rounds)
    shape = "x".join(map(str, x.shape[1:]))
    return [{"model": name, "input": shape, "path": p, "latency_ms": ms[p], "vs_ort_fp32": ms[p] / ms["ort-fp32"],
             "vs_ort_int8": ms[p] / ms["ort-int8"], "vs_torch": ms[p] / ms["torch"],
             "build_s": build_s.get(p), "float_layers": len(ctx.float_only), "searchable_layers": len(ctx.layers)}
            for p in PATHS]


def main() -> int:
    from autocomp.errors import first_line
    from autocomp.tasks.zoo import ZOO

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--models", default=",".join(ZOO), help=f"comma-separated, from: {', '.join(ZOO)}")
    parser.add_argument("--size", type=int, help="CNN input size instead of 224 (ViT and the Conv1d net keep theirs)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per model (median of rounds)")
    args = parser.parse_args()

    from autocomp.device.profiles import load_profile
    from autocomp.measure.local import LocalRunner

    profile = load_profile("host")
    runner = LocalRunner(profile.measurement, peak_rss=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-zoo-"))
    rows, failures = [], []
    if not args.json:
        print(_bench.cpu_banner(), flush=True)
        print(f"{'model':20s} {'input':10s} {'path':14s} {'latency ms':>10s} {'x ort fp32':>10s} {'x ort int8':>10s} "
              f"{'x torch':>8s}", flush=True)
    for name in args.models.split(","):
        t0 = time.time()
        try:
            got = bench_model(name, args.size, args.rounds, runner, profile, tmp)
        except Exception as exc:  # noqa: BLE001 - one model failing is a row of the report, not the end of it
            failures.append({"model": name, "error": f"{type(exc).__name__}: {first_line(exc)}"})
            if not args.json:
                print(f"{name:20s} FAILED: {failures[-1]['error']}", flush=True)
            continue
        rows += got
        if not args.json:
            for r in got:
                print(f"{r['model']:20s} {r['input']:10s} {r['path']:14s} {r['latency_ms']:10.3f} {r['vs_ort_fp32']:10.2f} "
                      f"{r['vs_ort_int8']:10.2f} {r['vs_torch']:8.2f}", flush=True)
            print(f"{'':20s} ({time.time() - t0:.0f} s; {got[0]['float_layers']} layers stay float, "
                  f"{got[0]['searchable_layers']} take bits)", flush=True)
    if args.json:
        print(json.dumps(rows + failures, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
