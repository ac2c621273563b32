"""Post-training quantization: per-channel symmetric weights, per-tensor symmetric activations.

Weights are *stored* at their bit width (int8; 4- and 2-bit values packed into uint8 bytes; float16),
so the parameters the compiled artifact carries really are that small. Layers with integer weights and
8-bit activations compute in integers; `QuantizedLayer.describe()` says per layer what the artifact
stores and computes, and every result carries it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autocomp.compress import qops
from autocomp.compress.codebook import kmeans_codebook
from autocomp.compress.layers import SEARCHABLE_TYPES
from autocomp.plan import CompressionPlan

CALIB_BATCH = 128


@dataclass(frozen=True)
class LayerPrecision:
    """What one layer is in the compiled artifact."""

    name: str
    weight_dtype: str  # float32 | float16 | int8 | int4x2 | int2x4 (values per byte after 'x'); shared
    # weights: "int8 codebook[16] int4x2" (a codebook of 16 int8 values, indices packed two per byte)
    activation_dtype: str  # float32 | float16 | uint8 | int8 (the layer's input)
    compute: str  # "uint8 x int8 -> int32", "float16", "float32", or "float32 (simulated ...)"


def pack_bits(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack signed `bits`-bit integers, (8 // bits) per uint8, little end first."""
    per = 8 // bits
    u = (q.flatten().to(torch.int32) + (1 << (bits - 1)))
    pad = (-u.numel()) % per
    u = torch.cat([u, torch.zeros(pad, dtype=torch.int32)]).reshape(-1, per)
    shifts = torch.tensor([1 << (bits * j) for j in range(per)], dtype=torch.int32)
    return (u * shifts).sum(dim=1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, numel: int, signed: bool = True) -> torch.Tensor:
    """Inverse of pack_bits, written with ops TVM's torch importer knows (no shifts or masks);
    `signed=False` gives the stored unsigned values (codebook indices)."""
    per = 8 // bits
    p = packed.to(torch.int32)
    parts = []
    for j in range(per):
        shifted = torch.div(p, 1 << (bits * j), rounding_mode="floor")
        parts.append(shifted - torch.div(shifted, 1 << bits, rounding_mode="floor") * (1 << bits))
    u = torch.stack(parts, dim=1).reshape(-1)[:numel]
    return u - (1 << (bits - 1)) if signed else u


class QuantizedLayer(nn.Module):
    """A Conv2d, Conv1d or Linear with its weight stored quantized.

    With integer weights (2/4/8 bits) and 8-bit activations it computes in integers
    (`autocomp::qconv2d` / `autocomp::qlinear`: int8 x int8 -> int32, see qops.py). With integer
    weights and fp32 activations the weights are dequantized and the arithmetic is fp32 (weight-only
    quantization). fp16 activations compute in fp16 (`autocomp::hconv2d` / `hlinear`, the weights
    widened or dequantized to fp16) on a target with fp16 arithmetic (`fp16_compute`); elsewhere they
    are fake-quantized, like 8-bit activations with float weights: the arithmetic is fp32 and
    `describe()` says "simulated".
    """

    def __init__(self, layer: nn.Module, name: str, w_bits: int, a_bits: int,
                 a_range: tuple[float, float] | None, fp16_compute: bool = False, shared: bool = False) -> None:
        super().__init__()
        self.layer_name, self.w_bits, self.a_bits, self.shared = name, w_bits, a_bits, shared
        self.half = a_bits == 16 and fp16_compute
        self.is_conv = isinstance(layer, (nn.Conv2d, nn.Conv1d))
        self.one_d = isinstance(layer, nn.Conv1d)  # computed as a conv2d of height 1 (input N, C, 1, W)
        if self.one_d:
            self.conv_args = ([1, layer.stride[0]], [0, layer.padding[0]], [1, layer.dilation[0]], layer.groups)
        elif self.is_conv:
            self.conv_args = (list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups)
        w = layer.weight.detach().float()
        self.weight_shape = tuple(w.shape)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
        if w_bits == 32:
            self.weight = nn.Parameter(w.clone(), requires_grad=False)
        elif w_bits == 16:
            self.weight = nn.Parameter(w.half(), requires_grad=False)
        elif shared:  # packed indices into an int8 codebook (codebook.py), looked up inside the graph
            codebook, idx, scale = kmeans_codebook(w, w_bits)
            self.weight = nn.Parameter(pack_bits(idx - (1 << (w_bits - 1)), w_bits), requires_grad=False)
            self.codebook = nn.Parameter(codebook, requires_grad=False)
            self.weight_scale = nn.Parameter(scale, requires_grad=False)
        else:
            qmax = (1 << (w_bits - 1)) - 1
            amax = w.abs().reshape(w.shape[0], -1).amax(dim=1).clamp(min=1e-12)
            scale = amax / qmax
            q = torch.clamp(torch.round(w / scale.reshape(-1, *([1] * (w.dim() - 1)))), -qmax, qmax)
            stored = q.to(torch.int8) if w_bits == 8 else pack_bits(q, w_bits)
            self.weight = nn.Parameter(stored, requires_grad=False)
            self.weight_scale = nn.Parameter(scale, requires_grad=False)  # per output channel
        # activations: per tensor, zero point 0 (uint8 when the input is never negative, else int8)
        lo, hi = a_range if a_range is not None else (0.0, 1.0)
        self.a_signed = lo < 0
        self.a_scale = max(max(-lo, hi) / 127.0 if self.a_signed else hi / 255.0, 1e-8)
        self.integer = w_bits <= 8 and a_bits == 8
        if self.integer and self.bias is not None:  # integer layers add their bias in int32
            bias_q = torch.round(self.bias / qops.accumulator_scale(self.a_scale, self.weight_scale)).to(torch.int32)
            self.bias = nn.Parameter(bias_q, requires_grad=False)

    def integer_weight(self) -> torch.Tensor:
        """The int8 weight tensor (unpacked from 2/4-bit storage, or looked up in the codebook, inside the
        graph), 4-D for a Conv1d."""
        if self.w_bits == 8:
            return self.weight.unsqueeze(2) if self.one_d else self.weight
        numel = 1
        for d in self.weight_shape:
            numel *= d
        if self.shared:
            idx = unpack_bits(self.weight, self.w_bits, numel, signed=False)
            return torch.gather(self.codebook, 0, idx).reshape(self.compute_shape())  # index_select: TVM warns per build
        return unpack_bits(self.weight, self.w_bits, numel).to(torch.int8).reshape(self.compute_shape())

    def compute_shape(self) -> tuple[int, ...]:
        """The weight's shape in the layer's arithmetic: a Conv1d's (O, I, K) as (O, I, 1, K)."""
        if not self.one_d:
            return self.weight_shape
        o, i, k = self.weight_shape
        return (o, i, 1, k)

    def dequantized_weight(self) -> torch.Tensor:
        if self.w_bits in (16, 32):
            w = self.weight.to(torch.float32)
            return w.unsqueeze(2) if self.one_d else w
        shape = (-1, 1, 1, 1) if self.is_conv else (-1, 1)
        return self.integer_weight().to(torch.float32) * self.weight_scale.reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_d:  # the build keeps chains of these 4-D (build/passes/conv1d.py)
            return self.forward_2d(x.unsqueeze(2)).squeeze(2)
        return self.forward_2d(x)

    def forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        if self.integer:
            if self.is_conv:
                return qops.qconv2d(x, self.integer_weight(), self.weight_scale, self.bias, self.a_scale,
                                   self.a_signed, *self.conv_args)
            return qops.qlinear(x, self.integer_weight(), self.weight_scale, self.bias, self.a_scale, self.a_signed)
        if self.half:
            if self.w_bits == 16:
                w = self.weight.unsqueeze(2) if self.one_d else self.weight
            else:
                w = self.dequantized_weight()
            if self.is_conv:
                return qops.hconv2d(x, w, self.bias, *self.conv_args)
            return qops.hlinear(x, w, self.bias)
        if self.a_bits == 8:
            x = qops.quantize_activation(x, self.a_scale, self.a_signed) * self.a_scale
        elif self.a_bits == 16:
            x = x.to(torch.float16).to(torch.float32)
        w = self.dequantized_weight()
        if self.is_conv:
            stride, padding, dilation, groups = self.conv_args
            return F.conv2d(x, w, self.bias, stride, padding, dilation, groups)
        return F.linear(x, w, self.bias)

    def describe(self) -> LayerPrecision:
        wd = {32: "float32", 16: "float16", 8: "int8"}.get(self.w_bits, f"int{self.w_bits}x{8 // self.w_bits}")
        if self.shared:
            wd = f"int8 codebook[{1 << self.w_bits}] {wd}"
        if self.integer:
            ad = "int8" if self.a_signed else "uint8"
            return LayerPrecision(self.layer_name, wd, ad, f"{ad} x int8 -> int32")
        if self.half:
            return LayerPrecision(self.layer_name, wd, "float16", "float16")
        if self.a_bits == 32:
            return LayerPrecision(self.layer_name, wd, "float32", "float32")
        ad = "float16" if self.a_bits == 16 else ("int8" if self.a_signed else "uint8")
        return LayerPrecision(self.layer_name, wd, ad, f"float32 (simulated {ad} activations)")


def calibrate_input_ranges(model: nn.Module, names: list[str], data: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Min / max of each named layer's input over the calibration data."""
    ranges: dict[str, tuple[float, float]] = {}
    modules = dict(model.named_modules())

    def hook(name: str):
        def record(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            lo, hi = float(x.min()), float(x.max())
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))
        return record

    handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for i in range(0, len(data), CALIB_BATCH):
                model(data[i : i + CALIB_BATCH])
    finally:
        for h in handles:
            h.remove()
    return ranges


def quantize(model: nn.Module, plan: CompressionPlan, calib_data: torch.Tensor,
             fp16_compute: bool = False, ranges: dict[str, tuple[float, float]] | None = None) -> nn.Module:
    """A copy of `model` with every planned layer replaced by a QuantizedLayer.

    `fp16_compute`: the target does fp16 arithmetic, so a16 layers really compute in fp16. `ranges`:
    `calibrate_input_ranges` of this same `model`, measured once by a caller that quantizes it many ways.
    """
    model = copy.deepcopy(model).eval()
    modules = dict(model.named_modules())
    todo = [lp for lp in plan.layers if (lp.w_bits, lp.a_bits) != (32, 32)]
    for lp in todo:
        if lp.name not in modules or not isinstance(modules[lp.name], SEARCHABLE_TYPES):
            raise ValueError(f"plan names layer {lp.name!r}, which is not a Conv2d/Conv1d/Linear of this model")
    need_ranges = [lp.name for lp in todo if lp.a_bits == 8]
    if ranges is None or not set(need_ranges) <= set(ranges):
        ranges = calibrate_input_ranges(model, need_ranges, calib_data) if need_ranges else {}
    for lp in todo:
        parent_name, _, attr = lp.name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, attr, QuantizedLayer(modules[lp.name], lp.name, lp.w_bits, lp.a_bits,
                                                  ranges.get(lp.name), fp16_compute, lp.shared))
    return model


def layer_precisions(model: nn.Module, names: list[str],
                     float_only: dict[str, str] | None = None) -> list[LayerPrecision]:
    """Per searchable layer, what the compiled artifact stores and computes; then the layers that
    have no low-precision lowering (`float_only`: name -> compute, from layers.float_layers)."""
    modules = dict(model.named_modules())
    out = []
    for n in names:
        m = modules.get(n)
        out.append(m.describe() if isinstance(m, QuantizedLayer) else LayerPrecision(n, "float32", "float32", "float32"))
    out.extend(LayerPrecision(n, "float32", "float32", why) for n, why in (float_only or {}).items())
    return out
