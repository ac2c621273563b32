"""An ARMv8.2 dot-product tensor intrinsic for TVM 0.27 (s8 x s8 -> s32, 4 lanes x 4), SDOT.

Same shape as vnni.py, for NEON: ``sdot vC.4s, vA.16b, vB.16b`` adds to each of 4 int32 lanes
the dot product of 4 data bytes (broadcast to every lane) with that lane's 4 weight bytes. SDOT is
signed x signed only (USDOT needs i8mm, which the Pi 5's A76 lacks), so uint8 activations reach it
shifted by -128 (see lower/relax_ops.py). Written as one expression, as the VNNI one, so the codegen keeps
the vectors in registers.

    C[i] += sum_k int32(A[k]) * int32(B[i, k])   A: 4 x int8, B: 4 x 4 int8 (16 bytes), C: 4 x int32
"""

from __future__ import annotations

from tvm.script import tirx as T

SDOT_INTRIN_LOCAL = "autocomp_dot_4x4_i8i8i32_sdot_local"  # accumulator C in a local (register) tile


def dot_desc(group: int = 4):  # type: ignore[no-untyped-def]
    """The description shared by the 4-lane aarch64 intrinsics (SDOT here, int16 products in smull.py):
    each of 4 int32 lanes adds the dot product of `group` data bytes with that lane's `group` weight bytes."""

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((group,), "int8", offset_factor=1),
        B: T.Buffer((4, group), "int8", offset_factor=1),
        C: T.Buffer((4,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:4], A[0:group], B[0:4, 0:group])
            T.writes(C[0:4])
            for i in T.serial(0, 4):
                for k in T.serial(0, group):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc


@T.prim_func(s_tir=True)
def _impl(
    A: T.Buffer((4,), "int8", offset_factor=1),
    B: T.Buffer((4, 4), "int8", offset_factor=1),
    C: T.Buffer((4,), "int32", offset_factor=1, scope="local"),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
            C.vload([0], dtype="int32x4"),
            T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 4), dtype="int8x16"),
            B.vload([0, 0], dtype="int8x16"),
            dtype="int32x4",
        )


_registered = False


def register() -> str:
    """Register the intrinsic once per process (idempotent); returns its name."""
    global _registered
    if not _registered:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(SDOT_INTRIN_LOCAL, dot_desc(4), _impl, override=True)
        _registered = True
    return SDOT_INTRIN_LOCAL
