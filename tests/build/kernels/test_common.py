"""Schedule primitives the kernel templates share (kernels/common.py)."""

from tvm import s_tir, te, tirx

from autocomp.build.kernels.common import zero_accumulators


def test_zeroing_unrolls_its_register_tile_but_not_the_tile_loop_it_shares():
    """A work item (parallel) running several tiles (a serial loop) zeroes each tile's accumulators:
    only the zeroing's own loops are unrolled; unrolling the shared tile loop would copy the whole tile
    body once per tile (98 copies took LLVM 12 s in a w4 conv, kernels/dot.py)."""
    a = te.placeholder((64, 32), "float32", name="a")
    b = te.placeholder((32, 64), "float32", name="b")
    k = te.reduce_axis((0, 32), name="k")
    c = te.compute((64, 64), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="c")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    blk = sch.get_sblock("c")
    i, j, kk = sch.get_loops(blk)
    work, tile, ii = sch.split(i, [4, 8, 2])
    jo, jv = sch.split(j, [None, 8])
    sch.reorder(work, tile, jo, kk, ii, jv)
    sch.parallel(work)
    zero_accumulators(sch, blk, kk)
    kind = lambda lp: tirx.ForKind(int(sch.get(lp).kind)).name  # noqa: E731
    update = [kind(lp) for lp in sch.get_loops(blk)]  # work, tile, jo, k, ii, jv
    init = [kind(lp) for lp in sch.get_loops(sch.get_sblock("c_init"))]  # work, tile, jo, ii, jv
    assert update == ["PARALLEL", "SERIAL", "SERIAL", "SERIAL", "SERIAL", "SERIAL"], update
    assert init == ["PARALLEL", "SERIAL", "SERIAL", "UNROLLED", "VECTORIZED"], init
