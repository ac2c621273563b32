"""Schedules for the kernels around the convs: dense layers, elementwise chains, pooling.

Why: TVM 0.27 compiles an unscheduled PrimFunc to scalar loops on one thread. Around the convs that
cost more than the convs' own gap to onnxruntime: the requantize chains after residual adds (0.2 ms
each on ResNet-18 int8), max pooling, and a classifier matmul at about 1 GFLOP/s. Three small
templates, each recognised structurally; anything else keeps TVM's default, and the build report says
which template every kernel got.

* matmul ``C[i, j] = sum_k A[i, k] * B[k, j]`` (B is the classifier weight, already transposed at build
  time by precompute.py): vectorized over j, a register tile of up to 4 vectors, parallel over
  (i, j-tile), reduction inside, epilogue (bias, requantize) fused after each tile.
* elementwise chains (every block spatial): everything inlined into the last block, parallel over
  all loops but the innermost, which LLVM vectorizes.
* other reductions (pooling, mean): producers inlined, parallel over the leading spatial loops.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import s_tir, tirx

from autocomp.build.kernels.common import collapse_epilogue, const, divisor_at_most, root, vectorize_init
from autocomp.device.features import vector_bits


def _kinds(block: Any) -> str:
    return "".join("S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in block.iter_vars)


def find_matmul(sch: s_tir.Schedule) -> tuple[str, int, int, int] | None:
    """(block, M, N, K) of a ``C[i, j] += A[i, k] * B[k, j]`` block (j contiguous in B and C), or None."""
    for blk_rv in sch.get_child_blocks(root(sch)):
        blk = sch.get(blk_rv)
        if _kinds(blk) != "SSR" or len(blk.writes) != 1:
            continue
        vi, vj, vk = [iv.var for iv in blk.iter_vars]
        pattern = {"a": False, "b": False}
        for r in blk.reads:
            idx = [rg.min for rg in r.region]
            if len(idx) != 2 or r.source.same_as(blk.writes[0].source):
                continue
            if idx[0].same_as(vi) and idx[1].same_as(vk):
                pattern["a"] = True
            elif idx[0].same_as(vk) and idx[1].same_as(vj):
                pattern["b"] = True
        dims = [const(iv.dom.extent) for iv in blk.iter_vars]
        if all(pattern.values()) and all(d is not None for d in dims):
            return blk.name_hint, dims[0], dims[1], dims[2]
    return None


def schedule_matmul(func: tirx.PrimFunc, target: Any) -> tirx.PrimFunc | None:
    sch = s_tir.Schedule(func)
    found = find_matmul(sch)
    if found is None:
        return None
    name, _m, n, _k = found
    acc = str(sch.get(sch.get_sblock(name)).writes[0].source.dtype)
    lanes = vector_bits(target) // tvm.DataType(acc).bits
    vf = next((v for v in (4 * lanes, 2 * lanes, lanes, lanes // 2, lanes // 4) if v >= 1 and n % v == 0), 1)
    conv_like, epi = collapse_epilogue(sch, name)
    i, j, k = sch.get_loops(conv_like)
    jo, ji = sch.split(j, [None, vf])
    sch.reorder(i, jo, k, ji)
    outer = sch.fuse(i, jo)
    sch.reverse_compute_at(epi, outer)
    sch.parallel(outer)
    if vf > lanes:
        jv, jl = sch.split(ji, [None, lanes])
        sch.unroll(jv)
        sch.vectorize(jl)
    else:
        sch.vectorize(ji)
    vectorize_init(sch, sch.decompose_reduction(conv_like, k))
    el = sch.get_loops(epi)[1:]
    if el:
        sch.vectorize(el[-1])
    return sch.mod["main"]


def schedule_elementwise(func: tirx.PrimFunc, target: Any) -> tirx.PrimFunc | None:
    """All-spatial chains: one fused, parallel, vectorized loop. Reductions other than matmul and conv
    (pooling, mean): inlined producers, parallel over the leading spatial loops. None when neither."""
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(root(sch))
    if not blocks:
        return None
    for b in blocks[:-1]:  # pad / divide / round / clip stages into their consumer
        try:
            sch.compute_inline(b)
        except Exception:  # noqa: BLE001 - a stage with several consumers stays a stage
            pass
    blocks = sch.get_child_blocks(root(sch))
    scheduled = False
    for b in blocks:
        blk = sch.get(b)
        kinds = _kinds(blk)
        loops = sch.get_loops(b)
        if not loops or len(kinds) != len(loops):
            continue
        if "R" not in kinds:
            # parallel over all but the innermost loop, which LLVM vectorizes itself: measured on the
            # requantize chains, 4-17x faster than TVM's default and 2-8x faster than vectorizing a
            # flattened loop in TIR (float -> int8 casts and pads scalarize there)
            if len(loops) == 1:
                loops = sch.split(loops[0], [None, divisor_at_most(const(sch.get(loops[0]).extent) or 1, 1024)])
            sch.parallel(sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0])
            scheduled = True
        else:
            spatial = len(kinds) - len(kinds.lstrip("S"))
            if spatial >= 2:
                sch.parallel(sch.fuse(*loops[: spatial - 1]))
                scheduled = True
    return sch.mod["main"] if scheduled else None
