"""Zero-tuning CPU schedules for the fused conv2d PrimFuncs that TVM 0.27's Relax CPU legalize+fusion emits.

Why: TVM 0.27 ships no x86 conv2d schedules (no TOPI strategies, dlight.cpu covers only GEMV/reductions),
so an untuned conv2d compiles to a naive scalar 7-deep loop nest (~2 GFLOP/s). MetaSchedule needs minutes
per kernel. A fixed "direct conv, vectorized over output channels" template reaches a large fraction of
peak in well under a second of schedule time, for any shape, with no search.

Entry point: ``schedule_module(mod, target) -> (IRModule, report)``, called by ``autocomp.build`` between
``legalize`` and the rest of the pipeline (RewriteDataflowReshape ... StaticPlanBlockMemory, finalize).

The conv template (NCHW data and OIHW weight, or NHWC and OHWI: layout.py makes CPU builds
channels-last; groups=1, any stride/padding/kernel):

* output channels are the SIMD axis: weights are packed (at build time by prepack.py, else by a cheap
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
  target has no dot-product instruction (schedule_vnni.py has the VNNI / SDOT / vpmaddwd variant).
* the tile's [y, x, f] accumulators are stored channels-innermost: one vector store per pixel in
  NHWC; NCHW needs a transpose on the way out (gathers along x), which is why CPU builds use NHWC
  (FashionNet int8 0.207 -> 0.158 ms, ResNet-18 int8 5.83 -> 5.22 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx

# ----------------------------------------------------------------------------------------------
# target helpers


def vector_bits(target: tvm.target.Target) -> int:
    """SIMD register width in bits.

    ``tvm.target.codegen.llvm_get_vector_width`` returns 512 for every x86 mcpu in this wheel (even
    haswell / generic), so ask LLVM for the CPU features instead.
    """
    from tvm.target import codegen

    try:
        with target:
            if codegen.llvm_cpu_has_features(["avx512f"], target):
                return 512
            if codegen.llvm_cpu_has_features(["avx2"], target) or codegen.llvm_cpu_has_features(["avx"], target):
                return 256
    except Exception:  # non-x86 / feature query unsupported
        pass
    return 128


def num_vector_regs(target: tvm.target.Target) -> int:
    """AVX-512 and AArch64 have 32 vector registers; AVX2 / SSE 16."""
    if vector_bits(target) == 512 or "aarch64" in str(target.attrs.get("mtriple", "")):
        return 32
    return 16


# ----------------------------------------------------------------------------------------------
# pattern matching


@dataclass
class ConvInfo:
    block: str
    n: int
    o: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    acc_dtype: str
    data_read: int  # index of the (padded) data in block.reads
    weight_read: int  # index of the weight in block.reads
    layout: str = "NCHW"  # or "NHWC" (weights OHWI): layout.py makes every CPU conv channels-last

    @property
    def nhwc(self) -> bool:
        return self.layout == "NHWC"


@dataclass(frozen=True)
class _Layout:
    """Where TOPI's conv block puts things, by position in the canonical loop order
    (n, f, y, x, rc, ry, rx)."""

    loops: tuple[int, ...]  # the block's iter var of each canonical loop
    weight: tuple[int, ...]  # the canonical loops indexing the weight, as stored
    data_channel: int  # the data's channel axis


_LAYOUTS = {
    "NCHW": _Layout((0, 1, 2, 3, 4, 5, 6), (1, 4, 5, 6), 1),  # weight OIHW: [f, rc, ry, rx]
    "NHWC": _Layout((0, 3, 1, 2, 6, 4, 5), (1, 5, 6, 4), 3),  # weight OHWI: [f, ry, rx, rc]
}


def conv_loops(sch: s_tir.Schedule, block, info: ConvInfo) -> list:
    """The conv block's loops as (n, f, y, x, rc, ry, rx), whatever its layout."""
    loops = sch.get_loops(block)
    return [loops[i] for i in _LAYOUTS[info.layout].loops]


def packed_weight_map(info: ConvInfo, vf: int, group: int = 0):  # type: ignore[no-untyped-def]
    """Stored weight (OIHW or OHWI) -> the packed layout the templates read: dot products (group G)
    ``[O/VF, I/G, KH, KW, VF, G]``; dense ``[O/VF, I, KH, KW, VF]``, or ``[O/VF, KH, KW, I, VF]`` for
    NHWC, whose dense template runs the channels innermost (schedule_conv): the weights are then read
    in memory order. Read across the window instead, an 8-lane (AVX2) weight vector is half a cache
    line and every line came in twice: ResNet-18's 512-channel convs ran 3x slower."""

    def packed(o, i, h, w):  # type: ignore[no-untyped-def]
        if group:
            return o // vf, i // group, h, w, o % vf, i % group
        return o // vf, i, h, w, o % vf

    if not info.nhwc:
        return packed
    if group:
        return lambda o, h, w, i: packed(o, i, h, w)
    return lambda o, h, w, i: (o // vf, h, w, i, o % vf)


def to_nhwc_accumulator(sch: s_tir.Schedule, block, info: ConvInfo) -> None:
    """Lay the accumulator out [N, Y, X, F] (channels contiguous: one vector); NHWC already is."""
    if not info.nhwc:
        sch.transform_layout(block, ("write", 0), lambda n, f, y, x: (n, y, x, f))


def _const(x) -> int | None:
    v = getattr(x, "value", None)  # IntImm lives in tvm.ir in 0.27 (not tirx.IntImm)
    return int(v) if isinstance(v, int) else None


def find_conv(sch: s_tir.Schedule) -> ConvInfo | None:
    """Return the (single) plain conv2d-NCHW/OIHW block of the function, or None.

    Recognised structurally: 7 iter vars ``SSSSRRR``, a 4-d write, two 4-d reads of which one (the
    weight) is indexed exactly by ``[f, rc, ry, rx]`` (NCHW: iter vars n, f, y, x, rc, ry, rx) or
    ``[f, ry, rx, rc]`` (NHWC / OHWI: iter vars n, y, x, f, ry, rx, rc). Grouped / depthwise convs
    (different shapes and index patterns) are not matched and are left unscheduled.
    """
    found = None
    for blk, ivs, dims in _conv_blocks(sch):
        out = blk.writes[0].source
        for name, layout in _LAYOUTS.items():
            canon = [ivs[i].var for i in layout.loops]  # n, f, y, x, rc, ry, rx
            weight_idx = [canon[i] for i in layout.weight]
            wr = None
            dr = None
            for i, r in enumerate(blk.reads):
                idx = [rg.min for rg in r.region]
                if r.source.same_as(out) or len(idx) != 4:
                    continue
                if all(a.same_as(b) for a, b in zip(idx, weight_idx)):
                    wr = i
                elif idx[0].same_as(canon[0]) and idx[layout.data_channel].same_as(canon[4]):
                    dr = i
            if wr is None or dr is None:
                continue
            n, o, h, w, c, kh, kw = [dims[i] for i in layout.loops]
            found = ConvInfo(blk.name_hint, n, o, h, w, c, kh, kw, str(out.dtype), dr, wr, name)
            break
    return found


def _conv_blocks(sch: s_tir.Schedule):  # type: ignore[no-untyped-def]
    """(block, iter vars, constant extents) of each conv-shaped block: ``SSSSRRR`` iter vars with
    constant extents, one write, at least two reads."""
    for blk_rv in sch.get_child_blocks(_root(sch)):
        blk = sch.get(blk_rv)
        ivs = blk.iter_vars
        kinds = "".join("S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in ivs)
        if kinds != "SSSSRRR" or len(blk.writes) != 1 or len(blk.reads) < 2:
            continue
        dims = [_const(iv.dom.extent) for iv in ivs]
        if all(d is not None for d in dims):
            yield blk, ivs, dims


def find_depthwise(sch: s_tir.Schedule) -> ConvInfo | None:
    """The depthwise conv2d block (groups == channels, one input channel per group), or None.

    TOPI's grouped conv reads ``pad[n, (f // (O/G)) * (C/G) + rc, ...]``; with C/G == 1 and O == G the
    reduction over rc has extent 1 and the weight is ``[f, 0, ry, rx]``. Recognised by: ``SSSSRRR``,
    rc of extent 1, output channels == input channels of the padded data, weight read ``[f, rc, ry, rx]``
    (NHWC / OHWI: iter vars n, y, x, f, ry, rx, rc and the weight read ``[f, ry, rx, rc]``).
    """
    for blk, ivs, dims in _conv_blocks(sch):
        out = blk.writes[0].source
        for name, layout in _LAYOUTS.items():
            n, o, h, w, c, kh, kw = [dims[i] for i in layout.loops]
            if c != 1:
                continue
            canon = [ivs[i].var for i in layout.loops]
            weight_idx = [canon[i] for i in layout.weight]
            wr = dr = None
            for i, r in enumerate(blk.reads):
                if r.source.same_as(out) or len(r.region) != 4:
                    continue
                idx = [rg.min for rg in r.region]
                if all(a.same_as(b) for a, b in zip(idx, weight_idx)):
                    wr = i
                elif _const(r.source.shape[layout.data_channel]) == o:
                    dr = i
            if wr is not None and dr is not None:
                return ConvInfo(blk.name_hint, n, o, h, w, c, kh, kw, str(out.dtype), dr, wr, name)
    return None


def depthwise_tile(h: int, w: int, lanes: int) -> tuple[int, int]:
    """(TY, VX): a whole row up to two vectors wide, else the largest divisor of the width up to one
    vector; rows until the tile holds about 8 vectors (small maps become one tile per plane)."""
    vx = w if w <= 2 * lanes else _divisor_at_most(w, lanes)
    per_row = -(-vx // lanes)
    return _divisor_at_most(h, max(1, 8 // per_row)), vx


def schedule_depthwise(func: tirx.PrimFunc, target) -> tirx.PrimFunc | None:
    """Depthwise conv2d: each output channel reads one input plane, so channels cannot share a data
    broadcast as in the dense template; vectorize along the output width instead (contiguous loads
    at stride 1) with a register tile of TY rows, the kernel window unrolled, parallel over
    (batch, channel, row block). Returns None when the function is not a depthwise conv."""
    sch = s_tir.Schedule(func)
    info = find_depthwise(sch)
    if info is None:
        return None
    lanes = vector_bits(target) // tvm.DataType(info.acc_dtype).bits
    if info.nhwc:
        return _schedule_depthwise_nhwc(sch, info, lanes)
    ty, vx = depthwise_tile(info.h, info.w, lanes)
    root = _root(sch)
    conv, epi = collapse_epilogue(sch, info.block)

    n, f, y, x, rc, ry, rx = sch.get_loops(conv)
    yo, yi = sch.split(y, [None, ty])
    xo, xi = sch.split(x, [None, vx])
    sch.reorder(n, f, yo, xo, rc, ry, rx, yi, xi)
    outer = sch.fuse(n, f, yo)
    sch.reverse_compute_at(epi, xo)
    sch.parallel(outer)
    sch.vectorize(xi)
    sch.unroll(yi)
    sch.unroll(rx)
    sch.unroll(ry)
    vectorize_init(sch, sch.decompose_reduction(conv, rc))
    el = sch.get_loops(epi)[2:]
    if len(el) >= 2:
        sch.unroll(el[-2])
    if el:
        sch.vectorize(el[-1])
    for b in sch.get_child_blocks(root):
        if sch.get(b).name_hint.startswith("pad_temp"):
            _parallel_elementwise(sch, b)
    return sch.mod["main"]


def _schedule_depthwise_nhwc(sch: s_tir.Schedule, info: ConvInfo, lanes: int) -> tirx.PrimFunc:
    """Channels-last depthwise: channels are the SIMD axis (a pixel's channels are one contiguous
    load, whatever the stride), the weights repacked per call to ``[C/L, KH, KW, L]`` (C x KH x KW
    values: negligible), a register tile of TY x TX pixels sharing each weight vector, the kernel
    window unrolled, parallel over (batch, row block, column block, channel block)."""
    while lanes > 1 and info.o % lanes:
        lanes //= 2
    tx = _divisor_at_most(info.w, 8)
    ty = _divisor_at_most(info.h, max(1, 16 // tx))
    root = _root(sch)
    conv, epi = collapse_epilogue(sch, info.block)
    wpack = sch.cache_read(conv, info.weight_read, "global")
    sch.transform_layout(conv, ("read", info.weight_read), lambda o, h, w, i: (o // lanes, h, w, i, o % lanes))

    n, f, y, x, rc, ry, rx = conv_loops(sch, conv, info)
    fo, fi = sch.split(f, [None, lanes])
    yo, yi = sch.split(y, [None, ty])
    xo, xi = sch.split(x, [None, tx])
    sch.reorder(n, yo, xo, fo, rc, ry, rx, yi, xi, fi)
    outer = sch.fuse(n, yo, xo, fo)
    sch.reverse_compute_at(epi, outer)
    sch.parallel(outer)
    sch.vectorize(fi)
    for lp in (xi, yi, rx, ry):
        sch.unroll(lp)
    vectorize_init(sch, sch.decompose_reduction(conv, rc))
    schedule_tile_epilogue(sch, epi, info, lanes)
    wo, wh, ww, wi = sch.get_loops(wpack)
    wa, wb = sch.split(wo, [None, lanes])
    sch.reorder(wa, wh, ww, wi, wb)
    for b in sch.get_child_blocks(root):
        if sch.get(b).name_hint.startswith("pad_temp"):
            _pad_loops(sch, b, info)
    return sch.mod["main"]


def collapse_epilogue(sch: s_tir.Schedule, conv_name: str):  # type: ignore[no-untyped-def]
    """Inline every elementwise block after the conv into the last one and keep the conv's result in a
    ``local`` buffer; returns (conv block, epilogue block). A conv that writes the function output
    directly gets a ``cache_write`` stage as its epilogue."""
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(_root(sch))]
    after = names[names.index(conv_name) + 1 :]
    for nm in after[:-1]:
        sch.compute_inline(sch.get_sblock(nm))
    conv = sch.get_sblock(conv_name)
    if after:
        sch.set_scope(conv, 0, "local")
        return conv, sch.get_sblock(after[-1])
    epi = sch.cache_write(conv, 0, "local")
    return sch.get_sblock(conv_name), epi


def _root(sch: s_tir.Schedule):
    return sch.get_sblock("root")


def _divisor_at_most(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


# ----------------------------------------------------------------------------------------------
# conv schedule


def simd_lanes(info: ConvInfo, target) -> int:
    """Accumulator lanes of one SIMD register, halved until they divide the output channels."""
    lanes = vector_bits(target) // tvm.DataType(info.acc_dtype).bits
    while lanes > 1 and info.o % lanes:
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
        if info.o % vf:
            continue
        pix_budget = max(budget, 24 - nvec) // nvec if wide else budget // nvec
        tx = _divisor_at_most(info.w, pix_budget)
        ty = _divisor_at_most(info.h, max(1, pix_budget // tx))
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
    root = _root(sch)
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
    vectorize_init(sch, sch.decompose_reduction(conv, reduction[0]))
    schedule_tile_epilogue(sch, epi, info, lanes)

    # 4. side stages: weight packing (vectorized over the packed VF axis: 2x faster than a scalar
    #    scatter), padding copy (parallel over channels)
    if wpack is not None:
        po_, *middle = sch.get_loops(wpack)  # (o, i, h, w) or, OHWI, (o, h, w, i): both in packed order
        pa, pv, pb = sch.split(po_, [None, vf // lanes, lanes])
        sch.reorder(pa, *middle, pv, pb)
        sch.parallel(pa)
        sch.vectorize(pb)
    for b in sch.get_child_blocks(root):
        nm = sch.get(b).name_hint
        if nm.startswith("pad_temp"):
            _pad_loops(sch, b, info)
    return sch.mod["main"]


def schedule_tile_epilogue(sch: s_tir.Schedule, epi, info: ConvInfo, lanes: int) -> None:
    """The epilogue's loops inside one tile: NCHW (n, f, y, x) vectorized along x, the NCHW store
    being contiguous in x; NHWC (n, y, x, f) along the channels, one register at a time."""
    el = sch.get_loops(epi)[1:]
    if not info.nhwc:
        sch.unroll(el[-2]) if len(el) >= 2 else None
        sch.vectorize(el[-1])
        return
    f = el[-1]
    extent = _const(sch.get(f).extent) or lanes
    if extent > lanes and extent % lanes == 0:
        fv, f = sch.split(f, [None, lanes])
        sch.unroll(fv)
    for lp in el[:-1]:
        sch.unroll(lp)
    sch.vectorize(f)


def _pad_loops(sch: s_tir.Schedule, blk, info: ConvInfo) -> None:
    """The padding copy: parallel over the outer loops; NHWC copies whole pixels, channels vectorized."""
    _parallel_elementwise(sch, blk)
    if info.nhwc:
        loops = sch.get_loops(blk)
        if len(loops) >= 2 and (_const(sch.get(loops[-1]).extent) or 0) > 1:
            sch.vectorize(loops[-1])


def vectorize_init(sch: s_tir.Schedule, init) -> None:
    """The accumulator-zeroing block decompose_reduction made: unroll its tile loops, vectorize the last."""
    loops = sch.get_loops(init)
    sch.vectorize(loops[-1])
    for lp in loops[1:-1]:
        sch.unroll(lp)


def _parallel_elementwise(sch, blk, vec_cap: int = 64) -> None:
    loops = sch.get_loops(blk)
    if not loops:
        return
    ext = [_const(sch.get(lp).extent) or 1 for lp in loops]
    # parallel over the leading loops until there is enough work, vectorize the innermost if small
    if len(loops) >= 2:
        k = 1
        work = ext[0]
        while k < len(loops) - 1 and work < 16:
            work *= ext[k]
            k += 1
        p = sch.fuse(*loops[:k]) if k > 1 else loops[0]
        sch.parallel(p)


# ----------------------------------------------------------------------------------------------
# module driver


def _schedule_other(func: tirx.PrimFunc, target) -> tuple[tirx.PrimFunc | None, str]:
    """A kernel that is not a conv: the matmul template, else the elementwise / reduction one."""
    from autocomp.schedule_generic import schedule_elementwise, schedule_matmul

    for template, how in ((schedule_matmul, "matmul template"), (schedule_elementwise, "elementwise template")):
        try:
            new = template(func, target)
        except Exception:  # noqa: BLE001 - a shape the template cannot take keeps TVM's default
            new = None
        if new is not None:
            return new, how
    return None, ""


def schedule_module(mod: tvm.IRModule, target, db=None, tune_trials: int = 0) -> tuple[tvm.IRModule, dict[str, str]]:
    """The scheduled module and the per-kernel report (see schedule_and_pack), weights repacked in-kernel."""
    out, report, _ = schedule_and_pack(mod, target, db, tune_trials, prepack=False)
    return out, report


def schedule_and_pack(mod: tvm.IRModule, target, db=None, tune_trials: int = 0,
                      prepack: bool = True) -> tuple[tvm.IRModule, dict[str, str], dict]:
    """Rewrite every conv2d PrimFunc of ``mod`` with :func:`schedule_conv` (Winograd kernels, made by
    winograd.rewrite, with winograd.schedule); leave the rest alone.

    With a tuning database (``autocomp.tuning.TuningDB``), a workload's recorded tile is used; a new
    workload is tuned first when ``tune_trials`` > 0, else it gets the default tile. Returns the new
    module (``mod`` is untouched: IRModule item assignment mutates in place) and, per conv function,
    how it was scheduled or why not. A function whose schedule raises keeps TVM's default.

    With ``prepack``, a conv whose weight is a once-used parameter of ``main`` takes it in the packed
    layout; the third value maps those functions to their ``prepack.Packing`` (prepack.apply then
    packs the arrays and re-declares the parameters).
    """
    from autocomp import prepack as pk
    from autocomp import tuning, winograd
    from autocomp.schedule_vnni import dot_kind, schedule_conv_vnni

    target = tvm.target.Target(target) if not isinstance(target, tvm.target.Target) else target
    funcs = {gv: f for gv, f in mod.functions_items()}
    out = tvm.IRModule(funcs, attrs=mod.attrs, global_infos=mod.global_infos)
    report: dict[str, str] = {}
    packed: dict[str, pk.Packing] = {}
    packable = pk.packable_weights(mod) if prepack else {}
    kind = dot_kind(target)  # a feature query per call: once per module
    for gv, func in list(mod.functions_items()):
        if not isinstance(func, tirx.PrimFunc):
            continue
        try:
            how = winograd.describe(func)
            if how is not None:
                new = winograd.schedule(func, target)
                if func.attrs and "global_symbol" in func.attrs:
                    new = new.with_attr("global_symbol", func.attrs["global_symbol"])
                out[gv] = new
                report[gv.name_hint] = f"scheduled ({how})"
                continue
            info = find_conv(s_tir.Schedule(func))
            w_index = pk.weight_param_index(func, info) if info is not None else -1
            pre = w_index in packable.get(gv.name_hint, set())
            # one fixed tile: measured within noise of the others
            vnni = schedule_conv_vnni(func, target, prepacked_weight=pre, kind=kind) if kind else None
            if vnni is not None:
                if pre:
                    packed[gv.name_hint] = pk.Packing(w_index, "dot", kind.lanes, kind.group, info.nhwc)
                if func.attrs and "global_symbol" in func.attrs:
                    vnni = vnni.with_attr("global_symbol", func.attrs["global_symbol"])
                out[gv] = vnni
                report[gv.name_hint] = f"scheduled ({kind.label})"
                continue
            tile, how = None, "default tile"
            if db is not None and info is not None:
                key = tuning.workload_key(func, target)
                record = db.lookup(key)
                if record is None and tune_trials > 0:
                    best, record = tuning.tune(func, target, tune_trials)
                    if best is not None:
                        db.store(key, record)
                    how = f"tuned now ({record['tried']} tiles)"
                elif record is not None:
                    how = "tile from the tuning database"
                if record is not None and record.get("tile"):
                    tile = tuple(record["tile"])
            new = schedule_conv(func, target, tile, prepacked_weight=pre)
            if new is not None and pre:
                packed[gv.name_hint] = pk.Packing(w_index, "dense", tile[0] if tile else pick_tile(info, target)[0],
                                                  ohwi=info.nhwc)
            if new is None:
                new = schedule_depthwise(func, target)
                how = "depthwise template" if new is not None else how
        except Exception as exc:  # noqa: BLE001 - a failed schedule keeps the default, never the search down
            report[gv.name_hint] = f"default schedule ({type(exc).__name__}: {str(exc).splitlines()[-1][:200]})"
            continue
        if new is None and "conv2d" in gv.name_hint:
            report[gv.name_hint] = "default schedule (not a plain NCHW or depthwise conv2d: grouped)"
            continue
        if new is None:
            new, how = _schedule_other(func, target)
            if new is None:
                continue
        if func.attrs and "global_symbol" in func.attrs:
            new = new.with_attr("global_symbol", func.attrs["global_symbol"])
        out[gv] = new
        report[gv.name_hint] = f"scheduled ({how})"
    return out, report, packed
