"""Per-kernel time of ResNet-18's 3x3 conv shapes (conv + bias + ReLU): direct template vs Winograd.

    python scripts/bench_winograd.py [--json] [--profile host] [--rounds 5]

For each shape, the kernel autocomp builds with the profile's `winograd` key set to `off` (direct),
`auto` (weights transformed inside the kernel on every call) and `stored` (transformed at build time),
each forced onto the shape whatever its tile count, so the thresholds in autocomp/build/passes/winograd.py
(MIN_TILES_PER_CALL, MIN_TILES_STORED) can be checked against this CPU. The kernels are timed alone
(TVM's time evaluator, min over rounds that take turns): weights and activations are warm in the
caches, which favours `stored` on the big late layers (see the module docstring).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

SHAPES = [(56, 64), (28, 128), (14, 256), (7, 512)]  # (height = width, channels in = out)
MODES = ("off", "auto", "stored")


def kernels(h: int, c: int, target, mode_list) -> dict[str, object]:  # type: ignore[no-untyped-def]
    import torch
    from tvm import tirx

    from autocomp.build.compile import legalize
    from autocomp.build.passes import precompute, winograd
    from autocomp.build.passes.layout import channels_last
    from autocomp.lower import lower
    from autocomp.build.kernels.driver import schedule_and_pack

    net = torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU()).eval()
    lowered = lower(net, torch.randn(1, c, h, h))
    out = {}
    for mode in mode_list:
        fused = legalize(winograd.rewrite(channels_last(lowered.mod), target, mode), target)
        fused, _, _ = precompute.fold(fused, lowered.params)
        scheduled, _, _ = schedule_and_pack(fused, target)
        out[mode] = next(f for gv, f in scheduled.functions_items()
                         if isinstance(f, tirx.PrimFunc) and "conv2d" in gv.name_hint)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", default="host", help="a locally measured CPU profile (e.g. mcpu = haswell)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TVM_NUM_THREADS", str(_bench.THREADS))
    warnings.filterwarnings("ignore")

    from autocomp.build.passes import winograd
    from autocomp.device.profiles import load_profile
    from autocomp.build.kernels.tuning import time_kernel

    profile = load_profile(args.profile)
    if profile.measure != "local" or profile.kind != "cpu":
        raise SystemExit(f"--profile {args.profile}: this benchmark times CPU kernels on this machine only")
    target = profile.tvm_target()
    winograd.MIN_TILES_PER_CALL = winograd.MIN_TILES_STORED = 1  # every shape in every mode
    rows = []
    for h, c in SHAPES:
        ks = kernels(h, c, target, MODES)
        times: dict[str, list[float]] = {m: [] for m in ks}
        for _ in range(args.rounds):
            for m, k in ks.items():
                times[m].append(time_kernel(k, target))
        best = {m: min(t) * 1e3 for m, t in times.items()}
        tiles = (-(-h // winograd.TILE)) ** 2
        for m in MODES:
            rows.append({"shape": f"{h}x{h}x{c}", "tiles": tiles, "mode": m, "ms": best[m], "vs_direct": best[m] / best["off"],
                         "weight_mb": (36 if m == "stored" else 9) * c * c * 4 / 1e6})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_bench.cpu_banner())
    print(f"profile {profile.name}: {profile.resolved_target()}")
    print(f"{'shape':12s} {'tiles':>5s} {'mode':7s} {'ms':>8s} {'x direct':>8s} {'weights MB':>10s}")
    for r in rows:
        print(f"{r['shape']:12s} {r['tiles']:5d} {r['mode']:7s} {r['ms']:8.3f} {r['vs_direct']:8.2f} {r['weight_mb']:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
