"""An x86 u8 x s8 dot-product tensor intrinsic for AVX2 without VNNI (``vpmaddubsw`` + ``vpmaddwd``), for
weights known to be small: 4 channels per int32 lane, as VNNI's ``vpdpbusd`` sums them.

``vpmaddubsw`` multiplies unsigned bytes by signed bytes and adds adjacent pairs into int16 lanes,
saturating at 2^15; ``vpmaddwd`` against ones then adds adjacent int16 pairs into int32 lanes. With
|weight| <= 64, a pair is at most 2 x 255 x 64 = 32640: it never saturates, so the result is exact
(only the dot template's sub-byte weights, whose unpacking block states their bound, may use it:
kernels/dot.py, passes/packed_int4.py). Per 32 multiply-adds: 3 uops (with the accumulate) where the
int16 pair form (pmaddwd.py) needs 4, and the data tile stays uint8 (no widening stage).

    C[i] += sum_k int32(A[k]) * int32(B[i, k])   A: 4 uint8 (broadcast to every lane), B: 8 x 4 int8,
                                                  C: 8 x int32

TVMScript prim_funcs must live in a source file (the parser reads them with ``inspect``).
"""

from __future__ import annotations

from tvm.script import tirx as T

MAX_ABS_WEIGHT = 64  # 2 x 255 x 64 = 32640 < 2^15: no pair sum saturates


def _make():  # type: ignore[no-untyped-def]
    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((8, 4), "int8", offset_factor=1),
        C: T.Buffer((8,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:8], A[0:4], B[0:8, 0:4])
            T.writes(C[0:8])
            for i in T.serial(0, 8):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((8, 4), "int8", offset_factor=1),
        C: T.Buffer((8,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:8], A[0:4], B[0:8, 0:4])
            T.writes(C[0:8])
            C[T.ramp(T.int32(0), 1, 8)] = C.vload([0], dtype="int32x8") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.ub.sw"),
                    T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), 8),
                                  dtype="uint8x32"),
                    B.vload([0, 0], dtype="int8x32"),
                    dtype="int16x16",
                ),
                T.broadcast(T.int16(1), 16),
                dtype="int32x8",
            )

    return desc, impl


NAME = "autocomp_dot_8x4_u8i8i32_pmaddubsw_local"
_registered = False


def register() -> str:
    """Register the intrinsic once per process; returns its name."""
    global _registered
    if not _registered:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(NAME, *_make(), override=True)
        _registered = True
    return NAME
