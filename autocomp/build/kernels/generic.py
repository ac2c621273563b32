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

from autocomp.build.kernels.common import (collapse_epilogue, const, divisor_at_most, parallel_elementwise, root,
                                           zero_accumulators)
from autocomp.device.features import num_vector_regs, vector_bits


def _kinds(block: Any) -> str:
    return "".join("S" if iv.iter_type == tirx.IterVar.DataPar else "R" for iv in block.iter_vars)


def find_matmul(sch: s_tir.Schedule) -> tuple[str, tuple[int, ...], int, int, int] | None:
    """(block, batch extents, M, N, K) of a ``C[b.., i, j] += A[b.., i, k] * B[b.., k, j]`` block (j contiguous
    in B and C; A or B may omit the batch indices, i.e. broadcast), or None."""
    for blk_rv in sch.get_child_blocks(root(sch)):
        blk = sch.get(blk_rv)
        kinds = _kinds(blk)
        if len(kinds) < 3 or kinds != "S" * (len(kinds) - 1) + "R" or len(blk.writes) != 1:
            continue
        *vb, vi, vj, vk = [iv.var for iv in blk.iter_vars]
        pattern = {"a": False, "b": False}
        for r in blk.reads:
            idx = [rg.min for rg in r.region]
            if len(idx) < 2 or r.source.same_as(blk.writes[0].source):
                continue
            lead = idx[:-2]
            if len(lead) > len(vb) or not all(x.same_as(v) for x, v in zip(lead, vb[len(vb) - len(lead):])):
                continue
            if idx[-2].same_as(vi) and idx[-1].same_as(vk):
                pattern["a"] = True
            elif idx[-2].same_as(vk) and idx[-1].same_as(vj):
                pattern["b"] = True
        dims = [const(iv.dom.extent) for iv in blk.iter_vars]
        if all(pattern.values()) and all(d is not None for d in dims):
            return blk.name_hint, tuple(dims[:-3]), dims[-3], dims[-2], dims[-1]
    return None


def schedule_matmul(func: tirx.PrimFunc, target: Any) -> tirx.PrimFunc | None:
    """A single-row matmul (a classifier at batch 1) keeps the vector-over-j loop; one with rows (tokens,
    attention's batched matmuls) gets a register tile of rows x vectors (schedule_gemm)."""
    sch = s_tir.Schedule(func)
    found = find_matmul(sch)
    if found is None:
        return None
    name, batch, m, n, _k = found
    if m > 1 or batch:
        return schedule_gemm(sch, found, target)
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
    zero_accumulators(sch, conv_like, k)
    el = sch.get_loops(epi)[1:]
    if el:
        sch.vectorize(el[-1])
    return sch.mod["main"]


def gemm_tile(m: int, n: int, acc_bits: int, target: Any) -> tuple[int, int, int]:
    """(rows, vectors, lanes) of the register tile, within the accumulators the conv templates hold
    (dense.pick_tile: 24 with AVX-512's 32 registers, 16 on AArch64, 12 with AVX2's 16). Chosen for the
    least work counting the padding (M and N rounded up to the tile) times the loads per FMA
    (1 + (rows + vectors) / (rows x vectors)): 197 x 197 takes 8 x 3 vectors, 197 x 768 takes 6 x 4."""
    lanes = vector_bits(target) // acc_bits
    while lanes > 4 and lanes > n:
        lanes //= 2
    budget = 24 if vector_bits(target) == 512 else (16 if num_vector_regs(target) >= 32 else 12)
    best: tuple[float, tuple[int, int, int]] | None = None
    for nv in range(1, 5):
        for mr in range(1, min(m, budget // nv) + 1):
            work = -(-m // mr) * mr * -(-n // (nv * lanes)) * nv * lanes
            cost = work * (1 + (mr + nv) / (mr * nv))
            if best is None or cost < best[0]:
                best = (cost, (mr, nv, lanes))
    assert best is not None
    return best[1]


def schedule_gemm(sch: s_tir.Schedule, found: tuple[str, tuple[int, ...], int, int, int], target: Any) -> tirx.PrimFunc:
    """C tiles of (rows x vectors of j) accumulated in registers over the whole of k, one tile per parallel task.

    Why: one row at a time reloads all of B per row (ViT's 197 tokens: L2-bound), and the batched matmuls
    of attention had no template at all (scalar, one thread: 64% of DeiT-tiny's time). Each A value is
    broadcast to `vectors` FMAs and each B vector feeds `rows` FMAs. M and N are padded up to the tile
    (pad_einsum: 197 tokens -> 198 rows), so no tail scalarizes the tile.
    """
    name, batch, m, n, _k = found
    block = sch.get_sblock(name)
    acc = str(sch.get(block).writes[0].source.dtype)
    mr, nv, lanes = gemm_tile(m, n, tvm.DataType(acc).bits, target)
    pad = [1] * len(batch) + [mr if m % mr else 1, nv * lanes if n % (nv * lanes) else 1, 1]
    if any(p > 1 for p in pad):
        sch.pad_einsum(block, pad)
    conv_like, epi = collapse_epilogue(sch, name)
    *bl, i, j, k = sch.get_loops(conv_like)
    io, ii = sch.split(i, [None, mr])
    jo, jv, jl = sch.split(j, [None, nv, lanes])
    sch.reorder(*bl, io, jo, k, ii, jv, jl)
    outer = sch.fuse(*bl, io, jo)
    sch.reverse_compute_at(epi, outer)
    sch.parallel(outer)
    sch.unroll(ii)
    sch.unroll(jv)
    sch.vectorize(jl)
    zero_accumulators(sch, conv_like, k)
    el = sch.get_loops(epi)[1:]
    if el:
        sch.vectorize(el[-1])
    epi_name = sch.get(epi).name_hint
    for blk in sch.get_child_blocks(root(sch)):  # pad_einsum's copies of A and B into the padded shapes
        stage = sch.get(blk).name_hint
        if stage.endswith("_pad") and stage != epi_name:
            parallel_elementwise(sch, blk)
    return sch.mod["main"]


def schedule_rows(func: tirx.PrimFunc, target: Any) -> tirx.PrimFunc | None:
    """Row-wise normalisations (softmax, LayerNorm): every stage of one row computed together, rows parallel.

    Matches a function whose stages, once single-use ones are inlined, are reductions over the last
    axis and elementwise stages over the same rows (per element, or one value per row such as
    LayerNorm's mean), ending in an elementwise one. The elementwise template
    would run each stage over the whole tensor in turn (parallel per stage), so a softmax row went
    through memory four times; here one row's max, exponentials, sum and quotients stay in L1.
    None when the function is not of that form (global pooling reduces inner axes: not a row)."""
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(root(sch))
    if len(blocks) < 2:
        return None
    for b in blocks[:-1]:  # single-use stages only: softmax's exponentials feed the sum and the quotient
        if len(sch.get_consumers(b)) == 1:
            try:
                sch.compute_inline(b)
            except Exception:  # noqa: BLE001 - e.g. a stage whose consumer reads it at several points
                pass
    blocks = sch.get_child_blocks(root(sch))
    shapes = [(_kinds(sch.get(b)), [const(iv.dom.extent) for iv in sch.get(b).iter_vars]) for b in blocks]
    last_kinds, last_ext = shapes[-1]
    if "R" in last_kinds or len(last_ext) < 2 or len(sch.get_loops(blocks[-1])) != len(last_ext):
        return None
    reductions = 0
    for kinds, ext in shapes[:-1]:
        if kinds == "S" * (len(kinds) - 1) + "R" and ext[:-1] == last_ext[:-1]:
            reductions += 1
        elif kinds != "S" * len(kinds) or ext not in (last_ext, last_ext[:-1]):  # per element or per row
            return None
    if not reductions:
        return None
    loops = sch.get_loops(blocks[-1])
    row = sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0]
    sch.parallel(row)
    for b in reversed(blocks[:-1]):
        sch.compute_at(b, row)
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
