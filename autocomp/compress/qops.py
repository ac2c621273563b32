"""Integer and fp16 conv / linear as PyTorch custom ops: the arithmetic a compressed layer does.

`autocomp::qconv2d` and `autocomp::qlinear` take the *float* input, quantize it per tensor (zero point
0: uint8 for non-negative inputs, int8 otherwise), multiply by int8 weights with int32 accumulation,
add the int32 bias (quantized with scale `a_scale * w_scale[channel]`), and rescale to float by that
same scale. Three implementations of one definition:

- PyTorch (the simulation, this module): integer values carried in float64, exact for any int32
  accumulator;
- TVM Relax (the artifact, lower/relax_ops.py): `R.nn.conv2d` / `R.matmul` on int8 tensors with
  `out_dtype="int32"`;
  TVM fuses the rescale, bias, ReLU and the *next* layer's quantize into the conv's epilogue, so
  between two integer layers the tensor in memory is int8;
- ONNX (lower/onnx_ops.py): QuantizeLinear / DequantizeLinear around a float Conv / Gemm (the QDQ
  format onnxruntime turns into its own integer kernels).
"""

# no `from __future__ import annotations` here: torch.library reads the real annotations
from typing import Optional

import torch
import torch.nn.functional as F

QMIN = {True: -127, False: 0}
QMAX = {True: 127, False: 255}


def quantize_activation(x: torch.Tensor, a_scale: float, signed: bool) -> torch.Tensor:
    """Integer values (carried as float) of a per-tensor, zero-point-0 quantized activation."""
    return torch.clamp(torch.round(x / a_scale), QMIN[signed], QMAX[signed])


def accumulator_scale(a_scale: float, w_scale: torch.Tensor) -> torch.Tensor:
    """The float value of one unit of the int32 accumulator, per output channel."""
    return torch.tensor(a_scale, dtype=torch.float32) * w_scale


# float32 holds every integer below 2^24 exactly: a sum whose every partial sum stays below it is exact
# in any order (and with fused multiply-adds), so the int32 accumulator (products, then the bias) is
# computed in float32 where max|activation| * sum_k |weight[o, k]| + max|bias| < 2^24 for every output
# channel, else in float64 (exact to 2^53). float64 convolutions are several times slower in PyTorch
# (no oneDNN kernel): this was most of a simulated int8 candidate's time.
FLOAT32_EXACT = 2.0**24


def exact_dtype(wq: torch.Tensor, a_signed: bool, bias_q: Optional[torch.Tensor]) -> torch.dtype:
    """The cheaper float type that sums `wq`'s products with quantized activations, and the bias, exactly."""
    worst = float(wq.abs().reshape(wq.shape[0], -1).sum(dim=1).max()) * max(abs(QMIN[a_signed]), QMAX[a_signed])
    if bias_q is not None and bias_q.numel():
        worst += float(bias_q.abs().max())
    return torch.float32 if worst < FLOAT32_EXACT else torch.float64


def _rescale(acc: torch.Tensor, a_scale: float, w_scale: torch.Tensor, bias_q: Optional[torch.Tensor],
             shape: tuple[int, ...]) -> torch.Tensor:
    if bias_q is not None:
        acc = acc + bias_q.to(acc.dtype).reshape(shape)
    return acc.to(torch.float32) * accumulator_scale(a_scale, w_scale).reshape(shape)


@torch.library.custom_op("autocomp::qconv2d", mutates_args=())
def qconv2d(x: torch.Tensor, wq: torch.Tensor, w_scale: torch.Tensor, bias_q: Optional[torch.Tensor],
            a_scale: float, a_signed: bool, stride: list[int], padding: list[int], dilation: list[int],
            groups: int) -> torch.Tensor:
    xq = quantize_activation(x, a_scale, a_signed)
    dtype = exact_dtype(wq, a_signed, bias_q)
    acc = F.conv2d(xq.to(dtype), wq.to(dtype), None, stride, padding, dilation, groups)
    return _rescale(acc, a_scale, w_scale, bias_q, (1, -1, 1, 1))


@qconv2d.register_fake
def _(x, wq, w_scale, bias_q, a_scale, a_signed, stride, padding, dilation, groups):  # type: ignore[no-untyped-def]
    return F.conv2d(x, wq.to(x.dtype), None, stride, padding, dilation, groups)


@torch.library.custom_op("autocomp::qlinear", mutates_args=())
def qlinear(x: torch.Tensor, wq: torch.Tensor, w_scale: torch.Tensor, bias_q: Optional[torch.Tensor],
            a_scale: float, a_signed: bool) -> torch.Tensor:
    xq = quantize_activation(x, a_scale, a_signed)
    dtype = exact_dtype(wq, a_signed, bias_q)
    acc = xq.to(dtype) @ wq.to(dtype).t()
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
