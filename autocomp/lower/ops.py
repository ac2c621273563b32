"""Integer conv / linear as PyTorch custom ops, with their TVM Relax and ONNX lowerings.

`autocomp::qconv2d` and `autocomp::qlinear` take the *float* input, quantize it per tensor (zero point
0: uint8 for non-negative inputs, int8 otherwise), multiply by int8 weights with int32 accumulation,
add the int32 bias (quantized with scale `a_scale * w_scale[channel]`), and rescale to float by that
same scale. Three implementations of one definition:

- PyTorch (the simulation): integer values carried in float64, exact for any int32 accumulator;
- TVM Relax (the artifact): `R.nn.conv2d` / `R.matmul` on int8 tensors with `out_dtype="int32"`;
  TVM fuses the rescale, bias, ReLU and the *next* layer's quantize into the conv's epilogue, so
  between two integer layers the tensor in memory is int8;
- ONNX: QuantizeLinear / DequantizeLinear around a float Conv / Gemm (the QDQ format onnxruntime
  turns into its own integer kernels).
"""

# no `from __future__ import annotations` here: torch.library reads the real annotations
from typing import Any, Optional

import torch
import torch.nn.functional as F

QMIN = {True: -127, False: 0}
QMAX = {True: 127, False: 255}


def _quantize(x: torch.Tensor, a_scale: float, signed: bool) -> torch.Tensor:
    return torch.clamp(torch.round(x / a_scale), QMIN[signed], QMAX[signed])


def accumulator_scale(a_scale: float, w_scale: torch.Tensor) -> torch.Tensor:
    """The float value of one unit of the int32 accumulator, per output channel."""
    return torch.tensor(a_scale, dtype=torch.float32) * w_scale


def _rescale(acc: torch.Tensor, a_scale: float, w_scale: torch.Tensor, bias_q: Optional[torch.Tensor],
             shape: tuple[int, ...]) -> torch.Tensor:
    if bias_q is not None:
        acc = acc + bias_q.to(acc.dtype).reshape(shape)
    return acc.to(torch.float32) * accumulator_scale(a_scale, w_scale).reshape(shape)


@torch.library.custom_op("autocomp::qconv2d", mutates_args=())
def qconv2d(x: torch.Tensor, wq: torch.Tensor, w_scale: torch.Tensor, bias_q: Optional[torch.Tensor],
            a_scale: float, a_signed: bool, stride: list[int], padding: list[int], dilation: list[int],
            groups: int) -> torch.Tensor:
    xq = _quantize(x, a_scale, a_signed)
    acc = F.conv2d(xq.double(), wq.double(), None, stride, padding, dilation, groups)
    return _rescale(acc, a_scale, w_scale, bias_q, (1, -1, 1, 1))


@qconv2d.register_fake
def _(x, wq, w_scale, bias_q, a_scale, a_signed, stride, padding, dilation, groups):  # type: ignore[no-untyped-def]
    return F.conv2d(x, wq.to(x.dtype), None, stride, padding, dilation, groups)


@torch.library.custom_op("autocomp::qlinear", mutates_args=())
def qlinear(x: torch.Tensor, wq: torch.Tensor, w_scale: torch.Tensor, bias_q: Optional[torch.Tensor],
            a_scale: float, a_signed: bool) -> torch.Tensor:
    xq = _quantize(x, a_scale, a_signed)
    acc = xq.double() @ wq.double().t()
    return _rescale(acc, a_scale, w_scale, bias_q, (1, -1))


@qlinear.register_fake
def _(x, wq, w_scale, bias_q, a_scale, a_signed):  # type: ignore[no-untyped-def]
    return x.new_empty((*x.shape[:-1], wq.shape[0]))


# fp16 compute: input, weight and bias rounded to fp16, products summed, the sum rounded to fp16, the
# bias added in fp16, the result widened to fp32 for the float ops around the layer. The simulation
# sums in fp32; the device sums in fp16 (that is the speed-up), so the two differ by the fp16
# accumulation error, which the agreement tolerance for fp16 layers allows (see FP16_REL_TOL).


def _half_epilogue(acc: torch.Tensor, bias: Optional[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    acc = acc.half()
    if bias is not None:
        acc = acc + bias.half().reshape(shape)
    return acc.float()


@torch.library.custom_op("autocomp::hconv2d", mutates_args=())
def hconv2d(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int],
            padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    acc = F.conv2d(x.half().float(), w.half().float(), None, stride, padding, dilation, groups)
    return _half_epilogue(acc, bias, (1, -1, 1, 1))


@hconv2d.register_fake
def _(x, w, bias, stride, padding, dilation, groups):  # type: ignore[no-untyped-def]
    return F.conv2d(x, w.to(x.dtype), None, stride, padding, dilation, groups)


@torch.library.custom_op("autocomp::hlinear", mutates_args=())
def hlinear(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return _half_epilogue(x.half().float() @ w.half().float().t(), bias, (1, -1))


@hlinear.register_fake
def _(x, w, bias):  # type: ignore[no-untyped-def]
    return x.new_empty((*x.shape[:-1], w.shape[0]))


# --- TVM Relax ---------------------------------------------------------------------------------


def _relax_quantize(bb: Any, x: Any, a_scale: float, signed: bool) -> Any:
    from tvm import relax

    xs = bb.emit(relax.op.divide(x, relax.const(a_scale, "float32")))
    xr = bb.emit(relax.op.round(xs))
    xc = bb.emit(relax.op.clip(xr, QMIN[signed], QMAX[signed]))
    return bb.emit(relax.op.astype(xc, "int8" if signed else "uint8"))


def _relax_rescale(bb: Any, acc: Any, a_scale: float, w_scale: Any, bias_q: Any, shape: list[int]) -> Any:
    from tvm import relax

    if bias_q is not None:
        b = bb.emit(relax.op.reshape(bias_q, shape))
        acc = bb.emit(relax.op.add(acc, b))
    scale = bb.emit(relax.op.multiply(relax.const(a_scale, "float32"), w_scale))
    scale = bb.emit(relax.op.reshape(scale, shape))
    accf = bb.emit(relax.op.astype(acc, "float32"))
    return bb.emit(relax.op.multiply(accf, scale))


def relax_qconv2d(node: Any, importer: Any, signed_dot: bool = False, unsigned_dot: bool = False) -> Any:
    """Integer conv in the form the target's 4-way int8 dot product takes (C % 4 == 0, one data type).

    * `signed_dot` (ARM SDOT: signed x signed): uint8 inputs are fed as int8, q - 128.
    * `unsigned_dot` (x86 VNNI: unsigned data x signed weights): int8 inputs are fed as uint8, q + 128;
      and C = 3 (an RGB stem) is padded to 4 channels with zero weights.

    A shift s is exact: sum((q + s) w) - s sum(w) == sum(q w), so the conv subtracts s * sum(w) per
    output channel. The border needs care: padding must be q = 0, i.e. s once shifted, so it becomes
    an explicit pad. Channels stay unpadded when C < 3 (4x the work would cost more than it saves)."""
    from tvm import relax

    x, wq, w_scale, bias_q, a_scale, signed, stride, padding, dilation, groups = importer.retrieve_args(node)
    bb = importer.block_builder
    xq = _relax_quantize(bb, x, a_scale, signed)
    o, c = int(wq.ty.shape[0]), int(wq.ty.shape[1])
    vnni = unsigned_dot and groups == 1 and c >= 3 and o % 16 == 0  # the VNNI template's own conditions
    shift = 0
    if signed_dot and groups == 1 and not signed and c % 4 == 0:
        shift = -128
    elif vnni and signed:
        shift = 128
    extra = (-c) % 4 if vnni else 0
    if shift:
        xi = bb.emit(relax.op.astype(xq, "int16"))
        xq = bb.emit(relax.op.astype(bb.emit(relax.op.add(xi, relax.const(shift, "int16"))),
                                     "uint8" if shift > 0 else "int8"))
    if (shift or extra) and (any(padding) or extra):
        top, left = padding[0], padding[1 % len(padding)]
        bottom, right = (padding[2], padding[3]) if len(padding) == 4 else (top, left)
        xq = bb.emit(relax.op.nn.pad(xq, [0, 0, 0, extra, top, bottom, left, right], pad_value=float(shift)))
        padding = [0, 0]
    w_conv = bb.emit(relax.op.nn.pad(wq, [0, 0, 0, extra, 0, 0, 0, 0], pad_value=0.0)) if extra else wq
    acc = bb.emit(relax.op.nn.conv2d(xq, w_conv, strides=stride, padding=padding, dilation=dilation,
                                     groups=groups, out_dtype="int32"))
    if shift:
        wsum = bb.emit(relax.op.sum(bb.emit(relax.op.astype(wq, "int32")), axis=[1, 2, 3]))
        corr = bb.emit(relax.op.multiply(wsum, relax.const(-shift, "int32")))
        acc = bb.emit(relax.op.add(acc, bb.emit(relax.op.reshape(corr, [1, -1, 1, 1]))))
    return _relax_rescale(bb, acc, a_scale, w_scale, bias_q, [1, -1, 1, 1])


def relax_qlinear(node: Any, importer: Any) -> Any:
    from tvm import relax

    x, wq, w_scale, bias_q, a_scale, signed = importer.retrieve_args(node)
    bb = importer.block_builder
    xq = _relax_quantize(bb, x, a_scale, signed)
    wt = bb.emit(relax.op.permute_dims(wq))
    acc = bb.emit(relax.op.matmul(xq, wt, out_dtype="int32"))
    return _relax_rescale(bb, acc, a_scale, w_scale, bias_q, [1, -1])


def _relax_half(bb: Any, x: Any) -> Any:
    from tvm import relax

    if x.ty.dtype == "float16":
        return x
    return bb.emit(relax.op.astype(x, "float16"))


def _relax_half_epilogue(bb: Any, acc: Any, bias: Any, shape: list[int]) -> Any:
    from tvm import relax

    if bias is not None:
        b = bb.emit(relax.op.reshape(_relax_half(bb, bias), shape))
        acc = bb.emit(relax.op.add(acc, b))
    return bb.emit(relax.op.astype(acc, "float32"))


def relax_hconv2d(node: Any, importer: Any) -> Any:
    from tvm import relax

    x, w, bias, stride, padding, dilation, groups = importer.retrieve_args(node)
    bb = importer.block_builder
    acc = bb.emit(relax.op.nn.conv2d(_relax_half(bb, x), _relax_half(bb, w), strides=stride, padding=padding,
                                     dilation=dilation, groups=groups, out_dtype="float16"))
    return _relax_half_epilogue(bb, acc, bias, [1, -1, 1, 1])


def relax_hlinear(node: Any, importer: Any) -> Any:
    from tvm import relax

    x, w, bias = importer.retrieve_args(node)
    bb = importer.block_builder
    wt = bb.emit(relax.op.permute_dims(_relax_half(bb, w)))
    acc = bb.emit(relax.op.matmul(_relax_half(bb, x), wt, out_dtype="float16"))
    return _relax_half_epilogue(bb, acc, bias, [1, -1])


def relax_converters(signed_dot: bool = False, unsigned_dot: bool = False) -> dict[str, Any]:
    """The importer's `custom_convert_map` for our ops (see relax_qconv2d for the two dot forms)."""
    import functools

    return {"qconv2d.default": functools.partial(relax_qconv2d, signed_dot=signed_dot, unsigned_dot=unsigned_dot),
            "qlinear.default": relax_qlinear, "hconv2d.default": relax_hconv2d, "hlinear.default": relax_hlinear}


# --- ONNX (QDQ) --------------------------------------------------------------------------------


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
