"""The TVM Relax lowerings of the compressed layers' custom ops (compress/qops.py defines them):
integer conv / linear as int8 x int8 -> int32 with a float rescale, fp16 conv / linear in fp16.
`relax_converters` is the torch importer's `custom_convert_map`."""

from __future__ import annotations

import math
from typing import Any

from autocomp.compress.qops import QMAX, QMIN


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
    xq = _relax_shift(bb, xq, shift)
    if (shift or extra) and (any(padding) or extra):
        top, left = padding[0], padding[1 % len(padding)]
        bottom, right = (padding[2], padding[3]) if len(padding) == 4 else (top, left)
        xq = bb.emit(relax.op.nn.pad(xq, [0, 0, 0, extra, top, bottom, left, right], pad_value=float(shift)))
        padding = [0, 0]
    w_conv = bb.emit(relax.op.nn.pad(wq, [0, 0, 0, extra, 0, 0, 0, 0], pad_value=0.0)) if extra else wq
    acc = bb.emit(relax.op.nn.conv2d(xq, w_conv, strides=stride, padding=padding, dilation=dilation,
                                     groups=groups, out_dtype="int32"))
    acc = _relax_unshift(bb, acc, wq, shift, [1, 2, 3], [1, -1, 1, 1])
    return _relax_rescale(bb, acc, a_scale, w_scale, bias_q, [1, -1, 1, 1])


def _relax_shift(bb: Any, xq: Any, shift: int) -> Any:
    """Quantized data moved by `shift` (+128: int8 -> uint8 for VNNI; -128: uint8 -> int8 for SDOT)."""
    from tvm import relax

    if not shift:
        return xq
    xi = bb.emit(relax.op.astype(xq, "int16"))
    return bb.emit(relax.op.astype(bb.emit(relax.op.add(xi, relax.const(shift, "int16"))),
                                   "uint8" if shift > 0 else "int8"))


def _relax_unshift(bb: Any, acc: Any, wq: Any, shift: int, weight_axes: list[int], shape: list[int]) -> Any:
    """The accumulator of shifted data, made exact again: sum((q + s) w) - s sum(w) == sum(q w)."""
    from tvm import relax

    if not shift:
        return acc
    wsum = bb.emit(relax.op.sum(bb.emit(relax.op.astype(wq, "int32")), axis=weight_axes))
    corr = bb.emit(relax.op.multiply(wsum, relax.const(-shift, "int32")))
    return bb.emit(relax.op.add(acc, bb.emit(relax.op.reshape(corr, shape))))


def relax_qlinear(node: Any, importer: Any, signed_dot: bool = False, unsigned_dot: bool = False,
                  pair_dot: bool = False) -> Any:
    """Integer linear layer. With rows (a transformer's tokens) and enough work (DOT_MIN_MACS) on a target
    with an int8 dot product (VNNI, SDOT / int16 products, AVX2's int16 pairs) it is a 1x1 NHWC conv over
    the rows (_relax_qlinear_as_conv), so the dot-product conv template runs it."""
    from tvm import relax

    x, wq, w_scale, bias_q, a_scale, signed = importer.retrieve_args(node)
    bb = importer.block_builder
    rows = math.prod(int(d) for d in list(x.ty.shape)[:-1])  # a Relax shape does not slice
    n, k = int(wq.ty.shape[0]), int(wq.ty.shape[1])
    if rows >= TOKEN_ROWS and rows * k * n >= DOT_MIN_MACS and k % 4 == 0 \
            and ((unsigned_dot and n % 16 == 0) or (signed_dot and n % 4 == 0) or (pair_dot and n % 8 == 0)):
        return _relax_qlinear_as_conv(bb, x, wq, w_scale, bias_q, a_scale, signed, rows, signed_dot, unsigned_dot)
    xq = _relax_quantize(bb, x, a_scale, signed)
    wt = bb.emit(relax.op.permute_dims(wq))
    acc = bb.emit(relax.op.matmul(xq, wt, out_dtype="int32"))
    return _relax_rescale(bb, acc, a_scale, w_scale, bias_q, [1, -1])


TOKEN_ROWS = 8  # fewer rows (a classifier at batch 1) keep the matmul: a conv tile would be mostly empty
# smaller layers keep the matmul too: the conv form's extra kernels (data shift, reshapes) cost more than the
# dot product saves. Measured on this project's VNNI host: fashion-rows (28 tokens, <= 0.35 M MACs per
# layer) w8a8 0.58 ms as convs vs 0.44 ms as matmuls; BERT-tiny's shape (128 tokens, 2-6 M) 1.56 vs 2.56 ms.
DOT_MIN_MACS = 1 << 20
ROW_TILE = 8  # rows are padded to a multiple of this when they have no divisor in 4..8 (ViT's 197 tokens)


def _relax_qlinear_as_conv(bb: Any, x: Any, wq: Any, w_scale: Any, bias_q: Any, a_scale: float, signed: bool,
                           rows: int, signed_dot: bool, unsigned_dot: bool) -> Any:
    """x [..., K] as a 1 x rows NHWC image of K channels, the weight [N, K] as N 1x1 OHWI filters; the same
    integers as relax_qlinear (the data shift of relax_qconv2d, undone exactly), rescaled in 4-D so the
    epilogue fuses into the conv, then reshaped back. The conv templates tile pixels by divisors of
    the width: a prime row count (197) would give one-pixel tiles, so such rows are padded (zeros) to
    a multiple of ROW_TILE and sliced off after the rescale."""
    from tvm import relax

    n, k = int(wq.ty.shape[0]), int(wq.ty.shape[1])
    out_shape = [int(d) for d in x.ty.shape][:-1] + [n]
    xq = _relax_quantize(bb, x, a_scale, signed)
    shift = -128 if signed_dot and not signed else (128 if unsigned_dot and signed else 0)  # pair dot: either
    x4 = bb.emit(relax.op.reshape(_relax_shift(bb, xq, shift), [1, 1, rows, k]))
    padded = rows if any(rows % d == 0 for d in range(4, ROW_TILE + 1)) else -(-rows // ROW_TILE) * ROW_TILE
    if padded != rows:  # pad rows hold the shifted zero, like a conv's border (never read back)
        x4 = bb.emit(relax.op.nn.pad(x4, [0, 0, 0, 0, 0, padded - rows, 0, 0], pad_value=float(shift)))
    w4 = bb.emit(relax.op.reshape(wq, [n, 1, 1, k]))
    acc = bb.emit(relax.op.nn.conv2d(x4, w4, data_layout="NHWC", kernel_layout="OHWI", out_dtype="int32"))
    acc = _relax_unshift(bb, acc, wq, shift, [1], [1, 1, 1, -1])
    y = _relax_rescale(bb, acc, a_scale, w_scale, bias_q, [1, 1, 1, -1])
    if padded != rows:
        y = bb.emit(relax.op.strided_slice(y, axes=[2], begin=[0], end=[rows]))
    return bb.emit(relax.op.reshape(y, out_shape))


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


def relax_converters(signed_dot: bool = False, unsigned_dot: bool = False, pair_dot: bool = False) -> dict[str, Any]:
    """The importer's `custom_convert_map` for our ops (relax_qconv2d: the two shifted dot forms; relax_qlinear:
    which Linears become convs, `pair_dot` included)."""
    import functools

    return {"qconv2d.default": functools.partial(relax_qconv2d, signed_dot=signed_dot, unsigned_dot=unsigned_dot),
            "qlinear.default": functools.partial(relax_qlinear, signed_dot=signed_dot, unsigned_dot=unsigned_dot,
                                                 pair_dot=pair_dot),
            "hconv2d.default": relax_hconv2d, "hlinear.default": relax_hlinear}
