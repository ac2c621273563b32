"""End to end on the built-in Fashion-MNIST task, as the README tells a user to run it."""

import hashlib
import json
import subprocess
import sys


def autocomp(*args, cwd):
    r = subprocess.run([sys.executable, "-m", "autocomp", *args], capture_output=True, text=True, cwd=cwd, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_builtin_task_search_front_export(tmp_path):
    out = autocomp("search", "--device", "host", "--trials", "4", "--max-accuracy-drop", "0.01", cwd=tmp_path)
    assert "feasible Pareto front of 'fashion-mnist@host'" in out
    assert (tmp_path / "runs" / "autocomp.db").is_file()  # the default storage
    front = json.loads(autocomp("front", "--study", "fashion-mnist@host", "--json", cwd=tmp_path))
    assert front, "the fp32 baseline is always feasible, so the front is never empty"
    base = front[0]["baseline_accuracy"]
    assert base > 0.85  # the reference model is trained, not random
    for p in front:
        assert p["measured_on"] == "local" and not p["estimated"]
        assert p["accuracy"] >= base - 0.01 - 1e-9
        assert p["latency_ms"] > 0 and p["memory_bytes"] > 0
    point = min(front, key=lambda p: p["memory_bytes"])

    out_dir = tmp_path / "artifact"
    printed = autocomp("export", "--study", "fashion-mnist@host", "--trial", str(point["trial"]), "--out", str(out_dir), cwd=tmp_path)
    assert "accuracy of model.onnx under onnxruntime" in printed
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert {"model.so", "params.bin", "model.onnx", "model_state.pt", "model.pt2"} <= set(manifest["files"])
    for name, f in manifest["files"].items():
        data = (out_dir / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    assert manifest["plan"] == point["plan"]
    assert manifest["measured"]["latency_ms"] == point["raw_latency_ms"]
    checks = manifest["artifact"]["checks"]
    # the written library, reloaded from disk, reproduces the accuracy measured during the search exactly:
    # export compresses (and distills) the plan again in this process, on the same weights as the trial's
    # build worker (compress/distill.py trains on one thread wherever it runs)
    assert checks["artifact_accuracy"] == point["accuracy"]
    # the QDQ graph as written computes what the artifact does; onnxruntime's fused int8 kernels may
    # lose more on an AVX2-only CPU (saturating int16 pair sums): recorded, bounded loosely
    assert abs(checks["onnx_accuracy_unfused"] - point["accuracy"]) <= 0.01
    assert checks["onnx_accuracy"] >= point["accuracy"] - 0.10
    assert manifest["versions"]["apache-tvm"].startswith("0.27")
