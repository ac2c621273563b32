"""ARM kernels judged without a board: llvm-mca cycle estimates of each conv / matmul kernel's hot loop.

    python scripts/bench_arm_static.py [--json] [--models builtin,resnet18,mobilenet] [--devices rpi4,rpi5]

For each model, device and dtype (fp32: uniform fp32 plan; int8: uniform w8a8) the model is built as a
search builds it for the device's target (cross-compiled, aarch64), disassembled, and each kernel's
hottest inner loop (the innermost loop issuing the most multiply-accumulate lanes; measure/mca.py) is
run through llvm-mca on the device's core:

- rpi4 (Cortex-A72): `-mcpu=cortex-a72`, which LLVM 19 schedules with its Cortex-A57 model (the A72
  is an A57 derivative; LLVM has no A72-specific model);
- rpi5 (Cortex-A76): `-mcpu=neoverse-n1`, the A76's server sibling with its own LLVM model; LLVM's
  `cortex-a76` falls back to the same A57 model, which lacks the A76's second FP/ASIMD pipe.

Per kernel: cycles per iteration, MAC lanes per cycle, and the fraction of the core's peak, where the
peak is what the same model gives a loop of independent MAC instructions (printed first): comparing the
kernel with the model's own ceiling, not with a datasheet figure the model may not share. Whole-model
figure: sum over MAC kernels of (kernel MACs / loop MACs per iteration) x cycles per iteration / clock,
one core, the profile's clock, each kernel counted as often as the model calls it; kernel MACs are
TVM's FLOP estimate of the fused kernel / 2 (a Winograd kernel's are its transform and batched-GEMM
products, not the direct conv's). Data-movement kernels
(transposes, packing, pooling) and cache misses are not modelled: the figure is a lower bound on time.
Every figure is labelled `estimate (llvm-mca)`.
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

from bench_latency import model_cases  # noqa: E402

LABEL = "estimate (llvm-mca)"
CORES = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}  # the core each Pi has (llvm-mca's model and the clock:
# the profile's [mca] table, which --estimate uses too)


def core_model(profile) -> tuple[str, str, float]:  # type: ignore[no-untyped-def]
    """(llvm-mca -mcpu, the core it stands for, clock in Hz) of a Pi's profile."""
    return profile.mca["cpu"], CORES[profile.name], profile.mca["clock_ghz"] * 1e9


PEAKS = {"fp32": ["fp32 fmla .4s"], "int8": ["int8 sdot .4s", "int8 smlal .8h", "int8 mla .4s (int32 lanes)"]}


def peaks(mcpu: str) -> dict[str, float | None]:
    from autocomp.measure import mca

    out: dict[str, float | None] = {}
    for names in PEAKS.values():
        for name in names:
            try:
                out[name] = mca.peak(mcpu, name, accumulators=16)
            except RuntimeError:
                out[name] = None  # the core lacks the instruction (sdot on the A72)
    return out


def analyse(model_name: str, task, device: str, tmp: Path) -> list[dict]:  # type: ignore[no-untyped-def]
    from autocomp.build.compile import build, export_library
    from autocomp.candidate import prepare
    from autocomp.compress import compress
    from autocomp.device.profiles import load_profile
    from autocomp.measure import mca
    from autocomp.plan import CompressionPlan

    profile = load_profile(device)
    mcpu, core, clock = core_model(profile)
    ctx = prepare(task, profile)
    peak = peaks(mcpu)
    rows = []
    for dtype, bits in (("fp32", 32), ("int8", 8)):
        best_peak_name = max((n for n in PEAKS[dtype] if peak[n]), key=lambda n: peak[n])  # type: ignore[arg-type,return-value]
        model = compress(ctx.model, CompressionPlan.uniform(ctx.layers, bits, bits), task.example_input,
                         task.calib_data, ctx.protected)
        built = build(ctx.lower(model), profile)  # built.kernel_work: each kernel's MACs and calls
        library = export_library(built, profile, tmp / f"{model_name}-{device}-{dtype}")
        for e in mca.kernel_estimates(library, built.kernel_work, mcpu):
            row = {"model": model_name, "device": device, "kernel": e.kernel, "mcpu": core, "llvm_mcpu": mcpu,
                   "dtype": dtype, "schedule": built.kernels.get(e.kernel, "?"), "loop_instructions": len(e.loop.body),
                   "mac_lanes_per_iteration": e.loop.mac_lanes, "source": LABEL}
            if e.result is None:
                rows.append({**row, "error": e.error})
                continue
            rows.append({**row, "cycles_per_iteration": e.result.cycles_per_iteration,
                         "macs_per_cycle": e.result.macs_per_cycle,
                         "peak_name": best_peak_name, "peak_macs_per_cycle": peak[best_peak_name],
                         "peak_fraction": e.result.macs_per_cycle / peak[best_peak_name],  # type: ignore[operator]
                         "kernel_macs": e.macs, "calls": e.calls, "kernel_ms_one_core": e.cycles_per_call / clock * 1e3,
                         "clock_hz": clock})
    return rows


def totals(rows: list[dict]) -> list[dict]:
    import math

    out: dict[tuple, dict] = {}
    for r in rows:
        if "error" in r:
            continue
        key = (r["model"], r["device"], r["dtype"])
        t = out.setdefault(key, {"model": r["model"], "device": r["device"], "mcpu": r["mcpu"], "dtype": r["dtype"],
                                 "kernels": 0, "macs": 0.0, "ms_one_core": 0.0, "source": LABEL})
        if not math.isnan(r["kernel_ms_one_core"]):
            t["kernels"] += r["calls"]
            t["macs"] += r["kernel_macs"] * r["calls"]
            t["ms_one_core"] += r["kernel_ms_one_core"] * r["calls"]
    return list(out.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one array, one object per (model, kernel, mcpu, dtype)")
    parser.add_argument("--models", default="builtin,resnet18,mobilenet")
    parser.add_argument("--devices", default="rpi4,rpi5")
    args = parser.parse_args()

    from autocomp.measure import mca

    if problem := mca.available():
        raise SystemExit(problem)
    tmp = Path(tempfile.mkdtemp(prefix="bench-arm-static-"))
    rows = []
    for model_name, task in model_cases(args.models.split(",")):
        for device in args.devices.split(","):
            rows += analyse(model_name, task, device, tmp)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"every figure: {LABEL}, one core, steady state of the hot loop (no cache misses)")
    for device in args.devices.split(","):
        from autocomp.device.profiles import load_profile

        mcpu, core, clock = core_model(load_profile(device))
        shown = ", ".join(f"{n} {p:.2f}" if p else f"{n} n/a" for n, p in peaks(mcpu).items())
        print(f"{device}: {core} as llvm-mca -mcpu={mcpu}, {clock / 1e9:.1f} GHz; peak MAC lanes/cycle: {shown}")
    print(f"{'model':14s} {'device':6s} {'dtype':5s} {'kernel':44s} {'cyc/it':>7s} {'MAC/cyc':>7s} {'% peak':>6s} "
          f"{'ms 1 core':>9s} {'calls':>5s}  schedule")
    for r in rows:
        if "error" in r:
            print(f"{r['model']:14s} {r['device']:6s} {r['dtype']:5s} {r['kernel'][:44]:44s} {r['error']}")
            continue
        print(f"{r['model']:14s} {r['device']:6s} {r['dtype']:5s} {r['kernel'][:44]:44s} {r['cycles_per_iteration']:7.2f} "
              f"{r['macs_per_cycle']:7.2f} {100 * r['peak_fraction']:5.1f}% {r['kernel_ms_one_core']:9.3f} {r['calls']:5d}  {r['schedule']}")
    print("whole model (MAC kernels only; a lower bound on time):")
    for t in totals(rows):
        print(f"  {t['model']:14s} {t['device']:6s} {t['dtype']:5s} {t['ms_one_core']:8.3f} ms on one core, "
              f"{t['macs'] / 1e6:.1f} M MACs in {t['kernels']} kernel calls  [{LABEL}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
