"""Depthwise conv2d template: each output channel reads one input plane (groups == channels)."""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx

from autocomp.build.kernels.common import collapse_epilogue, divisor_at_most, parallel_elementwise, root, zero_accumulators
from autocomp.build.kernels.conv import (
    ConvInfo,
    conv_loops,
    find_depthwise,
    pad_loops,
    schedule_tile_epilogue,
)
from autocomp.device.features import vector_bits


def depthwise_tile(h: int, w: int, lanes: int) -> tuple[int, int]:
    """(TY, VX): a whole row up to two vectors wide, else the largest divisor of the width up to one
    vector; rows until the tile holds about 8 vectors (small maps become one tile per plane)."""
    vx = w if w <= 2 * lanes else divisor_at_most(w, lanes)
    per_row = -(-vx // lanes)
    return divisor_at_most(h, max(1, 8 // per_row)), vx


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
    top = root(sch)
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
    zero_accumulators(sch, conv, rc)
    el = sch.get_loops(epi)[2:]
    if len(el) >= 2:
        sch.unroll(el[-2])
    if el:
        sch.vectorize(el[-1])
    for b in sch.get_child_blocks(top):
        if sch.get(b).name_hint.startswith("pad_temp"):
            parallel_elementwise(sch, b)
    return sch.mod["main"]


def _schedule_depthwise_nhwc(sch: s_tir.Schedule, info: ConvInfo, lanes: int) -> tirx.PrimFunc:
    """Channels-last depthwise: channels are the SIMD axis (a pixel's channels are one contiguous
    load, whatever the stride), the weights repacked per call to ``[C/L, KH, KW, L]`` (C x KH x KW
    values: negligible), a register tile of TY x TX pixels sharing each weight vector, the kernel
    window unrolled, parallel over (batch, row block, column block, channel block)."""
    while lanes > 1 and info.o % lanes:
        lanes //= 2
    tx = divisor_at_most(info.w, 8)
    ty = divisor_at_most(info.h, max(1, 16 // tx))
    top = root(sch)
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
    zero_accumulators(sch, conv, rc)
    schedule_tile_epilogue(sch, epi, info, lanes)
    wo, wh, ww, wi = sch.get_loops(wpack)
    wa, wb = sch.split(wo, [None, lanes])
    sch.reorder(wa, wh, ww, wi, wb)
    for b in sch.get_child_blocks(top):
        if sch.get(b).name_hint.startswith("pad_temp"):
            pad_loops(sch, b, info)
    return sch.mod["main"]
