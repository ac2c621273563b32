"""Export one trial as deployable artifacts plus a manifest that lets anyone check them.

The candidate is rebuilt from its stored plan (compression is deterministic), written to a temporary
sibling directory, checked (the written library is loaded and evaluated, the ONNX model is run by
onnxruntime), and only then renamed into place: a failed export leaves nothing half-written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from autocomp.errors import UserError
from autocomp.lower.onnx_export import export_onnx
from autocomp.measure.base import is_estimate

MANIFEST_VERSION = 1


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("autocomp", "torch", "apache-tvm", "apache-tvm-ffi", "optuna", "onnx", "onnxruntime", "torch-pruning", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def onnx_accuracy(path: Path, task: Any, fused: bool = True) -> float:
    """onnxruntime's accuracy on the eval set. `fused`: its default session, what a user deploying the
    file gets on this CPU; else its unfused reference kernels, the QDQ graph's exact semantics. They
    differ on AVX2-only x86: the fused int8 kernels multiply u8 x s8 pairs into int16 (vpmaddubsw),
    which saturates on full-range int8 weights (onnxruntime's own quantization notes say so)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    if not fused:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = task.eval_inputs.numpy()
    outs = [sess.run(None, {"input": x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    import numpy as np

    return float(task.metric(torch.from_numpy(np.concatenate(outs)), task.eval_targets))


def write_compiled(directory: Path, built: Any, lowered: Any, profile: Any) -> dict[str, Any]:
    """The TVM library and its parameters, and what a loader needs to know about them."""
    import tvm

    from autocomp.build.compile import device_modules, export_library

    lib_path = export_library(built, profile, directory)
    names = [f"p{i:03d}_{n}" for i, n in enumerate(lowered.param_names)]
    # the built parameters: conv weights already in their kernels' packed layout (build/passes/prepack.py)
    tvm.runtime.save_param_dict_to_file({n: tvm.runtime.tensor(a) for n, a in zip(names, built.params)},
                                        str(directory / "params.bin"))
    return {
        "library": lib_path.name,
        "params": "params.bin",
        "inputs": ["input", *names],
        "input_shape": list(lowered.input_shape),
        "input_dtype": lowered.input_dtype,
        "param_bytes": built.param_bytes,
        "arena_bytes": built.arena_bytes,
        "target": built.target,
        "host": profile.host,
        "modules": device_modules(built),
    }


def _write_artifacts(tmp: Path, ctx: Any, plan: Any) -> dict[str, Any]:
    import numpy as np
    import torch
    import tvm
    from tvm import relax

    from autocomp.measure import accuracy
    from autocomp.measure.base import first_output

    task, profile = ctx.task, ctx.profile
    compiled = ctx.compile(plan)
    model = compiled.model
    info = write_compiled(tmp, compiled.built, compiled.lowered, profile)
    torch.save(model.state_dict(), tmp / "model_state.pt")
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (task.example_input,)), str(tmp / "model.pt2"))
    onnx_path = tmp / "model.onnx"
    export_onnx(model, task.example_input, onnx_path)
    checks: dict[str, Any] = {"onnx_accuracy": onnx_accuracy(onnx_path, task),
                              "onnx_accuracy_unfused": onnx_accuracy(onnx_path, task, fused=False)}
    if profile.measure == "local":
        # load what was written, with the params as written, and evaluate it
        dev = tvm.cpu()
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(tmp / info["library"])), dev)
        loaded = tvm.runtime.load_param_dict_from_file(str(tmp / "params.bin"))
        params = [loaded[n] for n in info["inputs"][1:]]

        def run_one(x: np.ndarray) -> np.ndarray:
            return first_output(vm["main"](tvm.runtime.tensor(x, dev), *params))

        checks["artifact_accuracy"] = accuracy.accuracy_compiled(run_one, task)
    info["checks"] = checks
    return info


def atomic_directory(out: Path, force: bool, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Fill a temporary sibling of `out`, then rename it into place: no half-written artifact."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"{out} already exists and is not empty; choose another --out or pass --force")
    if not out.parent.is_dir():
        raise UserError(f"the parent directory of --out ({out.parent}) does not exist; create it first")
    _remove_dead_writers(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the artifact directory is meant to be shared
    try:
        manifest = fill(tmp)
        manifest["files"] = {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size}
                             for p in sorted(tmp.iterdir()) if p.name != "manifest.json"}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _remove_dead_writers(out: Path) -> None:
    """Temporary siblings left by an export that was killed (its PID is in the name) are garbage."""
    import psutil

    for stale in out.parent.glob(f".{out.name}.tmp-*-*"):
        pid = stale.name[len(f".{out.name}.tmp-"):].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def compile_only(ctx: Any, plan: Any, out: Path, force: bool = False) -> dict[str, Any]:
    """Write the compiled library for the profile's target without measuring anything."""

    def fill(tmp: Path) -> dict[str, Any]:
        task = ctx.task
        compiled = ctx.compile(plan)
        info = write_compiled(tmp, compiled.built, compiled.lowered, ctx.profile)
        return {"_type": "autocomp.CompiledArtifact", "_version": MANIFEST_VERSION,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "task": task.name, "device": ctx.profile.name, "plan": plan.to_dict(), "plan_label": plan.summary(),
                "measured_on": None, "artifact": info, "versions": versions()}

    return atomic_directory(out, force, fill)


def export_trial(study_name: str, storage: str | None, trial_number: int, out: Path, force: bool = False) -> dict[str, Any]:
    """Write the artifacts of one completed trial to `out`; returns the manifest."""
    from autocomp.study import pareto
    from autocomp.study import config, search
    from autocomp.study import storage as storage_mod
    from autocomp.candidate import prepare
    from autocomp.device.profiles import load_profile
    from autocomp.tasks import load_task

    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"{out} already exists and is not empty; choose another --out or pass --force")
    study = search.load_study(study_name, storage)
    trial = pareto.find_trial(study, trial_number)
    settings = study.user_attrs.get(config.ATTR, {})
    plan = search.plan_of(trial)
    profile = load_profile(settings.get("device", "host"))
    if profile.winograd != config.stored_winograd(settings):
        raise UserError(
            f"study '{study_name}' was measured with the device profile's winograd = {config.stored_winograd(settings)!r}, "
            f"but profile {profile.name} now says {profile.winograd!r}: the exported library would not be the one "
            "measured; set the profile's winograd back to export this trial")
    ctx = prepare(load_task(settings.get("task_spec")), profile, finetune_steps=settings.get("finetune_steps", 0))
    measured = trial.user_attrs["result"]

    def fill(tmp: Path) -> dict[str, Any]:
        info = _write_artifacts(tmp, ctx, plan)
        sizes = {p.name: p.stat().st_size for p in tmp.iterdir()}
        return {
            "_type": "autocomp.Manifest",
            "_version": MANIFEST_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "study": study_name,
            "storage": storage_mod.redact(storage_mod.normalise(storage, create=False)),
            "trial": trial.number,
            "task": settings.get("task"),
            "device": profile.name,
            "measured_on": measured["measured_on"],
            "estimated": is_estimate(measured["measured_on"]),
            "compute": measured["compute"],
            "plan": trial.user_attrs["plan"],
            "plan_label": measured["plan_label"],
            "measured": measured,
            # TVM's own default on x86 is half the logical CPUs: run it as it was timed
            "runtime_threads": measured.get("latency_threads"),
            "winograd": profile.winograd,  # fp32 3x3 convs: the kernels (and weight bytes) measured
            "baseline_accuracy": settings.get("baseline_accuracy"),
            "artifact": info,
            "model_bytes": sizes[info["library"]] + sizes[info["params"]],
            "versions": versions(),
        }

    return atomic_directory(out, force, fill)
