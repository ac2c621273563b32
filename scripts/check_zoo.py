"""Issue 18's model matrix: every zoo model at fp32, w8a8 and a mixed pruned plan, compiled for the host
(run, compared with the PyTorch simulation) and for the Raspberry Pi 4 (cross-compiled and linked, not run).

    python scripts/check_zoo.py [--json] [--models resnet18,...] [--size 64] [--targets host,rpi4]

Too slow for the test suite (about 20 builds of a few to 45 s each at 64x64 on 2 cores): the suite runs a
subset (tests/tasks/test_zoo.py). The mixed plan gives every other searchable layer w8a8 (the rest fp32) and
prunes a quarter of every other pruning root's channels, so float -> int8 boundaries, pruned residual /
depthwise / squeeze-excitation couplings and unpruned layers all meet.

Agreement: weights are random (autocomp/tasks/zoo.py), and a deep random net amplifies float rounding: an
input changed by one part in a million moves a mixed plan's own PyTorch output by up to ~15% on
MobileNetV2 (int8 rounding boundaries flip). So a build agrees when its output is within 2% of the
simulation's (the tolerance of tests/lower/test_relax.py) or within twice that self-sensitivity,
which is printed beside it ("noise").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore")

TOLERANCE = 0.02  # relative max abs error, as tests/lower/test_relax.py


def plans(ctx):  # type: ignore[no-untyped-def]
    from autocomp.plan import CompressionPlan, LayerPlan

    half, pruned = set(ctx.layers[::2]), set(ctx.prunable[1::2])
    mixed = CompressionPlan(tuple(LayerPlan(n, 8 if n in half else 32, 8 if n in half else 32,
                                            0.25 if n in pruned else 0.0) for n in ctx.layers))
    return {"fp32": CompressionPlan.uniform(ctx.layers), "w8a8": CompressionPlan.uniform(ctx.layers, 8, 8),
            "mixed": mixed}


def relerr(got, want) -> float:  # type: ignore[no-untyped-def]
    import numpy as np

    return float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))


def check_model(name: str, size: int | None, targets: list[str], tmp: Path) -> list[dict]:
    import numpy as np
    import torch

    from autocomp.build.compile import export_library
    from autocomp.candidate import prepare
    from autocomp.errors import first_line
    from autocomp.device.profiles import load_profile
    from autocomp.measure.local import LocalSession
    from autocomp.tasks.zoo import zoo_task

    task = zoo_task(name, size=size)
    host = prepare(task, load_profile("host"))
    x = task.eval_inputs
    rows = []
    for label, plan in plans(host).items():
        model = host.compress(plan)
        pruned = sum(lp.prune > 0 for lp in plan.layers)
        with torch.no_grad():
            want = model(x).numpy()
            gen = torch.Generator().manual_seed(1)  # three draws: a flip needs a value near a rounding boundary
            noise = max(relerr(model(x * (1 + 1e-6 * torch.randn(x.shape, generator=gen))).numpy(), want)
                        for _ in range(3))
        for target in targets:
            row = {"model": name, "input": "x".join(map(str, x.shape[1:])), "plan": label, "target": target,
                   "pruned_layers": pruned, "float_layers": len(host.float_only), "pruning_off": host.pruning_off}
            t0 = time.perf_counter()
            try:
                # the same compressed model, lowered and built for the target (its int8 dot product
                # decides the integer form); a profile's tuning database holds only this machine's timings
                ctx = host if target == "host" else replace(host, profile=load_profile(target), tuning_db=None)
                built = ctx.build(ctx.lower(model))
                row["build_s"] = round(time.perf_counter() - t0, 1)
                if target == "host":
                    session = LocalSession(built)
                    got = np.concatenate([session.run(x[i:i + 1].numpy()) for i in range(len(x))])
                    err = relerr(got, want)
                    row.update(relerr=err, noise=noise, argmax=float((got.argmax(1) == want.argmax(1)).mean()),
                               agrees=err <= max(TOLERANCE, 2 * noise))
                else:
                    path = export_library(built, ctx.profile, tmp / f"{name}-{label}-{target}")
                    row.update(library_bytes=path.stat().st_size, agrees=None)
            except Exception as exc:  # noqa: BLE001 - a failing cell is a row of the report
                row.update(error=f"{type(exc).__name__}: {first_line(exc)}", agrees=False)
            rows.append(row)
    return rows


def main() -> int:
    from autocomp.errors import first_line
    from autocomp.tasks.zoo import ZOO

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--models", default=",".join(ZOO), help=f"comma-separated, from: {', '.join(ZOO)}")
    parser.add_argument("--size", type=int, default=64, help="CNN input size (ViT and the Conv1d net keep theirs)")
    parser.add_argument("--targets", default="host,rpi4")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="check-zoo-"))
    rows = []
    for name in args.models.split(","):
        try:
            got = check_model(name, args.size, args.targets.split(","), tmp)
        except Exception as exc:  # noqa: BLE001 - a model that cannot even be prepared is a row, not the end
            got = [{"model": name, "input": "", "plan": "-", "target": "-", "pruned_layers": 0, "agrees": False,
                    "error": f"{type(exc).__name__}: {first_line(exc)}"}]
        rows += got
        if not args.json:
            for r in got:
                what = r.get("error") or (f"relerr {r['relerr']:.1e} (noise {r['noise']:.1e}) argmax {r['argmax']:.2f}"
                                          if r["target"] == "host" else f"linked, {r['library_bytes'] / 1e6:.1f} MB")
                ok = {True: "ok", False: "FAIL", None: "ok"}[r["agrees"]]
                print(f"{r['model']:20s} {r['input']:9s} {r['plan']:6s} {r['target']:5s} {ok:4s} "
                      f"build {r.get('build_s', 0):5.1f} s  pruned {r['pruned_layers']:2d}  {what}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(r["agrees"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
