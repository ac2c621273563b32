"""What a TVM target's CPU can do, asked of LLVM: vector width, vector registers, the int8 dot
products (VNNI, SDOT). The one place these facts live: the kernels size their tiles from them and
lowering picks the integer form the target's dot product takes.

Why LLVM and not the TVM target's attributes: ``tvm.target.codegen.llvm_get_vector_width`` returns
512 for every x86 mcpu in this wheel (even haswell / generic), while LLVM's feature query answers
for the CPU named in the target. The feature names are LLVM's ("avx512vnni", "dotprod"), not
/proc/cpuinfo's ("avx512_vnni"; that is hostcpu.py, about the machine rather than a target).
"""

from __future__ import annotations

from typing import Any


def has_feature(target: Any, feature: str) -> bool:
    """Whether LLVM says the target's CPU has `feature`; False for non-LLVM targets and for triples
    whose feature query is unsupported."""
    from tvm.target import codegen

    if target.kind.name != "llvm":
        return False
    try:
        with target:
            return bool(codegen.llvm_cpu_has_features([feature], target))
    except Exception:  # feature query unsupported for this triple
        return False


def is_aarch64(target: Any) -> bool:
    return "aarch64" in str(target.attrs.get("mtriple", ""))


def vector_bits(target: Any) -> int:
    """SIMD register width in bits: 512 with AVX-512, 256 with AVX / AVX2, else 128 (SSE, NEON)."""
    if has_feature(target, "avx512f"):
        return 512
    if has_feature(target, "avx2") or has_feature(target, "avx"):
        return 256
    return 128


def num_vector_regs(target: Any) -> int:
    """AVX-512 and AArch64 have 32 vector registers; AVX2 / SSE 16."""
    if vector_bits(target) == 512 or is_aarch64(target):
        return 32
    return 16


def f32_lanes(target: Any) -> int:
    """fp32 lanes of one vector register."""
    return max(vector_bits(target) // 32, 1)


def has_vnni(target: Any) -> bool:
    """x86 AVX-512 VNNI (vpdpbusd: unsigned x signed int8 -> int32)."""
    return has_feature(target, "avx512vnni")


def has_pair_dot(target: Any) -> bool:
    """x86 whose fastest exact int8 dot product is vpmaddwd on int16 pairs (AVX2 or AVX-512BW, no VNNI)."""
    return not has_vnni(target) and (has_feature(target, "avx512bw") or has_feature(target, "avx2"))


def has_sdot(target: Any) -> bool:
    """AArch64 with the ARMv8.2 dot product (Pi 5's A76; not the Pi 4's A72)."""
    return is_aarch64(target) and has_feature(target, "dotprod")


def channel_multiple(target: Any) -> int:
    """What pruned channel counts are rounded to: a whole number of the kernels' output-channel vectors.
    16 on AVX-512 (VNNI's and vpmaddwd's 16 int32 lanes, 16 fp32 lanes): a pruned conv with 40 channels
    lost the dot-product template (O % 16) and ran the int32-lane one; 8 elsewhere (AVX2, NEON: 8 or 4)."""
    return 16 if vector_bits(target) == 512 else 8
