"""Structural hashes of the scheduled modules of the bench nets: the proof that a refactoring changed
no kernel.

For FashionNet (the built-in task), the ResNet-18-like and the MobileNet-like nets, at fp32 and w8a8,
for the znver4, haswell and cortex-a72 targets, the candidate goes through compress -> lower -> build
exactly as a search builds it, except that ``tvm.compile`` (LLVM code generation, the slow part) is
replaced by a recorder: what is hashed is the module ``tvm.compile`` would get (every Relax pass, every
scheduled PrimFunc, the packed weight layouts) plus the parameter bytes and the per-kernel report.

    python scripts/schedule_hashes.py --out before.json      # on the old commit
    python scripts/schedule_hashes.py --compare before.json  # on the new one: exit 1 on any difference
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _bench  # noqa: E402

TARGETS = {
    "znver4": ("host", {"kind": "llvm", "mcpu": "znver4", "num-cores": 2}),
    "haswell": ("host", {"kind": "llvm", "mcpu": "haswell", "num-cores": 2}),
    "cortex-a72": ("rpi4", None),
}
PLANS = {"fp32": (32, 32), "int8": (8, 8)}


def _tasks(names: list[str]):  # type: ignore[no-untyped-def]
    import torch

    from autocomp.tasks import Task, load_task

    for name in names:
        if name == "fashionnet":
            yield name, load_task(None)
            continue
        net = _bench.resnet18_like() if name == "resnet18" else _bench.mobilenet_like()
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(4, 3, 224, 224, generator=gen)
        yield name, Task(name=name, build_model=lambda net=net: net, example_input=x[:1], calib_data=x,
                         eval_inputs=x, eval_targets=torch.zeros(4, dtype=torch.long))


def hashes(models: list[str], targets: list[str]) -> dict[str, Any]:
    import tvm
    from tvm_ffi import structural_hash

    from autocomp import load_profile
    from autocomp.candidate import prepare
    from autocomp.plan import CompressionPlan

    captured: list[Any] = []

    def record(mod: Any, *args: Any, **kwargs: Any) -> Any:
        captured.append(mod)
        return None

    real_compile, tvm.compile = tvm.compile, record
    out: dict[str, Any] = {}
    try:
        for model_name, task in _tasks(models):
            for target_name in targets:
                base, target = TARGETS[target_name]
                profile = load_profile(base)
                if target is not None:
                    profile = dataclasses.replace(profile, target=target)
                ctx = prepare(task, profile)
                for plan_name, (w, a) in PLANS.items():
                    plan = CompressionPlan.uniform(ctx.layers, w, a)
                    captured.clear()
                    built = ctx.build(ctx.lower(ctx.compress(plan)))
                    mod = captured[-1]
                    kernels = {gv.name_hint: f"{structural_hash(f):x}" for gv, f in mod.functions_items()
                               if isinstance(f, tvm.tirx.PrimFunc)}
                    params = hashlib.sha256(b"".join(p.tobytes() for p in built.params)).hexdigest()[:16]
                    key = f"{model_name}/{plan_name}/{target_name}"
                    out[key] = {"module": f"{structural_hash(mod):x}", "params": params,
                                "kernels": kernels, "report": built.kernels}
                    print(f"{key}: module {out[key]['module']}, {len(kernels)} kernels, params {params}",
                          flush=True)
    finally:
        tvm.compile = real_compile
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fashionnet,resnet18,mobilenet")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", type=Path, help="write the hashes to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with a JSON file written by --out")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(_bench.cpu_banner())
    found = hashes(args.models.split(","), args.targets.split(","))
    if args.out:
        args.out.write_text(json.dumps(found, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(args.compare.read_text())
        diff = [k for k in sorted(set(before) | set(found)) if before.get(k) != found.get(k)]
        for key in diff:
            print(f"DIFFERENT: {key}")
        print(f"{len(found) - len(diff)} of {len(found)} configurations identical to {args.compare}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
