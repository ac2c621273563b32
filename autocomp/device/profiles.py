"""Device profiles: hardware as data, loaded from TOML and validated.

Built-in profiles ship inside the package (`autocomp/device/device_profiles/`) so that a plain `pip install`
finds them; users add their own by dropping a TOML file in a directory listed in
`AUTOCOMP_PROFILE_PATH` (os.pathsep-separated) or in `~/.config/autocomp/device_profiles/`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autocomp.errors import UserError

BUILTIN_DIR = Path(__file__).parent / "device_profiles"
USER_DIR = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "autocomp" / "device_profiles"
DETECT = "detect"
MEASURE_KINDS = ("local", "rpc")
PRECISIONS = ("fp32", "fp16", "int8", "int4")
FP16_GPU_KINDS = ("cuda", "opencl", "vulkan", "metal", "rocm")
WINOGRAD_MODES = ("auto", "stored", "off")  # what autocomp.build.passes.winograd.rewrite takes


@dataclass(frozen=True)
class Measurement:
    """TVM time-evaluator settings: each of `repeat` samples runs the model `number` times
    (raised until one sample lasts `min_repeat_ms`), after `warmup` untimed runs."""

    number: int = 10
    repeat: int = 7
    min_repeat_ms: int = 20
    warmup: int = 3
    threads: int = 0  # TVM runtime threads while timed; 0 = one per physical core (host), the device's default (rpc)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    kind: str  # cpu | gpu
    measure: str  # local | rpc
    target: dict[str, Any]
    host: dict[str, Any] | None = None
    cross_cc: str = ""
    rpc_key: str = ""
    cores: int = 0  # 0 = detect at run time (host only)
    memory_mb: int = 0  # 0 = no memory constraint
    precisions: tuple[str, ...] = PRECISIONS
    measurement: Measurement = field(default_factory=Measurement)
    estimate: dict[str, float] = field(default_factory=dict)  # fp32_gflops, int8_gops[, fp16_gflops]: user-supplied rates
    # llvm-mca's model of the cores for `--estimate` (measure/mca.py): {"cpu": llvm-mca -mcpu, "clock_ghz": ...}
    mca: dict[str, Any] = field(default_factory=dict)
    winograd: str = "auto"  # fp32 3x3 convs on CPU targets: auto | stored | off (see autocomp/build/passes/winograd.py)
    source: str = ""

    def is_host(self) -> bool:
        return self.target.get("mcpu") == DETECT

    def resolved_target(self) -> dict[str, Any]:
        """The TVM target dict, with `detect` replaced by this machine's CPU (LLVM's name for it, and the
        features it has beyond that name)."""
        target = dict(self.target)
        if target.get("mcpu") == DETECT:
            from autocomp.device import hostcpu

            cpu = hostcpu.detect()
            target["mcpu"] = cpu.llvm_cpu
            target.setdefault("num-cores", cpu.cores)
            if cpu.llvm_mattr:  # what the CPU has beyond LLVM's name for it (hostcpu.missing_features)
                target["mattr"] = [*target.get("mattr", []), *(f for f in cpu.llvm_mattr if f not in target.get("mattr", []))]
        return target

    def fp16_compute(self) -> bool:
        """Whether the target does fp16 *arithmetic* (GPUs, ARMv8.2 `+fullfp16`, AVX512-FP16), not only
        fp16 storage; only then do a16 layers compute in fp16 (elsewhere they are simulated)."""
        if "fp16" not in self.precisions:
            return False
        target = self.resolved_target()
        if target.get("kind") in FP16_GPU_KINDS:
            return True
        mattr = target.get("mattr", [])
        if "+fullfp16" in mattr or "+avx512fp16" in mattr:
            return True
        if self.is_host():
            from autocomp.device import hostcpu

            return bool({"avx512_fp16", "asimdhp"} & set(hostcpu.detect().features))
        return False

    def tvm_target(self) -> Any:
        import tvm

        target = self.resolved_target()
        try:
            return tvm.target.Target(target, host=self.host) if self.host else tvm.target.Target(target)
        except Exception as exc:  # TVM raises ValueError / TVMError for unknown keys or kinds
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserError(f"device profile {self.source}: TVM rejects its target {target}: {first}") from exc


def _search_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("AUTOCOMP_PROFILE_PATH", "").split(os.pathsep) if p]
    return [*extra, USER_DIR, BUILTIN_DIR]


def _fail(path: Path, what: str) -> UserError:
    return UserError(f"device profile {path}: {what}")


def _typed(path: Path, data: dict[str, Any], key: str, typ: type, default: Any) -> Any:
    if key not in data:
        if default is _REQUIRED:
            raise _fail(path, f"missing required key '{key}'")
        return default
    value = data[key]
    ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
    if not ok:
        raise _fail(path, f"key '{key}' must be {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


_REQUIRED = object()


def parse_profile(path: Path) -> DeviceProfile:
    """Read and validate one TOML profile; every problem names the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise _fail(path, f"is not a text file (byte {exc.start} is not UTF-8); a profile is TOML text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"is not valid TOML ({exc})") from exc
    known = {f.name for f in fields(DeviceProfile)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(path, f"unknown key '{unknown[0]}' (known keys: {', '.join(sorted(known))})")
    name = _typed(path, data, "name", str, _REQUIRED)
    if name != path.stem:
        raise _fail(path, f"name '{name}' must match the file name '{path.stem}'")
    kind = _typed(path, data, "kind", str, _REQUIRED)
    if kind not in ("cpu", "gpu"):
        raise _fail(path, f"key 'kind' must be 'cpu' or 'gpu', got {kind!r}")
    measure = _typed(path, data, "measure", str, _REQUIRED)
    if measure not in MEASURE_KINDS:
        raise _fail(path, f"key 'measure' must be one of {MEASURE_KINDS}, got {measure!r}")
    target = _typed(path, data, "target", dict, _REQUIRED)
    if not isinstance(target.get("kind"), str):
        raise _fail(path, "key 'target' needs a string 'kind' (a TVM target dict, e.g. {kind = \"llvm\"})")
    host = _typed(path, data, "host", dict, None)
    rpc_key = _typed(path, data, "rpc_key", str, "")
    if measure == "rpc" and not rpc_key:
        raise _fail(path, "key 'rpc_key' is required when measure = 'rpc'")
    precisions = tuple(_typed(path, data, "precisions", list, list(PRECISIONS)))
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise _fail(path, f"key 'precisions' has unknown {bad[0]!r} (known: {', '.join(PRECISIONS)})")
    m = _typed(path, data, "measurement", dict, {})
    m_known = {f.name for f in fields(Measurement)}
    if set(m) - m_known:
        raise _fail(path, f"unknown key 'measurement.{sorted(set(m) - m_known)[0]}'")
    for k, v in m.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k in ("warmup", "min_repeat_ms", "threads") else 1):
            raise _fail(path, f"key 'measurement.{k}' must be a positive integer, got {v!r}")
    estimate = _typed(path, data, "estimate", dict, {})
    for k, v in estimate.items():
        if k not in ("fp32_gflops", "int8_gops", "fp16_gflops"):
            raise _fail(path, f"unknown key 'estimate.{k}' (known: fp32_gflops, int8_gops, fp16_gflops)")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise _fail(path, f"key 'estimate.{k}' must be a positive number, got {v!r}")
    if estimate and not {"fp32_gflops", "int8_gops"} <= set(estimate):
        raise _fail(path, "table 'estimate' needs both fp32_gflops and int8_gops")
    mca = _typed(path, data, "mca", dict, {})
    if mca:
        if set(mca) != {"cpu", "clock_ghz"}:
            raise _fail(path, "table 'mca' takes exactly 'cpu' (llvm-mca's -mcpu, e.g. cortex-a72) and 'clock_ghz'")
        clock = mca["clock_ghz"]
        if not isinstance(mca["cpu"], str) or not isinstance(clock, (int, float)) or isinstance(clock, bool) \
                or clock <= 0:
            raise _fail(path, f"table 'mca' needs cpu as a string and clock_ghz as a positive number, got {mca!r}")
    winograd = _typed(path, data, "winograd", str, "auto")
    if winograd not in WINOGRAD_MODES:
        raise _fail(path, f"key 'winograd' must be one of {', '.join(WINOGRAD_MODES)}, got {winograd!r}")
    cores = _typed(path, data, "cores", int, 0)
    memory_mb = _typed(path, data, "memory_mb", int, 0)
    if cores < 0 or memory_mb < 0:
        raise _fail(path, "keys 'cores' and 'memory_mb' must be >= 0")
    return DeviceProfile(
        name=name,
        description=_typed(path, data, "description", str, ""),
        kind=kind,
        measure=measure,
        target=target,
        host=host,
        cross_cc=_typed(path, data, "cross_cc", str, ""),
        rpc_key=rpc_key,
        cores=cores,
        memory_mb=memory_mb,
        precisions=precisions,
        measurement=Measurement(**m),
        estimate={k: float(v) for k, v in estimate.items()},
        mca={"cpu": mca["cpu"], "clock_ghz": float(mca["clock_ghz"])} if mca else {},
        winograd=winograd,
        source=str(path),
    )


def available() -> dict[str, Path]:
    """Profile name -> file; earlier search directories win over the built-in ones."""
    found: dict[str, Path] = {}
    for d in reversed(_search_dirs()):
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found[p.stem] = p
    return dict(sorted(found.items()))


def load_profile(name: str) -> DeviceProfile:
    """Load a profile by name, or from a path to a TOML file."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise UserError(f"device profile file {name} does not exist")
        return parse_profile(path)
    names = available()
    if name not in names:
        raise UserError(
            f"unknown device '{name}'; known devices: {', '.join(names)} "
            f"(add one as a TOML file in {USER_DIR} or a directory on AUTOCOMP_PROFILE_PATH)"
        )
    return parse_profile(names[name])


def load_all() -> tuple[list[DeviceProfile], list[str]]:
    """Every profile that loads, and one line for each that does not (a broken user profile must not
    hide the others)."""
    good, bad = [], []
    for path in available().values():
        try:
            good.append(parse_profile(path))
        except UserError as exc:
            bad.append(str(exc))
    return good, bad
