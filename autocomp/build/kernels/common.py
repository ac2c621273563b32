"""Schedule primitives every kernel template uses: the root block, constant extents, tile sizes that
divide, the epilogue collapsed into one block, zeroing and elementwise stages."""

from __future__ import annotations

from typing import Any

from tvm import s_tir


def root(sch: s_tir.Schedule) -> Any:
    """The function's root block, whose children are its stages."""
    return sch.get_sblock("root")


def const(x: Any) -> int | None:
    """The value of a constant extent or index, else None."""
    v = getattr(x, "value", None)  # IntImm lives in tvm.ir in 0.27 (not tirx.IntImm)
    return int(v) if isinstance(v, int) else None


def divisor_at_most(n: int, cap: int) -> int:
    """The largest divisor of n that is at most cap (tiles that divide need no tail)."""
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def collapse_epilogue(sch: s_tir.Schedule, conv_name: str):  # type: ignore[no-untyped-def]
    """Inline every elementwise block after the conv into the last one and keep the conv's result in a
    ``local`` buffer; returns (conv block, epilogue block). A conv that writes the function output
    directly gets a ``cache_write`` stage as its epilogue."""
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(root(sch))]
    after = names[names.index(conv_name) + 1 :]
    for nm in after[:-1]:
        sch.compute_inline(sch.get_sblock(nm))
    conv = sch.get_sblock(conv_name)
    if after:
        sch.set_scope(conv, 0, "local")
        return conv, sch.get_sblock(after[-1])
    epi = sch.cache_write(conv, 0, "local")
    return sch.get_sblock(conv_name), epi


def zero_accumulators(sch: s_tir.Schedule, block, loop) -> None:
    """Split the accumulator's zeroing out of `block` before `loop` (decompose_reduction): unroll the
    zeroing block's own loops (a register tile), vectorize the last. The loops it shares with `block`
    (above `loop`: the parallel work item, a tile loop within it) are left as they are: unrolling a
    tile loop unrolls the whole tile body with it (98 copies of a conv's inner loops took LLVM 12 s)."""
    shared = [i for i, lp in enumerate(sch.get_loops(block)) if sch.get(lp).same_as(sch.get(loop))][0]
    loops = sch.get_loops(sch.decompose_reduction(block, loop))
    sch.vectorize(loops[-1])
    for lp in loops[max(shared, 1):-1]:
        sch.unroll(lp)


def parallel_elementwise(sch: s_tir.Schedule, blk: Any) -> None:
    """Parallel over the fused leading loops of a stage until they hold enough work (16 iterations)."""
    loops = sch.get_loops(blk)
    if not loops:
        return
    ext = [const(sch.get(lp).extent) or 1 for lp in loops]
    if len(loops) >= 2:
        k = 1
        work = ext[0]
        while k < len(loops) - 1 and work < 16:
            work *= ext[k]
            k += 1
        p = sch.fuse(*loops[:k]) if k > 1 else loops[0]
        sch.parallel(p)
