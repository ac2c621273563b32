"""Winograd F(4x4, 3x3) for the fp32 3x3 stride-1 convs of CPU builds.

Why: a direct fp32 conv already runs at ~85% of the CPU's FMA peak (dense.py), so the only way left
to make it faster is fewer multiplies. Winograd computes a 4x4 output tile from a 6x6 input tile with
36 multiplies per (input, output) channel pair instead of 144: per conv, a cheap input transform, 36
independent GEMMs ``[tiles, CI] x [CI, CO]``, a cheap output transform.

``scripts/bench_winograd.py`` times ResNet-18's four 3x3 shapes (conv + bias + ReLU, each kernel alone)
in the three modes; on Zen 4 (2 threads), direct / per-call transform / stored transform:
56x56x64 1.05 / 0.35 / 0.35 ms; 28x28x128 1.05 / 0.39 / 0.35; 14x14x256 1.05 / 0.65-1.29 / 0.41;
7x7x512 1.05 / 3.3-6.5 / 0.64. The per-call transform writes and reads all of U (9.4 MB at 256
channels), so at 16 tiles it ranged from a 35% gain to a 25% loss between runs, and the whole model was
not reliably faster (A/B of the thresholds 16 and 32, ResNet-18): MIN_TILES_PER_CALL is 32. A stored
7x7x512 transform is faster alone, but inside ResNet-18 its 38 MB of weights come from DRAM and it was
slower than direct: MIN_TILES_STORED is 8.

The transformed weights ``U = G g G^T`` are 36/9 = 4x the conv's weights. Where they come from is the
``winograd`` setting of the device profile (``WINOGRAD_MODES``):

* ``auto`` (default): U is computed inside the kernel on every call from the stored weights, so the
  artifact's weight bytes do not change. That costs O(CI x CO) per call against the GEMMs' O(tiles x
  CI x CO), so it is only done where the output has at least ``MIN_TILES_PER_CALL`` tiles (the late,
  small-image layers keep the direct template).
* ``stored``: U is computed once at build time and stored: every eligible conv gets Winograd, and its
  weights take 4x the bytes, which the memory figures report (a memory-for-speed trade the user asks
  for; precompute.py makes no such trade on its own).
* ``off``: the direct template everywhere.

Numerics: F(4,3) with TVM's interpolation points loses ~1e-6 relative in fp32 (the accuracy is still
measured on the compiled artifact). int8 / fp16 convs never take this path.

This module is the kernel: its TE definition (:func:`conv_func`, :func:`weight_func`) and its
schedule (:func:`schedule`). The Relax rewrite that puts it in the graph, and decides which convs take
it, is passes/winograd.py: it runs after channels_last (NHWC / OHWI) and before legalization; each
eligible conv2d becomes a ``call_tir`` of the kernel, whose op pattern lets FuseOps fuse its bias /
activation / residual epilogue into it, and of a weight-only kernel that precompute.fold runs at
build time. The kernel driver (driver.py) recognises the fused kernel (:func:`describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from autocomp.build.kernels.common import root
from autocomp.device.features import f32_lanes


TILE = 4  # output tile m of F(m x m, 3 x 3)
ALPHA = TILE + 2
ROWS = 6  # output tiles per GEMM register tile (x 2 vectors of output channels)
_OUT_EWISE_FUSABLE = 4  # TVM's OpPatternKind: FuseOps fuses elementwise consumers into such a kernel
_OPAQUE = 8
GROWS_WEIGHTS = "autocomp.grows_weights"  # PrimFunc attr: precompute.fold may store a bigger result


@lru_cache(maxsize=None)
def matrices(m: int = TILE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, G) of F(m, 3): Y = A^T [(G g G^T) * (B^T d B)] A, from TVM's Cook-Toom points."""
    from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

    a, b, g = _cook_toom_convolution(_interpolation_points(m + 2), m, 3)
    return np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), np.asarray(g, dtype=np.float64)


@dataclass(frozen=True)
class WinogradConv:
    """One eligible conv: NHWC data, OHWI weights, its padding (top, left, bottom, right)."""

    n: int
    h: int
    w: int
    ci: int
    co: int
    pad: tuple[int, int, int, int]
    vf: int  # output channels per packed weight vector group

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.h + self.pad[0] + self.pad[2] - 2, self.w + self.pad[1] + self.pad[3] - 2

    @property
    def tiles(self) -> int:
        oh, ow = self.out_hw
        return self.n * -(-oh // TILE) * -(-ow // TILE)


def _lin(coefs: Any, terms: list[Any], dtype: str) -> Any:
    """sum(c * t), with the zero coefficients dropped and +-1 as add / subtract (the transforms are
    mostly 0 and +-1: written out, LLVM emits only the arithmetic that is needed)."""
    import tvm

    out = None
    for c, t in zip(coefs, terms):
        c = float(c)
        if c == 0.0:
            continue
        v = t if c == 1.0 else (-t if c == -1.0 else t * tvm.tirx.const(c, dtype))
        out = v if out is None else out + v
    return out if out is not None else tvm.tirx.const(0.0, dtype)


def _shape(*dims: Any) -> tuple[Any, ...]:
    """int64 extents, as Relax's legalized kernels have: FuseTIR requires a consumer's buffer to be
    the same type as the producer's."""
    import tvm

    return tuple(tvm.tirx.IntImm("int64", int(d)) for d in dims)


def _select(index: Any, exprs: list[Any]) -> Any:
    """exprs[index] for a loop variable that the schedule unrolls (Simplify then drops the selects)."""
    import tvm

    e = exprs[-1]
    for i in range(len(exprs) - 2, -1, -1):
        e = tvm.tirx.Select(index == i, exprs[i], e)
    return e


def _transform_weight(w: Any, conv: WinogradConv, packed: bool) -> Any:
    """U[e, n, CO/VF, CI, VF] = G g G^T from OHWI weights, or from weights packed [CO/VF, 3, 3, CI, VF]."""
    from tvm import te

    _, _, g = matrices()
    a, vf = ALPHA, conv.vf
    dtype = str(w.dtype)

    def tap(cb: Any, kh: Any, kw: Any, ci: Any, v: Any) -> Any:
        return w[cb, kh, kw, ci, v] if packed else w[cb * vf + v, kh, kw, ci]

    shape = (conv.co // vf, conv.ci, vf)
    u1 = te.compute(_shape(a, 3, *shape), lambda e, kw, cb, ci, v: _select(
        e, [_lin(g[k], [tap(cb, kh, kw, ci, v) for kh in range(3)], dtype) for k in range(a)]), name="winograd_U1")
    return te.compute(_shape(a, a, *shape), lambda e, nu, cb, ci, v: _select(
        nu, [_lin(g[k], [u1[e, kw, cb, ci, v] for kw in range(3)], dtype) for k in range(a)]), name="winograd_U")


def weight_func(conv: WinogradConv, stored: bool) -> Any:
    """The weight-only kernel precompute.fold runs at build time: OHWI -> U (``stored``), else OHWI ->
    ``[CO/VF, 3, 3, CI, VF]`` (the same bytes, in the order the per-call transform reads them)."""
    from tvm import te

    w = te.placeholder(_shape(conv.co, 3, 3, conv.ci), "float32", name="w")
    if stored:
        out = _transform_weight(w, conv, packed=False)
    else:
        vf = conv.vf
        out = te.compute(_shape(conv.co // vf, 3, 3, conv.ci, vf), lambda cb, kh, kw, ci, v: w[cb * vf + v, kh, kw, ci],
                         name="winograd_wpack")
    func = te.create_prim_func([w, out]).without_attr("global_symbol").with_attr("op_pattern", _OPAQUE)
    return func.with_attr(GROWS_WEIGHTS, True) if stored else func


def conv_func(conv: WinogradConv, stored: bool) -> Any:
    """The conv: pad + input transform, 36 GEMMs over padded tiles, output transform."""
    import tvm
    from tvm import te

    a_mat, b_mat, _ = matrices()
    m, a, vf = TILE, ALPHA, conv.vf
    oh, ow = conv.out_hw
    nh, nw = -(-oh // m), -(-ow // m)
    tiles = conv.n * nh * nw
    p_pad = -(-tiles // ROWS) * ROWS  # whole register tiles: the tail tiles compute on padding, unused
    pt, pl = conv.pad[0], conv.pad[1]
    dtype = "float32"
    x = te.placeholder(_shape(conv.n, conv.h, conv.w, conv.ci), dtype, name="x")
    if stored:
        u = te.placeholder(_shape(a, a, conv.co // vf, conv.ci, vf), dtype, name="u")
        weight = u
    else:
        weight = te.placeholder(_shape(conv.co // vf, 3, 3, conv.ci, vf), dtype, name="wpacked")
        u = _transform_weight(weight, conv, packed=True)
    zero = tvm.tirx.const(0.0, dtype)
    pad = te.compute(_shape(conv.n, nh * m + 2, nw * m + 2, conv.ci), lambda n, h, w, c: tvm.tirx.if_then_else(
        tvm.tirx.all(h >= pt, h < pt + conv.h, w >= pl, w < pl + conv.w), x[n, h - pt, w - pl, c], zero),
        name="winograd_pad")

    def at(p: Any, r: Any, s: Any, c: Any) -> Any:
        return pad[tvm.tirx.min(p // (nh * nw), conv.n - 1), p // nw % nh * m + r, p % nw * m + s, c]

    v1 = te.compute(_shape(a, a, p_pad, conv.ci), lambda e, s, p, c: _select(
        e, [_lin(b_mat[:, k], [at(p, r, s, c) for r in range(a)], dtype) for k in range(a)]), name="winograd_V1")
    v = te.compute(_shape(a, a, p_pad, conv.ci), lambda e, nu, p, c: _select(
        nu, [_lin(b_mat[:, k], [v1[e, r, p, c] for r in range(a)], dtype) for k in range(a)]), name="winograd_V")
    ci = te.reduce_axis((0, conv.ci), "ci")
    mm = te.compute(_shape(a, a, p_pad, conv.co), lambda e, nu, p, co: te.sum(
        v[e, nu, p, ci] * u[e, nu, co // vf, ci, co % vf], axis=ci), name="winograd_M")
    y1 = te.compute(_shape(m, a, p_pad, conv.co), lambda i, s, p, co: _select(
        i, [_lin(a_mat[:, k], [mm[r, s, p, co] for r in range(a)], dtype) for k in range(m)]), name="winograd_Y1")
    yt = te.compute(_shape(m, m, p_pad, conv.co), lambda i, j, p, co: _select(
        j, [_lin(a_mat[:, k], [y1[i, s, p, co] for s in range(a)], dtype) for k in range(m)]), name="winograd_Yt")
    y = te.compute(_shape(conv.n, oh, ow, conv.co), lambda n, h, w, co: yt[h % m, w % m, n * nh * nw + h // m * nw + w // m, co],
                   name="winograd_Y")
    func = te.create_prim_func([x, weight, y]).without_attr("global_symbol")
    return func.with_attr("op_pattern", _OUT_EWISE_FUSABLE)


# ----------------------------------------------------------------------------------------------
# schedule


def _block_names(func: Any) -> list[str]:
    """The names of a PrimFunc's top-level blocks, in order."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    return [sch.get(b).name_hint for b in sch.get_child_blocks(root(sch))]


def describe(func: Any) -> str | None:
    """For the per-kernel report: how a Winograd kernel gets its transformed weights; None when `func`
    is not one."""
    names = _block_names(func)
    if "winograd_M" not in names:
        return None
    return f"winograd F({TILE}x{TILE},3x3), weights {'transformed per call' if 'winograd_U' in names else 'stored transformed'}"


def schedule(func: Any, target: Any) -> Any:
    """The fused Winograd kernel, scheduled: each stage parallel over its outer loop and vectorized
    over channels; the GEMMs as register tiles of ROWS tiles x 2 vectors of output channels (measured
    at ~90% of the FMA peak on Zen 4); the output transform computed per 4x4 tile inside the
    epilogue's loop, so bias / activation / residual are applied before the tile is stored."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(root(sch))]

    lanes = f32_lanes(target)
    m = TILE

    def in_registers(block: Any, outer: int) -> None:
        """A small stage computed inside a tile: its loops after the first `outer` unrolled, the last
        (channels) vectorized."""
        loops = sch.get_loops(block)[outer:]
        for lp in loops[:-1]:
            sch.unroll(lp)
        sch.vectorize(loops[-1])

    # weights: per-call transform (`auto`), parallel over (CO / VF, CI), vectorized over VF
    if "winograd_U1" in names:
        ub, u1 = sch.get_sblock("winograd_U"), sch.get_sblock("winograd_U1")
        e, nu, cb, ci, v = sch.get_loops(ub)
        sch.reorder(cb, ci, e, nu, v)
        outer = sch.fuse(cb, ci)
        sch.parallel(outer)
        sch.compute_at(u1, outer)
        in_registers(u1, 1)
        sch.unroll(e)
        sch.unroll(nu)
        sch.vectorize(v)
    # input: padding inlined, per (tile, channel vector) the 6x6 transform in registers
    vb, v1 = sch.get_sblock("winograd_V"), sch.get_sblock("winograd_V1")
    e, nu, p, c = sch.get_loops(vb)
    ci_lanes = _pow2_divisor(_extent(sch, c), lanes)
    co_, ci_ = sch.split(c, [None, ci_lanes])
    sch.reorder(p, co_, e, nu, ci_)
    sch.parallel(p)
    sch.compute_at(v1, co_)
    sch.compute_inline(sch.get_sblock("winograd_pad"))
    in_registers(v1, 2)
    sch.unroll(e)
    sch.unroll(nu)
    sch.vectorize(ci_)
    # GEMMs
    mb = sch.get_sblock("winograd_M")
    e, nu, p, co, ci = sch.get_loops(mb)
    vf = int(sch.get(mb).reads[1].source.shape[-1])  # U's packed VF
    vec = min(lanes, vf)
    en = sch.fuse(e, nu)
    po, pi = sch.split(p, [None, ROWS])
    coo, cov, coi = sch.split(co, [None, vf // vec, vec])
    sch.reorder(en, po, coo, ci, pi, cov, coi)
    sch.parallel(sch.fuse(en, po, coo))
    sch.unroll(pi)
    sch.unroll(cov)
    sch.vectorize(coi)
    init = sch.decompose_reduction(mb, ci)
    sch.vectorize(sch.get_loops(init)[-1])
    # output transform inside the epilogue's tile loop
    y_name = "winograd_Y"
    after = names[names.index(y_name) + 1:]
    for nm in after[:-1]:
        sch.compute_inline(sch.get_sblock(nm))
    if after:
        sch.compute_inline(sch.get_sblock(y_name))
        epi = sch.get_sblock(after[-1])
    else:
        epi = sch.get_sblock(y_name)
    n, h, w, co = sch.get_loops(epi)
    th, vh = sch.split(h, [None, m])
    tw, vw = sch.split(w, [None, m])
    coo, coi = sch.split(co, [None, _pow2_divisor(_extent(sch, co), lanes)])
    sch.reorder(n, th, tw, coo, vh, vw, coi)
    sch.parallel(sch.fuse(n, th, tw))
    yt, y1 = sch.get_sblock("winograd_Yt"), sch.get_sblock("winograd_Y1")
    sch.compute_at(yt, coo)
    sch.compute_at(y1, coo)
    in_registers(y1, 2)
    in_registers(yt, 2)
    sch.unroll(vh)
    sch.unroll(vw)
    sch.vectorize(coi)
    return sch.mod["main"]


def _extent(sch: Any, loop: Any) -> int:
    return int(sch.get(loop).extent)


def _pow2_divisor(n: int, cap: int) -> int:
    """The widest vector (a power of two, at most `cap` lanes) that divides n channels."""
    v = cap
    while v > 1 and n % v:
        v //= 2
    return v
