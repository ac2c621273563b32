"""onnxruntime's own fp32 and int8 of the task's model, timed beside the TVM reference (real onnxruntime,
real TVM build): ratios, and accuracies that agree with the model's."""

import numpy as np

from autocomp.measure import onnxruntime_marks
from autocomp.measure.accuracy import accuracy_torch
from autocomp.measure.local import LocalRunner


def test_fp32_and_int8_are_timed_beside_the_reference_and_evaluated(digits_ctx):
    runner = LocalRunner(digits_ctx.profile.measurement, peak_rss=False)
    marks = onnxruntime_marks.measure(digits_ctx, runner)
    fp32_accuracy = accuracy_torch(digits_ctx.model, digits_ctx.task)
    assert abs(marks["fp32"]["accuracy"] - fp32_accuracy) < 1e-9  # the same model, evaluated by onnxruntime
    assert abs(marks["int8"]["accuracy"] - fp32_accuracy) < 0.05  # onnxruntime's int8, calibrated
    assert marks["rounds"] >= 3 and marks["reference_ms"] > 0
    for name in ("fp32", "int8"):
        m = marks[name]
        assert m["latency_ms"] > 0 and np.isfinite(m["ratio"]) and m["ratio"] > 0
        # the ratio is of samples timed in the same rounds: it agrees with the medians to within spread
        assert 0.5 < m["ratio"] / (m["latency_ms"] / marks["reference_ms"]) < 2.0


def test_the_int8_build_is_onnxruntimes_own_qdq(digits_ctx, tmp_path):
    import onnx

    from autocomp.lower.onnx_export import export_onnx

    fp32 = tmp_path / "fp32.onnx"
    export_onnx(digits_ctx.model, digits_ctx.task.example_input, fp32)
    onnxruntime_marks.quantize_static(fp32, tmp_path / "int8.onnx", digits_ctx.task.calib_data.numpy())
    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    session = onnxruntime_marks.OrtSession(tmp_path / "int8.onnx", threads=1)
    out = session.run(digits_ctx.task.example_input.numpy())
    assert out.shape[0] == 1 and np.isfinite(out).all()
