"""ONNX export of quantized plans: a QDQ model that onnxruntime runs, agreeing with the artifact."""

import numpy as np
import onnx
import onnxruntime as ort
import torch

from autocomp.lower.onnx_export import export_onnx
from autocomp.compress import compress
from autocomp.plan import CompressionPlan


def test_quantized_plan_exports_as_qdq_and_matches_torch(digits_task, digits_ctx, tmp_path):
    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    path = tmp_path / "m.onnx"
    export_onnx(model, digits_task.example_input, path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    # inputs (QuantizeLinear + DequantizeLinear), weights and int32 biases (DequantizeLinear)
    assert ops.count("QuantizeLinear") == 3 and ops.count("DequantizeLinear") == 9
    x = digits_task.eval_inputs
    with torch.no_grad():
        want = model(x).numpy()
    got = run_onnx(path, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)  # the graph's own QDQ semantics
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99
    assert np.abs(got - want).max() < 0.05
    # onnxruntime's fused int8 kernels are exact with VNNI; on AVX2-only CPUs they multiply in int16
    # pairs (vpmaddubsw) that saturate on full-range int8 weights, as onnxruntime documents: close, not equal
    fused = run_onnx(path, x, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    assert (fused.argmax(1) == want.argmax(1)).mean() >= 0.95


def run_onnx(path, x, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.numpy()})[0]


def test_int4_weights_export_and_run(digits_task, digits_ctx, tmp_path):
    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    path = tmp_path / "m4.onnx"
    export_onnx(model, digits_task.example_input, path)
    got = run_onnx(path, digits_task.eval_inputs, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    with torch.no_grad():
        want = model(digits_task.eval_inputs).numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99


def test_int4_onnx_keeps_weights_packed(digits_task, digits_ctx, tmp_path):
    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    export_onnx(model, digits_task.example_input, tmp_path / "w4.onnx")
    inits = {i.name: i for i in onnx.load(str(tmp_path / "w4.onnx")).graph.initializer}
    w = inits["features.1.0.weight"]
    assert w.data_type == onnx.TensorProto.UINT8 and list(w.dims) == [32 * 16 * 9 // 2]
    assert inits["features.1.0.bias"].data_type == onnx.TensorProto.INT32


def test_fp16_plan_exports_as_float_with_fp16_rounding(digits_task, digits_ctx, tmp_path):
    """fp16-compute layers export as Cast-to-fp16 / Cast-back around a float Conv / Gemm: the same
    values as the simulation, and runnable by onnxruntime builds without fp16 kernels."""
    plan = CompressionPlan.uniform(digits_ctx.layers, 16, 16)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data,
                     digits_ctx.protected, fp16_compute=True)
    path = tmp_path / "h.onnx"
    export_onnx(model, digits_task.example_input, path)
    graph = onnx.load(str(path)).graph
    to_half = [n for n in graph.node if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT16]
    assert len(to_half) >= 3 * len(digits_ctx.layers)  # input, weight and sum of every layer
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": digits_task.eval_inputs.numpy()})[0]
    with torch.no_grad():
        want = model(digits_task.eval_inputs).numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()


def test_shared_weights_export_packed_with_their_codebook_and_run(digits_task, digits_ctx, tmp_path):
    """Weight sharing in ONNX: the packed 2-bit indices and the int8 codebook are initializers, the
    lookup (Gather) is in the graph, and onnxruntime agrees with torch."""
    from autocomp.plan import LayerPlan

    plan = CompressionPlan(tuple(LayerPlan(n, 2, 8, 0.0, shared=True) for n in digits_ctx.layers))
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    path = tmp_path / "k2.onnx"
    export_onnx(model, digits_task.example_input, path)
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    assert list(inits["features.1.0.weight"].dims) == [32 * 16 * 9 // 4]
    assert inits["features.1.0.codebook"].data_type == onnx.TensorProto.INT8
    assert list(inits["features.1.0.codebook"].dims) == [4]
    assert "GatherElements" in {n.op_type for n in graph.node}
    got = run_onnx(path, digits_task.eval_inputs, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    with torch.no_grad():
        want = model(digits_task.eval_inputs).numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99
