"""Tuning records: the best register tile of autocomp's conv2d template, per workload, per device.

A workload is a fused conv PrimFunc (shapes, dtypes, epilogue), keyed by its structural hash and the
target; pruned channel counts are multiples of 8, so candidates share workloads. For a workload the
database does not have, `trials` tile candidates of the template are compiled and timed on this
machine (the default tile first) and the fastest is recorded; with trials = 0 only recorded tiles and
the default are used. One JSON file per device profile, under the user cache (AUTOCOMP_TUNING_DIR
overrides), shared by every candidate and every later search; writes are locked and atomic so several
workers on one machine can share it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from autocomp.paths import cache_dir


def tuning_dir() -> Path:
    return Path(os.environ.get("AUTOCOMP_TUNING_DIR", cache_dir() / "tuning"))


def workload_key(func: Any, target: Any) -> str:
    from tvm_ffi import structural_hash

    text = f"{structural_hash(func)}|{target}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class TuningDB:
    """workload key -> {"tile": [vf, ty, tx], "kernel_us": best time, "tried": n, "default_us": ...}."""

    path: Path
    hits: int = 0
    misses: int = 0
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def for_profile(cls, name: str, directory: Path | None = None) -> TuningDB:
        db = cls((directory or tuning_dir()) / f"{name}.json")
        db.records = db._read()
        return db

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # an unreadable database is treated as empty and rewritten whole
        return data.get("records", {}) if isinstance(data, dict) else {}

    def lookup(self, key: str) -> dict[str, Any] | None:
        record = self.records.get(key)
        if record is None:
            self.records = self._read()  # another worker may have tuned it meanwhile
            record = self.records.get(key)
        if record is None:
            self.misses += 1
        else:
            self.hits += 1
        return record

    def store(self, key: str, record: dict[str, Any]) -> None:
        with self._locked():
            records = self._read()
            old = records.get(key)
            if old is None or record["kernel_us"] < old["kernel_us"]:
                records[key] = record
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"version": 1, "records": records}, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
            self.records = records

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def time_kernel(func: Any, target: Any, number: int = 20, repeat: int = 5) -> float:
    """Median seconds of one PrimFunc on this CPU, on random inputs of its buffer shapes."""
    import tvm

    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    lib = tvm.tirx.build(mod, target=target)
    rng = np.random.default_rng(0)
    args = []
    for buf in func.params:
        shape = [int(d) for d in buf.shape]
        dtype = str(buf.dtype)
        if "int" in dtype:
            data = rng.integers(0, 100, size=shape).astype(dtype)
        else:
            data = rng.standard_normal(shape).astype(dtype)
        args.append(tvm.runtime.tensor(data))
    from autocomp.device.threads import master_off_worker_cores
    from autocomp.device.timing_lock import timing_lock

    timer = lib.time_evaluator("main", tvm.cpu(), number=number, repeat=repeat, min_repeat_ms=2)
    with timing_lock(), master_off_worker_cores():
        return float(np.median(timer(*args).results))


def tile_candidates(info: Any, target: Any, limit: int) -> list[tuple[int, int, int]]:
    """The default tile first, then other register tiles of the same template, nearest first."""
    from autocomp.build.kernels.dense import pick_tile, simd_lanes
    from autocomp.device.features import num_vector_regs

    default = pick_tile(info, target)
    lanes = simd_lanes(info, target)
    budget = 24 if num_vector_regs(target) >= 32 else 14
    tiles = []
    for nvec in (1, 2, 3, 4):
        vf = lanes * nvec
        if info.o % vf:
            continue
        for tx in range(1, info.w + 1):
            if info.w % tx:
                continue
            for ty in range(1, info.h + 1):
                if info.h % ty == 0 and nvec * tx * ty <= budget and (vf, ty, tx) != default:
                    tiles.append((vf, ty, tx))
    tiles.sort(key=lambda t: (abs(t[0] * t[1] * t[2] - default[0] * default[1] * default[2]), t))
    return [default, *tiles][: max(limit, 1)]


def tune(func: Any, target: Any, trials: int) -> tuple[tuple[int, int, int], dict[str, Any]]:
    """Time up to `trials` tiles of the template on this machine; the fastest and the record to store."""
    from tvm import s_tir

    from autocomp.build.kernels.conv import find_conv
    from autocomp.build.kernels.dense import schedule_conv

    info = find_conv(s_tir.Schedule(func))
    t0 = time.perf_counter()
    best, best_s, default_s, tried = None, float("inf"), None, 0
    for tile in tile_candidates(info, target, trials):
        try:
            scheduled = schedule_conv(func, target, tile)
            seconds = time_kernel(scheduled, target)
        except Exception:  # noqa: BLE001 - a tile the template cannot build is just not a candidate
            continue
        tried += 1
        default_s = seconds if default_s is None else default_s
        if seconds < best_s:
            best, best_s = tile, seconds
    record = {"tile": list(best) if best else None, "kernel_us": best_s * 1e6, "default_us": (default_s or 0) * 1e6,
              "tried": tried, "tune_s": round(time.perf_counter() - t0, 2)}
    return best, record
