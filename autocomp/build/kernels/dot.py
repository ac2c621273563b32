"""Dot-product variants of autocomp's zero-tuning conv2d schedule: AVX-512 VNNI (u8 data x s8 weight
-> s32, 16 lanes), ARMv8.2 SDOT (s8 x s8 -> s32, 4 lanes), ARMv8.0 int16 products (smull + saddlp: the
A72, no SDOT; s8 x s8 -> s32, 4 lanes x 16 or 4 channels) and x86 vpmaddwd (int16 pairs -> s32), one
template for all (`DotKind`).

The kernel driver (driver.py) tries it for every conv before the dense template (dense.py), which
takes the convs it returns None for.

Layouts, all produced inside the kernel (no Relax changes of its own):

* data: NHWC (CPU builds, layout.py) already holds a pixel's 4 channels in one 32-bit word, the
  operand vpdpbusd / sdot broadcast. NCHW: the padded input ``pad_temp[N, C, H', W']`` (an
  intermediate buffer of the fused PrimFunc) is re-laid out as ``[N, C/4, H', W', 4]`` by the padding
  stage itself (``transform_layout`` of the intermediate buffer: no extra pass over the data).
  Without padding, a ``cache_read`` stage does it.
* weight: ``[O, I, KH, KW]`` (or OHWI) -> ``[O/16, I/4, KH, KW, 16, 4]`` (a ``cache_read`` stage, O(weights) per
  call, as the generic schedule's ``[O/VF, I, KH, KW, VF]`` repack; prepacked at build time where the weight
  is a parameter, passes/prepack.py). 4-bit weights (passes/packed_int4.py) arrive two per byte in that
  order and are unpacked once per parallel work item (a channel block x a chunk of rows), for its tiles.
* accumulator: ``local`` ``[N, Y, X, F]`` tile of ``16*NV`` channels x ``TY x TX`` pixels, kept in
  zmm registers after unrolling.

Inner block: LANES output channels x 4 input channels, tensorized with ``vpdpbusd`` (intrin/vnni.py:
one broadcast of 4 data bytes, one 64-byte weight load, 64 multiply-adds per instruction) or ``sdot``
(intrin/sdot.py: 16 per instruction). The fused epilogue (bias, rescale, relu, requantize) is computed
per tile as in the dense template. Below, 16 is VNNI's LANES; SDOT's is 4.

Applies when: the target CPU has ``avx512vnni`` (LLVM feature name; "avx512_vnni" is /proc/cpuinfo's
spelling and is *not* recognised by ``llvm_cpu_has_features``), the data is uint8, the weight int8, the
accumulator int32, C % 4 == 0 and O % 16 == 0. Otherwise returns None (caller falls back).
int8 data (the first layer of a w8a8 plan) is not handled: vpdpbusd multiplies unsigned x signed.
SDOT applies on aarch64 targets with ``dotprod`` to int8 data (lower/relax_ops.py shifts uint8 activations
by -128 for such targets) with C % 4 == 0 and O % 4 == 0.
x86 targets with AVX2 or AVX-512BW but no VNNI get ``vpmaddwd`` (intrin/pmaddwd.py) for uint8 or
int8 data with C % 2 == 0: channels are grouped in pairs instead of fours (``DotKind.group``) and the
padded data tile is int16 (widened once per call by the padding stage). Convs whose weights the kernel
unpacks itself from 2 or 4 bits (or a codebook within +-64: the unpacking block states the bound,
``MAX_ABS_ATTR``) take VNNI's 4-channel groups on AVX2 instead, through ``vpmaddubsw`` + ``vpmaddwd``
(intrin/pmaddubsw.py: exact below that bound, saturating past it), on uint8 data: fashion-mnist w4a8
0.96 -> 0.78 of w8a8's kernel time on an AVX2-only Zen 3 (scripts/bench_mixed.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx

from autocomp.build.kernels.common import collapse_epilogue, const, divisor_at_most, parallel_elementwise, root, zero_accumulators
from autocomp.build.kernels.conv import (
    conv_loops,
    find_conv,
    packed_weight_map,
    pad_loops,
    schedule_tile_epilogue,
    to_nhwc_accumulator,
)
from autocomp.build.kernels.intrin.pmaddubsw import MAX_ABS_WEIGHT
from autocomp.build.kernels.intrin.vnni import register as register_vnni
from autocomp.device.features import has_feature, has_sdot, has_vnni, is_aarch64

LANES = 16  # int32 lanes of a zmm register
UNPACK_BLOCK = "autocomp_unpack_int4"  # the block of passes/packed_int4.py this template computes per work item
MAX_ABS_ATTR = "autocomp_weight_max_abs"  # its annotation: every value it computes lies within +-this
KGROUP = 4  # bytes summed per lane by vpdpbusd / sdot


@dataclass(frozen=True)
class DotKind:
    """One CPU dot-product instruction the template tensorizes with."""

    label: str  # how `kernels` reports it
    lanes: int  # int32 accumulator lanes per instruction
    data_dtypes: tuple[str, ...]  # what it multiplies the int8 weights with
    budget: int  # accumulator registers per tile
    group: int = KGROUP  # input channels summed into each lane per instruction
    wide_data: bool = False  # the data tile is widened to int16 once per call (vpmaddwd)
    max_abs_weight: int = 0  # exact only for weights this small, stated by their unpacking block (0: any int8)
    fallback: "DotKind | None" = None  # tried for a conv this kind does not fit (e.g. C % group != 0)

    def chain(self) -> list["DotKind"]:
        return [self, *(self.fallback.chain() if self.fallback else [])]


VNNI = DotKind("VNNI dot product", 16, ("uint8",), 16)
SDOT = DotKind("NEON SDOT dot product", 4, ("int8",), 16)  # 32 NEON registers: 16 accumulators + loads
# ARMv8.0 NEON without SDOT (the Pi 4's A72): int16 products (intrin/smull.py), SDOT's int8 data and lane
# layout. Where C % 16 == 0, 16 channels per lane: two products per int16 lane (smull + smlal) and one
# pairwise sum per 8 products, 16 instructions per 64 multiply-adds where the 4-channel form needs 24.
# llvm-mca (A72 model, FashionNet): 7.0 MAC lanes / cycle vs 4.7-4.9 for the 4-channel form and 2.5-4.0
# for the int32-lane template. Its tile is 4 accumulators: at 12, LLVM hoisted every product of the
# unrolled tile ahead of the sums and spilled them (4.8-6.7 lanes / cycle).
SMULL4 = DotKind("NEON int16 products (smull + saddlp)", 4, ("int8",), 12)
SMULL = DotKind("NEON int16 products (smull + smlal + saddlp)", 4, ("int8",), 4, group=16, fallback=SMULL4)
# vpmaddwd: 16 registers on AVX2 hold 12 accumulators, a weight vector, a broadcast and a product
PAIR_AVX2 = DotKind("int16 pair dot product (vpmaddwd)", 8, ("uint8", "int8"), 12, group=2, wide_data=True)
PAIR_AVX512 = DotKind("int16 pair dot product (vpmaddwd)", 16, ("uint8", "int8"), 16, group=2, wide_data=True)
# vpmaddubsw + vpmaddwd (intrin/pmaddubsw.py): VNNI's 4-channel groups on AVX2, exact where |weight| <= 64,
# i.e. the sub-byte weights the kernel unpacks itself (passes/packed_int4.py states their bound)
U8S8_AVX2 = DotKind("u8 x s8 pair sums (vpmaddubsw + vpmaddwd)", 8, ("uint8",), 12, max_abs_weight=MAX_ABS_WEIGHT,
                    fallback=PAIR_AVX2)


def dot_kind(target: tvm.target.Target) -> DotKind | None:
    """The fastest exact int8 dot product of the target: VNNI, SDOT, int16 products on other aarch64, else
    vpmaddwd on AVX2 / AVX-512BW x86 (2 multiply-adds per int32 lane, where int32 lanes give 1), else None
    (the int32-lane template)."""
    if has_vnni(target):
        return VNNI
    if has_sdot(target):
        return SDOT
    if is_aarch64(target):
        return SMULL
    if has_feature(target, "avx512bw"):
        return PAIR_AVX512
    if has_feature(target, "avx2"):
        return U8S8_AVX2
    return None


def pick_tile_vnni(o: int, h: int, w: int, budget: int = 16, lanes: int = LANES) -> tuple[int, int, int]:
    """(NV, TY, TX): 16-channel vectors per tile and the pixel tile; NV*TY*TX accumulators <= budget.

    Loads per step: NV weight vectors + TY*TX data broadcasts for NV*TY*TX vpdpbusd.
    """
    best = None
    for nv in (1, 2, 3, 4):
        if o % (lanes * nv):
            continue
        pix = budget // nv
        tx = divisor_at_most(w, pix)
        ty = divisor_at_most(h, max(1, pix // tx))
        px = tx * ty
        acc = nv * px
        score = (min(acc, budget), -(nv + px) / (nv * px))
        if best is None or score > best[0]:
            best = (score, (nv, ty, tx))
    return best[1]


def applicable_kind(func: tirx.PrimFunc, target, max_abs: int | None = None) -> DotKind | None:  # type: ignore[no-untyped-def]
    """The kind of the target's chain that the template would run this conv with, or None; `max_abs`:
    the conv's weights are known to lie within +-max_abs (before they are packed and unpacked)."""
    kind = dot_kind(target)
    sch = s_tir.Schedule(func)
    info = find_conv(sch) if kind is not None else None
    if info is None:
        return None
    return next((k for k in kind.chain() if _applicable(sch, info, k, max_abs)), None)


def _applicable(sch: s_tir.Schedule, info, kind: DotKind, max_abs: int | None = None) -> bool:
    blk = sch.get(sch.get_sblock(info.block))
    data = blk.reads[info.data_read].source
    weight = blk.reads[info.weight_read].source
    if kind.max_abs_weight:
        bound = max_abs if max_abs is not None else _stated_bound(sch)
        if bound is None or bound > kind.max_abs_weight:
            return False
    return (
        str(data.dtype) in kind.data_dtypes
        and str(weight.dtype) == "int8"
        and info.acc_dtype == "int32"
        and info.c % kind.group == 0
        and info.o % kind.lanes == 0
    )


def _stated_bound(sch: s_tir.Schedule) -> int | None:
    """The bound on |weight| the function's unpacking block states, None without one."""
    blk = next((b for b in sch.get_child_blocks(root(sch)) if sch.get(b).name_hint == UNPACK_BLOCK), None)
    value = sch.get(blk).annotations.get(MAX_ABS_ATTR) if blk is not None else None
    return int(value) if value is not None else None  # a Python int or an IntImm


def schedule_conv_vnni(
    func: tirx.PrimFunc,
    target,
    tile: tuple[int, int, int] | None = None,
    strict: bool = False,
    prepacked_weight: bool = False,
    kind: DotKind | None = None,
) -> tirx.PrimFunc | None:
    """VNNI schedule of one fused conv2d PrimFunc, or None when it does not apply (or fails, unless
    ``strict``: then the error propagates, for tests).

    ``prepacked_weight=True`` changes the function's weight *parameter* to the packed layout
    ``[O/16, I/4, KH, KW, 16, 4]`` instead of repacking inside the kernel: the caller must then feed
    packed weights (e.g. a Relax-level layout transform lifted out by LiftTransformParams). Used here
    to measure what the in-kernel repack costs."""
    target = tvm.target.Target(target) if not isinstance(target, tvm.target.Target) else target
    kind = kind or dot_kind(target)  # callers scheduling a whole module pass the target's kind once
    if kind is None:
        return None
    try:
        return _schedule(func, tile, prepacked_weight, kind)
    except Exception:
        if strict:
            raise
        return None


def _schedule(func: tirx.PrimFunc, tile, prepacked_weight: bool = False, kind: DotKind = VNNI) -> tirx.PrimFunc | None:
    sch = s_tir.Schedule(func)
    info = find_conv(sch)
    if info is None or not _applicable(sch, info, kind):
        return None
    data_dtype = str(sch.get(sch.get_sblock(info.block)).reads[info.data_read].source.dtype)
    if kind is SDOT:
        from autocomp.build.kernels.intrin.sdot import register as register_sdot

        intrin = register_sdot()
    elif kind in (SMULL, SMULL4):
        from autocomp.build.kernels.intrin.smull import register as register_smull

        intrin = register_smull(kind.group)
    elif kind.max_abs_weight:
        from autocomp.build.kernels.intrin.pmaddubsw import register as register_pmaddubsw

        intrin = register_pmaddubsw()
    elif kind.wide_data:
        from autocomp.build.kernels.intrin.pmaddwd import register as register_pair

        intrin = register_pair(kind.lanes, data_dtype)
    else:
        intrin = register_vnni()
    lanes, group = kind.lanes, kind.group
    nv, ty, tx = tile or pick_tile_vnni(info.o, info.h, info.w, kind.budget, lanes)
    top = root(sch)

    # 1. epilogue: inline every elementwise block after the conv into the last one (as dense.py)
    conv, epi = collapse_epilogue(sch, info.block)

    # 2. data layout [N, C, H, W] -> [N, C/G, H, W, G] (G = kind.group): re-lay the padding buffer in
    #    place when the data is an intermediate (pad_temp), else add a packing stage. NHWC data already
    #    has a pixel's G channels side by side: only the int16 widening may need a stage of its own.
    data_buf = sch.get(conv).reads[info.data_read].source
    producer = next(
        (b for b in sch.get_child_blocks(top) if any(w.source.same_as(data_buf) for w in sch.get(b).writes)), None)
    needs_stage = producer is None and (not info.nhwc or kind.wide_data)
    dpack = sch.cache_read(conv, info.data_read, "global") if needs_stage else None
    producer = producer or dpack
    if not info.nhwc:
        sch.transform_layout(conv, ("read", info.data_read), lambda n, c, h, w: (n, c // group, h, w, c % group))
    if kind.wide_data:  # widen once per call so the inner loop broadcasts one 32-bit word of 2 x int16
        sch.unsafe_set_dtype(producer, 0, "int16")

    # 3. weight [O, I, KH, KW] (or OHWI) -> [O/16, I/4, KH, KW, 16, 4]; 4-bit weights unpacked in the
    #    kernel (passes/packed_int4.py) are computed in that layout, once per work item (step 4)
    unpack = _unpack_block(sch, top, info, lanes, group)
    if unpack is False:
        return None
    weight_map = packed_weight_map(info, lanes, group)
    wpack = None if prepacked_weight or unpack is not None else sch.cache_read(conv, info.weight_read, "global")
    sch.transform_layout(conv, ("read", info.weight_read), weight_map)
    if unpack is not None:
        sch.transform_block_layout(unpack, weight_map)
    # accumulator [N, Y, X, F]: 16 channels contiguous
    to_nhwc_accumulator(sch, conv, info)

    # 4. tile: n, fo, yo, xo | rco, ry, rx | fv, yi, xi | fi(16), rci(4)
    n, f, y, x, rc, ry, rx = conv_loops(sch, conv, info)
    fo, fv, fi = sch.split(f, [None, nv, lanes])
    yo, yi = sch.split(y, [None, ty])
    xo, xi = sch.split(x, [None, tx])
    rco, rci = sch.split(rc, [None, group])
    sch.reorder(n, fo, yo, xo, rco, ry, rx, fv, yi, xi, fi, rci)
    if unpack is None:
        outer = tile = sch.fuse(n, fo, yo, xo)
    else:  # parallel over channel blocks x row chunks; each unpacks its channels' weights once for its tiles
        rows = const(sch.get(yo).extent)
        items = info.n * info.o // (lanes * nv)
        chunks = next((d for d in range(1, rows + 1) if rows % d == 0 and items * d >= MIN_PARALLEL), rows)
        ya, yb = sch.split(yo, [chunks, None])
        outer, tile = sch.fuse(n, fo, ya), sch.fuse(yb, xo)
    sch.reverse_compute_at(epi, tile)
    sch.parallel(outer)
    for lp in (fv, yi, xi, rx):
        sch.unroll(lp)
    if unpack is not None:
        _unpack_loops(sch, unpack, outer, lanes * group)
    # init loops: outer, fv, yi, xi, fi -> vectorize fi (16 lanes), unroll the rest
    zero_accumulators(sch, conv, rco)
    sch.tensorize(fi, intrin)

    # 5. epilogue inside the tile (NCHW: along x; NHWC: along the channels)
    schedule_tile_epilogue(sch, epi, info, lanes)

    # 6. side stages
    if wpack is not None:
        _pack_weight_loops(sch, wpack, lanes, group, info.nhwc)
    pads = [b for b in sch.get_child_blocks(top) if sch.get(b).name_hint.startswith("pad_temp")]
    for b in pads + ([dpack] if dpack is not None else []):
        if info.nhwc:
            pad_loops(sch, b, info)
        else:
            _pack_data_loops(sch, b, group)
    return sch.mod["main"]


def _unpack_block(sch: s_tir.Schedule, top, info, lanes: int, group: int):  # type: ignore[no-untyped-def]
    """The block unpacking the conv's 4-bit weights (None when there is none; False when its bytes are
    packed for another lane layout than this kind's)."""
    blk = next((b for b in sch.get_child_blocks(top) if sch.get(b).name_hint == UNPACK_BLOCK), None)
    if blk is None:
        return None
    shape = [int(d) for d in sch.get(blk).reads[0].source.shape]
    return blk if (info.o // shape[0], info.c // shape[1]) == (lanes, group) else False


MIN_PARALLEL = 4  # parallel work items a kernel with in-kernel unpacking keeps at least (a Pi has 4 cores)


def _unpack_loops(sch: s_tir.Schedule, blk, at, width: int) -> None:
    """The weights of a work item's channel block, unpacked once at its start (`at`) for all its tiles:
    per vector of `width` lanes, half from the low nibbles and half from the high ones of `width / 2`
    bytes (an AND and a shift; 2-bit values: quarters from each pair of bits of `width / 4` bytes). Unpacked per step instead, right before the dot products, the unpacking
    was 8-15% of the conv's time: one vector per 14 dot products."""
    per = width // int(sch.get(blk).reads[0].source.shape[-1])  # values per byte: 2 (4-bit), 4 (2-bit)
    sch.compute_at(blk, at)
    loops = sch.get_loops(blk)
    here = [i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(at))][0]
    *_, lane, grp = loops[here + 1:]  # compute_at leaves out loops of extent 1
    hi, lo = sch.split(sch.fuse(lane, grp), [per, width // per])
    sch.unroll(hi)
    sch.vectorize(lo)


def _pack_weight_loops(sch: s_tir.Schedule, blk, lanes: int = LANES, group: int = KGROUP, ohwi: bool = False) -> None:
    """Loops (o, i, h, w) (or (o, h, w, i)) of the stage writing [O/L, I/G, KH, KW, L, G]: write order,
    parallel over the L-channel blocks."""
    loops = sch.get_loops(blk)
    po_, pi_, ph, pw = (loops[0], loops[3], loops[1], loops[2]) if ohwi else loops
    pa, pb = sch.split(po_, [None, lanes])
    qa, qb = sch.split(pi_, [None, group])
    sch.reorder(pa, qa, ph, pw, pb, qb)
    sch.parallel(pa)
    sch.unroll(qb)


def _pack_data_loops(sch: s_tir.Schedule, blk, group: int = KGROUP) -> None:
    """Loops (n, c, h, w) of a stage writing [N, C/G, H, W, G]: make c%G innermost (contiguous
    writes), parallel over the outer loops."""
    loops = sch.get_loops(blk)
    if len(loops) != 4:
        parallel_elementwise(sch, blk)
        return
    n, c, h, w = loops
    ca, cb = sch.split(c, [None, group])
    sch.reorder(n, ca, h, w, cb)
    sch.unroll(cb)
    p = sch.fuse(n, ca, h)
    sch.parallel(p)
