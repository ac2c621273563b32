"""Compile a lowered model for a device profile's target; plan its activation memory.

We run TVM's CPU pipeline ourselves up to StaticPlanBlockMemory so the planned activation arena can be
read off the IR (the sizes of the `alloc_storage` calls the VM will make), then hand the lowered module
to `tvm.compile` with no further Relax passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autocomp.errors import CandidateError
from autocomp.lower.relax import LoweredModel
from autocomp.device.profiles import DeviceProfile


@dataclass
class BuildResult:
    """A compiled candidate. param_bytes counts the runtime parameters *and* the constants the
    compiler embedded in the library (e.g. BatchNorm statistics): both are stored model bytes."""

    executable: Any  # tvm.relax.Executable
    params: tuple[np.ndarray, ...]
    param_bytes: int
    const_bytes: int
    arena_bytes: int
    target: dict[str, Any]
    compile_s: float
    kernels: dict[str, str] = field(default_factory=dict)  # kernel -> "scheduled (how)" or why not
    # kernel -> (multiply-adds per call, calls per inference): TVM's FLOP count of each fused kernel / 2,
    # what measure/mca.py turns into an estimate (CPU targets)
    kernel_work: dict[str, tuple[float, int]] = field(default_factory=dict)


def _storage_bytes(func: Any) -> int:
    """Sum of the constant sizes of memory.alloc_storage (planned) and builtin.alloc_tensor (outputs);
    after VM lowering (the GPU path) the planned storages are vm.alloc_storage calls."""
    import tvm
    from tvm import relax

    storages = (tvm.ir.Op.get("relax.memory.alloc_storage"), tvm.ir.Op.get("relax.vm.alloc_storage"))
    builtin = tvm.ir.Op.get("relax.builtin.alloc_tensor")
    total = 0
    for block in func.body.blocks:
        for binding in block.bindings:
            call = binding.value
            if not isinstance(call, relax.Call):
                continue
            if any(call.op.same_as(op) for op in storages):
                total += int(call.args[0].values[0])
            elif call.op == builtin:
                n = 1
                for d in call.args[0].values:
                    n *= int(d)
                total += n * ((tvm.DataType(call.args[1].value).bits + 7) // 8)
    return total


def _constant_bytes(mod: Any) -> int:
    """Bytes of the tensor constants left in the Relax functions (they are linked into the library)."""
    import tvm
    from tvm import relax

    found: list[Any] = []

    def walk(expr: Any) -> None:
        if isinstance(expr, tvm.ir.expr.Constant) and hasattr(getattr(expr, "value", None), "numpy"):
            if not any(expr.same_as(f) for f in found):
                found.append(expr)
        else:  # calls and tuples (duck-typed: TVM 0.27 has both relax.* and ir.* node classes)
            for child in [*getattr(expr, "args", ()), *getattr(expr, "fields", ())]:
                walk(child)

    for _gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            for block in func.body.blocks:
                for binding in block.bindings:
                    walk(binding.value)
    return int(sum(c.value.numpy().nbytes for c in found))


def legalize(mod: Any, target: Any) -> Any:
    """TVM's CPU passes up to operator fusion: each binding of main is then one fused kernel call."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    with target:
        return tvm.transform.Sequential(cpu.library_dispatch_passes(target) + cpu.legalize_passes(target))(mod)


def fuse(lowered: LoweredModel, profile: DeviceProfile) -> tuple[Any, tuple[np.ndarray, ...]]:
    """A CPU target's model as fused kernels before scheduling (layout, Winograd, legalize, constants
    folded): the kernels `build` schedules, by the names they keep in the library."""
    from autocomp.build.passes import packed_int4, precompute, winograd
    from autocomp.build.passes.conv1d import conv1d_as_conv2d
    from autocomp.build.passes.fast_math import fast_math
    from autocomp.build.passes.layout import channels_last

    target = profile.tvm_target()
    mod = fast_math(channels_last(conv1d_as_conv2d(lowered.mod)))
    fused = legalize(winograd.rewrite(mod, target, profile.winograd), target)
    fused, params, _ = precompute.fold(fused, lowered.params)
    fused, params, _ = packed_int4.apply(fused, params, target)
    return fused, params


def build(lowered: LoweredModel, profile: DeviceProfile, db: Any = None, tune_trials: int = 0) -> BuildResult:
    """CPU targets: TVM's CPU pipeline with autocomp's own passes and kernel schedules in the middle
    (passes/, kernels/driver.py), conv tiles from the tuning database `db` (kernels/tuning.py) when given."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    target_dict = profile.resolved_target()
    target = profile.tvm_target()
    t0 = time.perf_counter()
    if profile.kind == "gpu":
        return _build_gpu(lowered, target, target_dict, t0)
    kernels: dict[str, str] = {}
    work: dict[str, tuple[float, int]] = {}
    params = lowered.params
    try:
        if target.kind.name == "llvm":
            from autocomp.build.kernels.driver import schedule_and_pack
            from autocomp.build.passes import prepack

            fused, params = fuse(lowered, profile)
            work = kernel_work(fused)
            if tune_trials and profile.measure == "local":
                from autocomp.device.threads import local_threads, use_threads

                use_threads(local_threads(profile.measurement))  # tiles are ranked as the model will be timed
            fused, kernels, packed = schedule_and_pack(fused, target, db, tune_trials)
            fused, params = prepack.apply(fused, params, packed)
        else:
            fused = legalize(lowered.mod, target)
        with target:
            planned = tvm.transform.Sequential(
                [
                    relax.transform.RewriteDataflowReshape(),
                    relax.transform.ToNonDataflow(),
                    relax.transform.RemovePurityChecking(),
                    relax.transform.CallTIRRewrite(),
                    relax.transform.StaticPlanBlockMemory(),
                ]
            )(fused)
            arena = _storage_bytes(planned["main"])
            consts = _constant_bytes(planned)
            final = tvm.transform.Sequential(cpu.finalize_passes(target)[1:])(planned)
        executable = tvm.compile(final, target=target, relax_pipeline=None)
    except Exception as exc:
        raise CandidateError(f"TVM compile for {profile.name} failed: {type(exc).__name__}: {exc}") from exc
    return BuildResult(
        executable=executable,
        params=params,  # conv weights in the layout their kernels read (passes/prepack.py): same bytes
        param_bytes=int(sum(p.nbytes for p in params)) + consts,
        const_bytes=consts,
        arena_bytes=arena,
        target=target_dict,
        compile_s=time.perf_counter() - t0,
        kernels=kernels,
        kernel_work=work,
    )


def kernel_work(fused: Any) -> dict[str, tuple[float, int]]:
    """Per fused kernel of `fuse`'s module: multiply-adds per call (TVM's FLOP estimate / 2; NaN where
    TVM cannot count it) and how often main calls it (identical layers share one kernel)."""
    import math
    from collections import Counter

    import tvm
    from tvm import relax
    from tvm import tirx as tir
    from tvm.s_tir.analysis import estimate_tir_flops

    call_tir = tvm.ir.Op.get("relax.call_tir")
    calls: Counter[str] = Counter()
    for block in fused["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and value.op.same_as(call_tir):
                calls[value.args[0].name_hint] += 1
    out = {}
    for gv, func in fused.functions_items():
        if isinstance(func, tir.PrimFunc):
            try:
                macs = estimate_tir_flops(tvm.IRModule({"main": func})) / 2
            except Exception:  # a kernel TVM cannot count (left out of any sum, and said so there)
                macs = math.nan
            out[gv.name_hint] = (float(macs), calls[gv.name_hint])
    return out


def _build_gpu(lowered: LoweredModel, target: Any, target_dict: dict[str, Any], t0: float) -> BuildResult:
    """GPU targets: TVM's own GPU pipeline (dlight default schedules, memory planning)."""
    import tvm
    from tvm import relax

    try:
        final = relax.get_default_pipeline(target)(lowered.mod)
        arena = _storage_bytes(final["main"])
        consts = _constant_bytes(final)
        executable = tvm.compile(final, target=target, relax_pipeline=None)
    except Exception as exc:
        raise CandidateError(f"TVM compile for {target_dict.get('kind')} failed: {type(exc).__name__}: {exc}") from exc
    return BuildResult(executable, lowered.params, int(sum(p.nbytes for p in lowered.params)) + consts, consts,
                       arena, target_dict, time.perf_counter() - t0)


def device_modules(result: BuildResult) -> list[str]:
    """Kinds of the modules the library carries: the host code ('llvm'), and for GPU targets the
    device code ('cuda', 'opencl', ...)."""
    kinds: list[str] = []

    def walk(mod: Any) -> None:
        kinds.append(str(getattr(mod, "kind", type(mod).__name__)))
        for sub in mod.imports:
            walk(sub)

    walk(result.executable.mod)
    return kinds


def export_library(result: BuildResult, profile: DeviceProfile, directory: Path) -> Path:
    """Write the deployable library: a .so (cross-linked when the profile names a compiler) or, when
    that compiler is missing, a .tar of object files the user links on the device."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    if not profile.cross_cc:
        path = directory / "model.so"
        result.executable.export_library(str(path))
    elif shutil.which(profile.cross_cc):
        path = directory / "model.so"
        result.executable.export_library(str(path), cc=profile.cross_cc)
    else:
        path = directory / "model.tar"
        result.executable.export_library(str(path))
    return path
