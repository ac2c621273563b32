"""The conv2d blocks of TVM's legalized kernels, recognised structurally, and what the conv templates
(dense, depthwise, dot product) share: loop order by layout, packed weight layouts, the accumulator
layout, the per-tile epilogue and the padding stage.

CPU builds are channels-last (NHWC data, OHWI weights: passes/layout.py); the templates also take
NCHW / OIHW (GPU graphs and tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, tirx

from autocomp.build.kernels.common import const, parallel_elementwise, root


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
    group_out: int = 0  # grouped conv: output channels per group (0: dense); `c` is then the input channels per group

    @property
    def nhwc(self) -> bool:
        return self.layout == "NHWC"


@dataclass(frozen=True)
class Layout:
    """Where TOPI's conv block puts things, by position in the canonical loop order
    (n, f, y, x, rc, ry, rx)."""

    loops: tuple[int, ...]  # the block's iter var of each canonical loop
    weight: tuple[int, ...]  # the canonical loops indexing the weight, as stored
    data_channel: int  # the data's channel axis


LAYOUTS = {
    "NCHW": Layout((0, 1, 2, 3, 4, 5, 6), (1, 4, 5, 6), 1),  # weight OIHW: [f, rc, ry, rx]
    "NHWC": Layout((0, 3, 1, 2, 6, 4, 5), (1, 5, 6, 4), 3),  # weight OHWI: [f, ry, rx, rc]
}


def conv_loops(sch: s_tir.Schedule, block, info: ConvInfo) -> list:
    """The conv block's loops as (n, f, y, x, rc, ry, rx), whatever its layout."""
    loops = sch.get_loops(block)
    return [loops[i] for i in LAYOUTS[info.layout].loops]


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


def find_conv(sch: s_tir.Schedule) -> ConvInfo | None:
    """The (single) dense conv2d block of the function (NHWC / OHWI or NCHW / OIHW), or None.

    Recognised structurally: 7 iter vars ``SSSSRRR``, a 4-d write, two 4-d reads of which one (the
    weight) is indexed exactly by ``[f, rc, ry, rx]`` (NCHW: iter vars n, f, y, x, rc, ry, rx) or
    ``[f, ry, rx, rc]`` (NHWC / OHWI: iter vars n, y, x, f, ry, rx, rc). A grouped conv (RegNet, ResNeXt)
    is the same block with the data's channel read at ``f // (O/G) * (C/G) + rc``: matched with
    `group_out` = O/G when C/G >= MIN_GROUP_CHANNELS (depthwise convs, C/G = 1, have their own template).
    """
    found = None
    for blk, ivs, dims in conv_blocks(sch):
        out = blk.writes[0].source
        for name, layout in LAYOUTS.items():
            canon = [ivs[i].var for i in layout.loops]  # n, f, y, x, rc, ry, rx
            weight_idx = [canon[i] for i in layout.weight]
            wr = None
            dr = None
            group_out = 0
            for i, r in enumerate(blk.reads):
                idx = [rg.min for rg in r.region]
                if r.source.same_as(out) or len(idx) != 4:
                    continue
                if all(a.same_as(b) for a, b in zip(idx, weight_idx)):
                    wr = i
                elif idx[0].same_as(canon[0]) and idx[layout.data_channel].same_as(canon[4]):
                    dr = i
                elif idx[0].same_as(canon[0]) and (g := _group_out(idx[layout.data_channel], canon[1], canon[4])):
                    dr, group_out = i, g
            if wr is None or dr is None:
                continue
            n, o, h, w, c, kh, kw = [dims[i] for i in layout.loops]
            if group_out and c < MIN_GROUP_CHANNELS:
                continue
            found = ConvInfo(blk.name_hint, n, o, h, w, c, kh, kw, str(out.dtype), dr, wr, name, group_out)
            break
    return found


MIN_GROUP_CHANNELS = 4  # input channels per group for the dense template to take a grouped conv


def _group_out(index, f, rc) -> int:  # type: ignore[no-untyped-def]
    """O/G when `index` is TOPI's grouped-conv channel ``f // (O/G) * (C/G) + rc``, else 0."""
    if not (isinstance(index, tirx.Add) and index.b.same_as(rc) and isinstance(index.a, tirx.Mul)):
        return 0
    div = index.a.a
    if not (isinstance(div, tirx.FloorDiv) and div.a.same_as(f)):
        return 0
    return const(div.b) or 0


def conv_blocks(sch: s_tir.Schedule):  # type: ignore[no-untyped-def]
    """(block, iter vars, constant extents) of each conv-shaped block: ``SSSSRRR`` iter vars with
    constant extents, one write, at least two reads."""
    for blk_rv in sch.get_child_blocks(root(sch)):
        blk = sch.get(blk_rv)
        ivs = blk.iter_vars
        kinds = "".join("S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in ivs)
        if kinds != "SSSSRRR" or len(blk.writes) != 1 or len(blk.reads) < 2:
            continue
        dims = [const(iv.dom.extent) for iv in ivs]
        if all(d is not None for d in dims):
            yield blk, ivs, dims


def find_depthwise(sch: s_tir.Schedule) -> ConvInfo | None:
    """The depthwise conv2d block (groups == channels, one input channel per group), or None.

    TOPI's grouped conv reads ``pad[n, (f // (O/G)) * (C/G) + rc, ...]``; with C/G == 1 and O == G the
    reduction over rc has extent 1 and the weight is ``[f, 0, ry, rx]``. Recognised by: ``SSSSRRR``,
    rc of extent 1, output channels == input channels of the padded data, weight read ``[f, rc, ry, rx]``
    (NHWC / OHWI: iter vars n, y, x, f, ry, rx, rc and the weight read ``[f, ry, rx, rc]``).
    """
    for blk, ivs, dims in conv_blocks(sch):
        out = blk.writes[0].source
        for name, layout in LAYOUTS.items():
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
                elif const(r.source.shape[layout.data_channel]) == o:
                    dr = i
            if wr is not None and dr is not None:
                return ConvInfo(blk.name_hint, n, o, h, w, c, kh, kw, str(out.dtype), dr, wr, name)
    return None


def schedule_tile_epilogue(sch: s_tir.Schedule, epi, info: ConvInfo, lanes: int) -> None:
    """The epilogue's loops inside one tile: NCHW (n, f, y, x) vectorized along x, the NCHW store
    being contiguous in x; NHWC (n, y, x, f) along the channels, one register at a time."""
    el = sch.get_loops(epi)[1:]
    # an epilogue that broadcasts the conv's output over a larger tensor (squeeze-excitation's scale fused
    # into its 1x1 conv) spans the whole feature map, not one tile: unrolled, it is thousands of copies of
    # the requantize chain and LLVM takes minutes. Such loops stay loops.
    unroll = _product(sch, el[:-1]) * ((const(sch.get(el[-1]).extent) or lanes) // lanes) <= MAX_UNROLLED_EPILOGUE
    if not info.nhwc:
        if len(el) >= 2 and unroll:
            sch.unroll(el[-2])
        sch.vectorize(el[-1])
        return
    f = el[-1]
    extent = const(sch.get(f).extent) or lanes
    if extent > lanes and extent % lanes == 0:
        fv, f = sch.split(f, [None, lanes])
        if unroll:
            sch.unroll(fv)
    if unroll:
        for lp in el[:-1]:
            sch.unroll(lp)
    sch.vectorize(f)


MAX_UNROLLED_EPILOGUE = 256  # vector bodies; a tile's epilogue is at most budget (16) x a few


def _product(sch: s_tir.Schedule, loops) -> int:
    n = 1
    for lp in loops:
        n *= const(sch.get(lp).extent) or MAX_UNROLLED_EPILOGUE
    return n


def pad_loops(sch: s_tir.Schedule, blk, info: ConvInfo) -> None:
    """The padding copy: parallel over the outer loops; NHWC copies whole pixels, channels vectorized."""
    parallel_elementwise(sch, blk)
    if info.nhwc:
        loops = sch.get_loops(blk)
        if len(loops) >= 2 and (const(sch.get(loops[-1]).extent) or 0) > 1:
            sch.vectorize(loops[-1])
