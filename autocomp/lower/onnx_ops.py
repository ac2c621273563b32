"""The ONNX lowerings of the compressed layers' custom ops (compress/qops.py): integer layers as QDQ
(QuantizeLinear / DequantizeLinear around a float Conv / Gemm, which onnxruntime runs as its own
integer kernels), fp16 layers with their roundings written as Casts. TorchScript-exporter symbolics."""

# no `from __future__ import annotations`, as in compress/qops.py (the exporter reads signatures)
from typing import Any

import torch

import autocomp.compress.qops  # noqa: F401  (registers the autocomp:: ops the symbolics are for)


def _onnx_qdq_input(g: Any, x: Any, a_scale: float, signed: bool) -> Any:
    import torch

    scale = g.op("Constant", value_t=torch.tensor(a_scale, dtype=torch.float32))
    zero = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int8 if signed else torch.uint8))
    return g.op("DequantizeLinear", g.op("QuantizeLinear", x, scale, zero), scale, zero)


def _onnx_dq_weight(g: Any, wq: Any, w_scale: Any) -> Any:
    return g.op("DequantizeLinear", wq, w_scale, axis_i=0)


def _onnx_dq_bias(g: Any, bias_q: Any, w_scale: Any, a_scale: float) -> Any:
    """QDQ's bias convention: int32 with scale a_scale * w_scale, zero point 0."""
    import torch

    scale = g.op("Mul", g.op("Constant", value_t=torch.tensor(a_scale, dtype=torch.float32)), w_scale)
    return g.op("DequantizeLinear", bias_q, scale, axis_i=0)


def _const(node: Any, desc: str) -> Any:
    from torch.onnx import symbolic_helper as sh

    return sh._get_const(node, desc, "argument")


def onnx_qconv2d(g: Any, x, wq, w_scale, bias_q, a_scale, a_signed, stride, padding, dilation, groups):  # type: ignore[no-untyped-def]
    from torch.onnx import symbolic_helper as sh

    a_scale, signed = float(_const(a_scale, "f")), bool(_const(a_signed, "b"))
    stride, padding, dilation = (sh._get_const(v, "is", n) for v, n in ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    w = _onnx_dq_weight(g, wq, w_scale)
    bias = [] if sh._is_none(bias_q) else [_onnx_dq_bias(g, bias_q, w_scale, a_scale)]
    args = [_onnx_qdq_input(g, x, a_scale, signed), w, *bias]
    return g.op("Conv", *args, strides_i=stride, pads_i=list(padding) * 2, dilations_i=dilation,
                group_i=int(_const(groups, "i")))


def onnx_qlinear(g: Any, x, wq, w_scale, bias_q, a_scale, a_signed):  # type: ignore[no-untyped-def]
    from torch.onnx import symbolic_helper as sh

    a_scale, signed = float(_const(a_scale, "f")), bool(_const(a_signed, "b"))
    w = _onnx_dq_weight(g, wq, w_scale)
    bias = [] if sh._is_none(bias_q) else [_onnx_dq_bias(g, bias_q, w_scale, a_scale)]
    args = [_onnx_qdq_input(g, x, a_scale, signed), w, *bias]
    return g.op("Gemm", *args, transB_i=1)


def _onnx_round_half(g: Any, x: Any) -> Any:
    """fp16 rounding written as two Casts, so the model runs on any onnxruntime (no fp16 kernels)."""
    from torch.onnx import TensorProtoDataType as T

    return g.op("Cast", g.op("Cast", x, to_i=int(T.FLOAT16)), to_i=int(T.FLOAT))


def onnx_hconv2d(g: Any, x, w, bias, stride, padding, dilation, groups):  # type: ignore[no-untyped-def]
    from torch.onnx import symbolic_helper as sh

    stride, padding, dilation = (sh._get_const(v, "is", n) for v, n in ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    y = g.op("Conv", _onnx_round_half(g, x), _onnx_round_half(g, w), strides_i=stride, pads_i=list(padding) * 2,
             dilations_i=dilation, group_i=int(_const(groups, "i")))
    return _onnx_half_bias(g, y, bias, 4)


def onnx_hlinear(g: Any, x, w, bias):  # type: ignore[no-untyped-def]
    y = g.op("Gemm", _onnx_round_half(g, x), _onnx_round_half(g, w), transB_i=1)
    return _onnx_half_bias(g, y, bias, 2)


def _onnx_half_bias(g: Any, y: Any, bias: Any, rank: int) -> Any:
    from torch.onnx import symbolic_helper as sh

    y = _onnx_round_half(g, y)
    if sh._is_none(bias):
        return y
    shape = g.op("Constant", value_t=torch.tensor([1, -1] + [1] * (rank - 2), dtype=torch.int64))
    return _onnx_round_half(g, g.op("Add", y, g.op("Reshape", _onnx_round_half(g, bias), shape)))


_ONNX_REGISTERED = False


def register_onnx_symbolics(opset: int) -> None:
    global _ONNX_REGISTERED
    if not _ONNX_REGISTERED:
        torch.onnx.register_custom_op_symbolic("autocomp::qconv2d", onnx_qconv2d, opset)
        torch.onnx.register_custom_op_symbolic("autocomp::qlinear", onnx_qlinear, opset)
        torch.onnx.register_custom_op_symbolic("autocomp::hconv2d", onnx_hconv2d, opset)
        torch.onnx.register_custom_op_symbolic("autocomp::hlinear", onnx_hlinear, opset)
        _ONNX_REGISTERED = True
