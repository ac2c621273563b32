"""An x86 int16 pair dot-product tensor intrinsic (``vpmaddwd``) for CPUs without VNNI (AVX2, or
AVX-512 without VNNI).

``vpmaddwd`` multiplies 16-bit lanes and adds adjacent pairs into 32-bit lanes: exact for int8 operands
widened to int16, unlike ``vpmaddubsw`` (u8 x s8 pairs saturate at 2^15). Per instruction: LANES int32
lanes x 2 multiply-adds, twice what an int32-lane multiply gives, at one uop.

    C[i] += sum_k int32(A[k]) * int32(B[i, k])   A: 2 data values (int16 holding u8 or s8, broadcast to
                                                  every lane), B: LANES x 2 int8, C: LANES x int32

The data tile is int16 because the template widens the padded input once per call
(``unsafe_set_dtype``), so the inner loop broadcasts one 32-bit word; the weights stay int8 in memory
and are sign-extended as they are loaded (one ``vpmovsxbw``). The description reads the data through
``cast(int32, cast(u8|s8, int16 value))``, the form ``unsafe_set_dtype`` leaves in the conv block.

TVMScript prim_funcs must live in a source file (the parser reads them with ``inspect``).
"""

from __future__ import annotations

from tvm.script import tirx as T

_LLVM = {8: "llvm.x86.avx2.pmadd.wd", 16: "llvm.x86.avx512.pmaddw.d.512"}


def _make(lanes: int, data_dtype: str):
    """(desc, impl) for `lanes` int32 lanes (8: AVX2, 16: AVX-512BW) and data of `data_dtype`."""
    wide = f"int16x{2 * lanes}"

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((2,), "int16", offset_factor=1),
        B: T.Buffer((lanes, 2), "int8", offset_factor=1),
        C: T.Buffer((lanes,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:2], B[0:lanes, 0:2])
            T.writes(C[0:lanes])
            for i in T.serial(0, lanes):
                for k in T.serial(0, 2):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(T.cast(A[vk], data_dtype), "int32") * T.cast(B[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((2,), "int16", offset_factor=1),
        B: T.Buffer((lanes, 2), "int8", offset_factor=1),
        C: T.Buffer((lanes,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:2], B[0:lanes, 0:2])
            T.writes(C[0:lanes])
            C[T.ramp(T.int32(0), 1, lanes)] = C.vload([0], dtype=f"int32x{lanes}") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(_LLVM[lanes]),
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int16x2"), dtype="int32"), lanes), dtype=wide),
                T.cast(B.vload([0, 0], dtype=f"int8x{2 * lanes}"), wide),
                dtype=f"int32x{lanes}",
            )

    return desc, impl


_registered: set[str] = set()


def register(lanes: int, data_dtype: str) -> str:
    """Register the variant once per process; returns its name."""
    name = f"autocomp_dot_{lanes}x2_{data_dtype}i8i32_pmaddwd_local"
    if name not in _registered:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(name, *_make(lanes, data_dtype), override=True)
        _registered.add(name)
    return name
