"""int8 dot-product tensor intrinsics for ARMv8.0 NEON without SDOT (the Pi 4's Cortex-A72), from
widening int16 products.

Both have SDOT's description (`sdot.dot_desc`: 4 int32 lanes, each the dot product of G data bytes with
that lane's G weight bytes; weights packed [O/4, I/G, KH, KW, 4, G]), with another implementation:

* G = 4: D = the 4 data bytes repeated (one 32-bit broadcast); lo = smull(W[0:8], D), hi = smull(W[8:16],
  D) give 8 int16 products each (lanes 0-1, lanes 2-3); C += addp(saddlp(lo), saddlp(hi)).
* G = 16 (C % 16 == 0): per lane i, t_i = smull(W[i, 0:8], D[0:8]) + smull(W[i, 8:16], D[8:16]) (LLVM
  makes the second an smlal: two products per int16 lane), then saddlp per lane and two levels of addp:
  16 instructions per 64 multiply-adds where G = 4 needs 24.

Why: the A72 issues every ASIMD integer multiply on its F0 pipe only, so the int32-lane template (``mla
.4s``, 4 lanes) tops out at 4 multiply-adds a cycle and spent 5 instructions widening each data byte;
``smull`` makes 8 products per instruction from int8 operands. Exact: data is int8 (uint8 activations are
shifted by -128, as for SDOT, lower/relax_ops.py) and weights are symmetric int8 (|w| <= 127), so one
product is at most 16,256 and two fit an int16 lane (32,512 < 32,767); every further sum is int32.
"""

from __future__ import annotations

from tvm.script import tirx as T

from autocomp.build.kernels.intrin.sdot import dot_desc

SMULL_INTRIN_LOCAL = "autocomp_dot_4x4_i8i8i32_smull_local"  # accumulator C in a local (register) tile


@T.prim_func(s_tir=True)
def _impl(
    A: T.Buffer((4,), "int8", offset_factor=1),
    B: T.Buffer((4, 4), "int8", offset_factor=1),
    C: T.Buffer((4,), "int32", offset_factor=1, scope="local"),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        C[T.ramp(T.int32(0), 1, 4)] = C.vload([0], dtype="int32x4") + T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.addp.v4i32"),
            T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                    B.vload([0, 0], dtype="int8x8"),
                    T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 2), dtype="int8x8"),
                    dtype="int16x8",
                ),
                dtype="int32x4",
            ),
            T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                    B.vload([2, 0], dtype="int8x8"),
                    T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 2), dtype="int8x8"),
                    dtype="int16x8",
                ),
                dtype="int32x4",
            ),
            dtype="int32x4",
        )


SMULL16_INTRIN_LOCAL = "autocomp_dot_4x16_i8i8i32_smull_local"


@T.prim_func(s_tir=True)
def _impl16(
    A: T.Buffer((16,), "int8", offset_factor=1),
    B: T.Buffer((4, 16), "int8", offset_factor=1),
    C: T.Buffer((4,), "int32", offset_factor=1, scope="local"),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:16], B[0:4, 0:16])
        T.writes(C[0:4])
        C[T.ramp(T.int32(0), 1, 4)] = C.vload([0], dtype="int32x4") + T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.addp.v4i32"),
            T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.addp.v4i32"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                    T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                            B.vload([0, 0], dtype="int8x8"), A.vload([0], dtype="int8x8"),
                                            dtype="int16x8")
                    + T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                              B.vload([0, 8], dtype="int8x8"), A.vload([8], dtype="int8x8"),
                                              dtype="int16x8"),
                    dtype="int32x4",
                ),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                    T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                            B.vload([1, 0], dtype="int8x8"), A.vload([0], dtype="int8x8"),
                                            dtype="int16x8")
                    + T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                              B.vload([1, 8], dtype="int8x8"), A.vload([8], dtype="int8x8"),
                                              dtype="int16x8"),
                    dtype="int32x4",
                ),
                dtype="int32x4",
            ),
            T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.addp.v4i32"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                    T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                            B.vload([2, 0], dtype="int8x8"), A.vload([0], dtype="int8x8"),
                                            dtype="int16x8")
                    + T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                              B.vload([2, 8], dtype="int8x8"), A.vload([8], dtype="int8x8"),
                                              dtype="int16x8"),
                    dtype="int32x4",
                ),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                    T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                            B.vload([3, 0], dtype="int8x8"), A.vload([0], dtype="int8x8"),
                                            dtype="int16x8")
                    + T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                                              B.vload([3, 8], dtype="int8x8"), A.vload([8], dtype="int8x8"),
                                              dtype="int16x8"),
                    dtype="int32x4",
                ),
                dtype="int32x4",
            ),
            dtype="int32x4",
        )


_VARIANTS = {4: (SMULL_INTRIN_LOCAL, _impl), 16: (SMULL16_INTRIN_LOCAL, _impl16)}
_registered: set[int] = set()


def register(group: int = 4) -> str:
    """Register the variant of `group` input channels per lane once per process; returns its name."""
    name, impl = _VARIANTS[group]
    if group not in _registered:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(name, dot_desc(group), impl, override=True)
        _registered.add(group)
    return name
