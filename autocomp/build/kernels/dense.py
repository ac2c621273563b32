"""The dense conv2d template: zero-tuning CPU schedule of a fused conv2d PrimFunc (groups = 1).

Why: TVM 0.27 ships no x86 conv2d schedules (no TOPI strategies, dlight.cpu covers only GEMV/reductions),
so an untuned conv2d compiles to a naive scalar 7-deep loop nest (~2 GFLOP/s). MetaSchedule needs minutes
per kernel. A fixed "direct conv, vectorized over output channels" template reaches a large fraction of
peak in well under a second of schedule time, for any shape, with no search.

The kernel driver (driver.py) tries it for every conv after the Winograd and dot-product templates,
with a tile from the tuning database (tuning.py) when there is one. Data and weights are NHWC / OHWI
(passes/layout.py makes CPU builds channels-last) or NCHW / OIHW; any stride, padding and kernel:

* output channels are the SIMD axis: weights are packed (at build time by passes/prepack.py, else by a cheap
  O(weights) stage in the kernel) to ``[O/VF, I, KH, KW, VF]`` (NHWC: ``[O/VF, KH, KW, I, VF]``, see
  packed_weight_map) so one contiguous vector load gives VF output
  channels, and each input pixel is a scalar broadcast. Strided convs cost nothing extra (broadcasts
  do not care about stride) and small spatial sizes (7x7) still fill all lanes, which vectorizing
  along the width would not.
* a register tile of ``VF`` channels x ``TY x TX`` output pixels is accumulated in a ``local`` buffer
  laid out ``[y, x, f]`` (f innermost) so that after unrolling LLVM keeps it in vector registers.
* the whole fused epilogue (bias, relu, requantize: cast/multiply/add/divide/round/clip/cast) is
  inlined into one block and computed right after each tile (``reverse_compute_at``), so the
  int32/fp32 conv result never goes to memory.
* parallel over the fused (batch, channel-block, pixel-block) loop.
* int8 (u8/i8 data x i8 weight -> i32) uses the same template with int32 lanes (exact) where the
  target has no dot-product instruction (dot.py has the VNNI / SDOT / vpmaddwd variant).
* the tile's [y, x, f] accumulators are stored channels-innermost: one vector store per pixel in
  NHWC; NCHW needs a transpose on the way out (gathers along x), which is why CPU builds use NHWC
  (FashionNet int8 0.207 -> 0.158 ms, ResNet-18 int8 5.83 -> 5.22 ms).
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx

from autocomp.build.kernels.common import collapse_epilogue, divisor_at_most, root, zero_accumulators
from autocomp.build.kernels.conv import (
    ConvInfo,
    conv_loops,
    find_conv,
    packed_weight_map,
    pad_loops,
    schedule_tile_epilogue,
    to_nhwc_accumulator,
)
from autocomp.device.features import num_vector_regs, vector_bits


def simd_lanes(info: ConvInfo, target) -> int:
    """Accumulator lanes of one SIMD register, halved until they divide the output channels."""
    lanes = vector_bits(target) // tvm.DataType(info.acc_dtype).bits
    while lanes > 1 and (info.o % lanes or (info.group_out and info.group_out % lanes)):
        lanes //= 2
    return lanes


def pick_tile(info: ConvInfo, target) -> tuple[int, int, int]:
    """(VF, TY, TX): output channels per tile (1 to 4 SIMD registers) and the pixel tile.

    lanes = SIMD lanes for the accumulator type (32-bit: 16 AVX-512, 8 AVX2, 4 SSE/NEON; fp16 on
    NEON: 8), halved until it divides O (so 24 or 40 channels use 8 lanes). The accumulator budget is
    accumulators + weight registers <= 24 on AVX-512 (32 regs; 28 accumulators spilled), 16
    accumulators on AArch64 (32 regs, not measured higher) and 12 on AVX2 (16 regs). TX is the largest divisor of the width that fits, TY a divisor of the height for
    the rest; when the pixel tile is small (7x7 maps: 7 pixels) two channel vectors are used so that
    each input broadcast feeds 2 FMAs and there are enough independent accumulators.
    """
    lanes = simd_lanes(info, target)
    # accumulator budget, measured on Zen 4: 28 accumulators spill (2x slower); with AVX-512's 32
    # registers a tile may hold up to 24 accumulators + weight registers (8 left for broadcasts):
    # FashionNet's 48-channel convs at 28x28 take 3 x 7 = 21, 6% faster than 1 x 14
    budget = 16 if num_vector_regs(target) >= 32 else 12
    wide = vector_bits(target) == 512
    best = None
    for nvec in (1, 2, 3, 4):
        vf = lanes * nvec
        if info.o % vf or (info.group_out and info.group_out % vf):  # a tile's channels within one group
            continue
        pix_budget = max(budget, 24 - nvec) // nvec if wide else budget // nvec
        tx = divisor_at_most(info.w, pix_budget)
        ty = divisor_at_most(info.h, max(1, pix_budget // tx))
        acc = nvec * tx * ty
        # score: accumulators used (latency hiding) and loads per FMA: (nvec + px) / (nvec * px)
        px = tx * ty
        score = (min(acc, 24 if wide else budget), -(nvec + px) / (nvec * px))
        if best is None or score > best[0]:
            best = (score, (vf, ty, tx))
    return best[1]


def schedule_conv(func: tirx.PrimFunc, target, tile: tuple[int, int, int] | None = None,
                  prepacked_weight: bool = False) -> tirx.PrimFunc | None:
    """Schedule one fused conv2d PrimFunc; returns None when the pattern is not supported.

    ``prepacked_weight=True``: the function's weight parameter itself takes the packed layout
    ``[O/VF, I, KH, KW, VF]`` (the caller packs the weights once) instead of a repack stage per call."""
    sch = s_tir.Schedule(func)
    info = find_conv(sch)
    if info is None:
        return None
    vf, ty, tx = tile or pick_tile(info, target)

    # 1. collapse the epilogue: inline every elementwise block after the conv into the last one.
    top = root(sch)
    conv, epi = collapse_epilogue(sch, info.block)

    # 2. weight repack [O, I, KH, KW] -> [O/VF, I, KH, KW, VF] (runs every call, O(weights)).
    wpack = None if prepacked_weight else sch.cache_read(conv, info.weight_read, "global")
    sch.transform_layout(conv, ("read", info.weight_read), packed_weight_map(info, vf))
    # accumulator layout: f innermost so a vector of VF channels is contiguous
    to_nhwc_accumulator(sch, conv, info)

    # 3. tile the conv
    # VF = NV register vectors of `lanes` channels: the NV loop is unrolled and only one register's
    # worth is vectorized, because LLVM splits a 24-lane vector (3 x AVX2) into scalar-heavy code
    # (measured 10x slower than three 8-lane vectors).
    lanes = simd_lanes(info, target)
    lanes = lanes if vf % lanes == 0 else vf
    n, f, y, x, rc, ry, rx = conv_loops(sch, conv, info)
    fo, fv, fi = sch.split(f, [None, vf // lanes, lanes])
    yo, yi = sch.split(y, [None, ty])
    xo, xi = sch.split(x, [None, tx])
    # NHWC: the kernel window outside the channels, rx not unrolled. Each input value then feeds one
    # FMA per register, so LLVM folds its broadcast into the FMA instead of holding the 3 x-shifted
    # copies in registers: on AVX2 (16 registers) that spilled, FashionNet fp32 convs 0.92 -> 0.72 ms
    # and ResNet-18's 16.8 -> 14.0 ms (haswell code); on AVX-512 both orders time the same.
    reduction = (ry, rx, rc) if info.nhwc else (rc, ry, rx)
    sch.reorder(n, fo, yo, xo, *reduction, yi, xi, fv, fi)
    outer = sch.fuse(n, fo, yo, xo)
    sch.reverse_compute_at(epi, outer)
    sch.parallel(outer)
    # annotate loops *before* decompose_reduction: afterwards the update block is neither "complete"
    # nor "reduction" and vectorize/parallel refuse it.
    sch.vectorize(fi)
    sch.unroll(fv)
    sch.unroll(xi)
    sch.unroll(yi)
    if not info.nhwc:
        sch.unroll(rx)
    zero_accumulators(sch, conv, reduction[0])
    schedule_tile_epilogue(sch, epi, info, lanes)

    # 4. side stages: weight packing (vectorized over the packed VF axis: 2x faster than a scalar
    #    scatter), padding copy (parallel over channels)
    if wpack is not None:
        po_, *middle = sch.get_loops(wpack)  # (o, i, h, w) or, OHWI, (o, h, w, i): both in packed order
        pa, pv, pb = sch.split(po_, [None, vf // lanes, lanes])
        sch.reorder(pa, *middle, pv, pb)
        sch.parallel(pa)
        sch.vectorize(pb)
    for b in sch.get_child_blocks(top):
        nm = sch.get(b).name_hint
        if nm.startswith("pad_temp"):
            pad_loops(sch, b, info)
    return sch.mod["main"]
