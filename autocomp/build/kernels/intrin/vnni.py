"""A working AVX-512 VNNI dot-product tensor intrinsic for TVM 0.27 (u8 x s8 -> s32, 16 lanes x 4).

TVM's stock ``dot_16x4_vnni`` (tvm/s_tir/tensor_intrin/x86.py) passes three ``<16 x i32>`` operands to
``llvm.x86.avx512.vpdpbusd.512``; the wheel's LLVM 22 declares it ``(<16 x i32>, <64 x i8>, <64 x i8>)``
so every kernel tensorized with it fails "LLVM module verification failed". This one passes byte
vectors, written as one expression (let-bindings make the codegen spill every vector to the stack).

Semantics (same description as the stock one):  C[i] += sum_k int32(A[k]) * int32(B[i, k]),
A: 4 x uint8 (broadcast to the 16 lanes), B: 16 x 4 int8 (64 contiguous bytes), C: 16 x int32.
vpdpbusd does not saturate (the non-"s" form), so the result is exact modulo 2^32 like plain int32 adds.

TVMScript prim_funcs must live in a source file (the parser reads them with ``inspect``).
"""

from __future__ import annotations

from tvm.script import tirx as T

VNNI_INTRIN = "autocomp_dot_16x4_u8i8i32_vnni512_local"  # accumulator C in a local (register) tile


def _make(c_scope: str):
    """(desc, impl) whose accumulator buffer C lives in ``c_scope`` (tensorize compares scopes)."""

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1, scope=c_scope),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            for i in T.serial(0, 16):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1, scope=c_scope),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0], dtype="int32x16"),
                T.reinterpret(
                    T.broadcast(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), 16), dtype="uint8x64"
                ),
                B.vload([0, 0], dtype="int8x64"),
                dtype="int32x16",
            )

    return desc, impl


_registered = False


def register() -> str:
    """Register the intrinsic once per process (idempotent) and return its name. The dot template keeps
    its accumulator tile in scope ``local`` (registers), and tensorize requires the same scope."""
    global _registered
    if not _registered:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(VNNI_INTRIN, *_make("local"), override=True)
        _registered = True
    return VNNI_INTRIN
