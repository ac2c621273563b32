"""Static cycle estimates of a kernel's hottest inner loop on an ARM core, from LLVM's scheduling model.

Why: no Raspberry Pi is reachable here and qemu runs aarch64 code at meaningless speed, but llvm-mca
(Debian's llvm-19) models the Cortex-A72 and A76 pipelines. Each kernel's hot loop is taken from the
disassembled library (the innermost loop that issues the most multiply-accumulate lanes), fed to
llvm-mca, and read as cycles per iteration and MAC lanes per cycle. The core's peak comes from the same
model (a loop of independent MAC instructions), so a kernel's fraction of peak compares like with like.
Everything here is an estimate and says so: it ignores cache misses, the loop's own overhead outside
the body, and the kernels without a multiply-accumulate loop (transposes, packing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LLVM_MCA = "llvm-mca-19"
OBJDUMP = "aarch64-linux-gnu-objdump"
_SYMBOL = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_BRANCHES = ("b", "cbz", "cbnz", "tbz", "tbnz")
_LANES = {"2d": 2, "4s": 4, "2s": 2, "8h": 8, "4h": 4, "16b": 16, "8b": 8}
_FLOAT_MAC = ("fmla", "fmls")
_INT_MAC = ("mla", "mls", "smlal", "smlal2", "umlal", "umlal2", "smlsl", "smlsl2", "smull", "smull2", "umull",
            "umull2")
_DOT = ("sdot", "udot")


@dataclass(frozen=True)
class Instruction:
    address: int
    mnemonic: str
    operands: str

    @property
    def text(self) -> str:
        return f"{self.mnemonic} {self.operands}".strip()

    def branch_target(self) -> int | None:
        if self.mnemonic.split(".")[0] not in _BRANCHES:
            return None
        for token in self.operands.replace(",", " ").split():
            if re.fullmatch(r"[0-9a-f]+", token):
                return int(token, 16)  # objdump prints the target address, then <symbol+offset>
        return None

    def mac_lanes(self) -> int:
        """Multiply-accumulate lanes this instruction issues: fmla v.4s = 4, sdot v.4s (16 bytes) = 16,
        smlal v.8h = 8; a widening multiply (smull) counts, as its products are accumulated next
        (sadalp / add). 0 for anything else."""
        m = self.mnemonic
        if m in ("fmadd", "fmsub"):
            return 1
        if m not in _FLOAT_MAC + _INT_MAC + _DOT:
            return 0
        dest = re.match(r"\s*v\d+\.(\w+)", self.operands)
        if not dest or dest.group(1) not in _LANES:
            return 0
        lanes = _LANES[dest.group(1)]
        return lanes * 4 if m in _DOT else lanes


@dataclass(frozen=True)
class Loop:
    function: str
    body: tuple[Instruction, ...]  # from the branch target to the backward branch, inclusive

    @property
    def mac_lanes(self) -> int:
        return sum(i.mac_lanes() for i in self.body)

    def asm(self) -> str:
        """The body as llvm-mca reads it: the closing branch dropped (llvm-mca repeats the block)."""
        return "\n".join(i.text for i in self.body if i.branch_target() is None) + "\n"


def functions(library: Path) -> dict[str, list[Instruction]]:
    """The library's disassembly, per symbol."""
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                         check=True).stdout
    return parse_objdump(out)


def parse_objdump(text: str) -> dict[str, list[Instruction]]:
    funcs: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for line in text.splitlines():
        if m := _SYMBOL.match(line):
            current = funcs.setdefault(m.group(2), [])
            continue
        if current is None:
            continue
        if m := re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line):
            # objdump writes an address operand as `7f000 <symbol+offset>`, which llvm-mca's parser rejects:
            # branches keep the bare address (branch_target reads it), others get an immediate `#0x7f000`
            mnemonic, operands = m.group(2), m.group(3).split("//")[0]
            bare = mnemonic.split(".")[0] in _BRANCHES
            operands = re.sub(r"\b([0-9a-f]+)\s*<[^>]*>", r"\1" if bare else r"#0x\1", operands).strip()
            current.append(Instruction(int(m.group(1), 16), mnemonic, operands))
    return funcs


def innermost_loops(name: str, code: list[Instruction]) -> list[Loop]:
    """Loops closed by a backward branch that contain no other such loop."""
    index = {i.address: k for k, i in enumerate(code)}
    spans = []
    for k, ins in enumerate(code):
        target = ins.branch_target()
        if target is not None and target <= ins.address and target in index:
            spans.append((index[target], k))
    inner = [s for s in spans if not any(o != s and s[0] <= o[0] and o[1] <= s[1] for o in spans)]
    return [Loop(name, tuple(code[a : b + 1])) for a, b in inner]


def hot_loop(name: str, code: list[Instruction]) -> Loop | None:
    """The innermost loop issuing the most MAC lanes per iteration (None: the function has no MAC loop)."""
    loops = [loop for loop in innermost_loops(name, code) if loop.mac_lanes]
    return max(loops, key=lambda loop: loop.mac_lanes, default=None)


@dataclass(frozen=True)
class McaResult:
    cycles_per_iteration: float
    block_rthroughput: float
    mac_lanes: int

    @property
    def macs_per_cycle(self) -> float:
        return self.mac_lanes / self.cycles_per_iteration


def available() -> str | None:
    """None when the tools are here; otherwise what to install."""
    missing = [t for t in (LLVM_MCA, OBJDUMP) if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found: `make llvm emulator` installs llvm-19 and the aarch64 binutils"
    return None


def run_mca(asm: str, mcpu: str, mac_lanes: int, iterations: int = 200) -> McaResult:
    """llvm-mca's steady state for `asm` repeated `iterations` times on `mcpu`."""
    r = subprocess.run([LLVM_MCA, "-mtriple=aarch64", f"-mcpu={mcpu}", f"-iterations={iterations}"],
                       input=asm, capture_output=True, text=True)
    if r.returncode != 0:
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
        raise RuntimeError(f"llvm-mca could not read the loop: {first}")
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", r.stdout).group(1))  # type: ignore[union-attr]
    rthroughput = float(re.search(r"Block RThroughput:\s+([\d.]+)", r.stdout).group(1))  # type: ignore[union-attr]
    return McaResult(cycles / iterations, rthroughput, mac_lanes)


# The core's peak, as the same model sees it: independent accumulators, so only issue limits it.
PEAK_LOOPS = {
    "fp32 fmla .4s": ("fmla v{i}.4s, v20.4s, v21.4s", 4),
    "int8 sdot .4s": ("sdot v{i}.4s, v20.16b, v21.16b", 16),
    "int8 smlal .8h": ("smlal v{i}.8h, v20.8b, v21.8b", 8),
    "int8 mla .4s (int32 lanes)": ("mla v{i}.4s, v20.4s, v21.4s", 4),
}


def peak(mcpu: str, name: str, accumulators: int = 8) -> float:
    """MAC lanes per cycle of a loop of `accumulators` independent PEAK_LOOPS[name] instructions."""
    template, lanes = PEAK_LOOPS[name]
    asm = "\n".join(template.format(i=i) for i in range(accumulators)) + "\n"
    return run_mca(asm, mcpu, lanes * accumulators).macs_per_cycle


@dataclass(frozen=True)
class KernelEstimate:
    """One kernel's hot loop on the core model, and what it makes of the kernel's multiply-adds."""

    kernel: str  # the fused kernel's name, as build/compile.py's kernel_work keys it
    loop: Loop
    result: McaResult | None  # None: llvm-mca could not read the loop (`error` says why)
    macs: float  # per call (NaN: TVM could not count them)
    calls: int
    error: str = ""

    @property
    def cycles_per_call(self) -> float:
        if self.result is None:
            return float("nan")
        return self.macs / self.loop.mac_lanes * self.result.cycles_per_iteration


def kernel_estimates(library: Path, kernel_work: dict[str, tuple[float, int]], mcpu: str) -> list[KernelEstimate]:
    """Every kernel of the library that has a multiply-accumulate loop, through llvm-mca on `mcpu`."""
    out = []
    for symbol, code in sorted(functions(library).items()):
        if not symbol.endswith("_compute_"):
            continue
        kernel = symbol[: -len("_compute_")]
        loop = hot_loop(symbol, code)
        if loop is None:
            continue
        macs, calls = kernel_work.get(kernel, (float("nan"), 0))
        try:
            out.append(KernelEstimate(kernel, loop, run_mca(loop.asm(), mcpu, loop.mac_lanes), macs, calls))
        except RuntimeError as exc:
            out.append(KernelEstimate(kernel, loop, None, macs, calls, str(exc)))
    return out


def model_ms(estimates: list[KernelEstimate], clock_hz: float) -> float:
    """One inference on one core: the MAC kernels' cycles at the clock (data movement and cache misses
    are not modelled, so this is a lower bound). An uncountable kernel is an error, not a silent zero."""
    import math

    total = 0.0
    for e in estimates:
        if not e.calls:  # in the library but not called by main (NaN x 0 would poison the sum)
            continue
        if math.isnan(e.cycles_per_call):
            why = e.error or "TVM could not count its multiply-adds"
            raise RuntimeError(f"no llvm-mca estimate for kernel {e.kernel}: {why}")
        total += e.cycles_per_call * e.calls
    return total / clock_hz * 1e3
