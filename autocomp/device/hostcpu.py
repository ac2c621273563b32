"""What CPU this process runs on.

Machines of one kind differ (AVX2-only vs AVX-512 + VNNI), so the `host` profile is resolved here at
run time and every result and benchmark records the CPU it came from.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass

_INTERESTING = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                "avx512_bf16", "avx512_fp16", "asimd", "asimdhp", "asimddp", "sve")
# /proc/cpuinfo's name -> LLVM's, for the features the kernels and lowering ask the target about
# (device/features.py, DeviceProfile.fp16_compute)
LLVM_FEATURES = {"avx512_vnni": "avx512vnni", "avx_vnni": "avxvnni", "avx512_bf16": "avx512bf16",
                 "avx512_fp16": "avx512fp16", "asimdhp": "fullfp16", "asimddp": "dotprod"}


@dataclass(frozen=True)
class HostCPU:
    model: str
    machine: str
    cores: int  # logical CPUs this process may run on
    llvm_cpu: str
    features: tuple[str, ...]
    physical_cores: int = 0  # of those, distinct physical cores (SMT siblings counted once)
    llvm_mattr: tuple[str, ...] = ()  # features the CPU has that LLVM's name for it lacks (`missing_features`)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["features"] = list(self.features)
        d["llvm_mattr"] = list(self.llvm_mattr)
        return d

    def describe(self) -> str:
        smt = "" if self.physical_cores in (0, self.cores) else f" on {self.physical_cores} physical"
        cpu = " ".join((self.llvm_cpu, *self.llvm_mattr))
        return f"{self.model} ({self.machine}, {self.cores} cores{smt}, llvm cpu {cpu}, {' '.join(self.features)})"


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def physical_cores(cpus: set[int] | None = None, sysfs: str = "/sys/devices/system/cpu") -> int:
    """Distinct (package, core) pairs among the CPUs this process may use.

    Why: TVM's runtime, on x86, starts half the logical CPUs as threads (it assumes SMT), so on a
    machine without SMT it uses half the cores unless told otherwise; the measurement needs the count
    of real cores. Falls back to the logical count where sysfs has no topology."""
    if cpus is None:
        cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        try:
            with open(f"{sysfs}/cpu{cpu}/topology/physical_package_id", encoding="utf-8") as f:
                package = f.read().strip()
            with open(f"{sysfs}/cpu{cpu}/topology/core_id", encoding="utf-8") as f:
                cores.add((package, f.read().strip()))
        except OSError:
            return len(cpus)
    return max(len(cores), 1)


def missing_features(llvm_cpu: str, flags: set[str]) -> tuple[str, ...]:
    """"+feature" (LLVM's spelling) for each feature of LLVM_FEATURES the CPU reports in `flags` but the
    CPU LLVM names lacks. Why: LLVM names the CPU from its family and model, and a virtual machine may
    report another model than the silicon's: a Sapphire Rapids guest reporting Rocket Lake's model
    (family 6, model 167) was compiled without AVX512-FP16, so its fp16 layers, offered because the
    CPU computes fp16, were emulated through fp32 conversions: FashionNet w16a16 3.0-3.3 ms against
    0.27 ms with the feature (and 0.42 ms fp32)."""
    import tvm
    from tvm.target import codegen

    target = tvm.target.Target({"kind": "llvm", "mcpu": llvm_cpu})
    out = []
    for flag, feature in LLVM_FEATURES.items():
        if flag in flags:
            try:
                with target:
                    has = bool(codegen.llvm_cpu_has_features([feature], target))
            except Exception:  # not a feature of this architecture's LLVM backend
                continue
            if not has:
                out.append(f"+{feature}")
    return tuple(out)


@functools.lru_cache(maxsize=1)
def detect() -> HostCPU:
    """Detect the host CPU; imports tvm for LLVM's name of it (the name its codegen tunes for)."""
    import tvm.target.codegen as codegen

    model, flags = _cpuinfo()
    llvm_cpu = str(codegen.llvm_get_system_cpu())
    if not codegen.llvm_is_valid_cpu(llvm_cpu, codegen.llvm_get_system_triple()):
        llvm_cpu = "generic"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    features = tuple(f for f in _INTERESTING if f in flags)
    return HostCPU(model, platform.machine(), cores, llvm_cpu, features, physical_cores(),
                   missing_features(llvm_cpu, flags))
