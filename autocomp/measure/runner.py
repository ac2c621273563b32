"""Runners: where a compiled candidate is timed (MetaSchedule's Builder -> Runner split).

LocalRunner times on this machine with TVM's time evaluator. Remote devices (RPC tracker) come with
issue 6; asking for one now is a clear error, never a silent local measurement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from autocomp.build import BuildResult
from autocomp.errors import UserError
from autocomp.profiles import DeviceProfile, Measurement


@dataclass(frozen=True)
class Latency:
    """Per-inference latency over `samples` timed samples; each sample is the mean of at least
    `number` back-to-back runs, raised by TVM until one sample lasts `min_repeat_ms`."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    samples: int
    number: int
    min_repeat_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LocalRunner:
    """Loads the executable in this process and times it on the CPU."""

    measured_on = "local"

    def __init__(self, measurement: Measurement) -> None:
        self.measurement = measurement

    def session(self, built: BuildResult) -> LocalSession:
        return LocalSession(built)

    def time(self, session: LocalSession, example_input: np.ndarray) -> Latency:
        import tvm

        m = self.measurement
        args = session.args(example_input)
        for _ in range(m.warmup):
            session.vm["main"](*args)
        timer = session.vm.time_evaluator(
            "main", tvm.cpu(), number=m.number, repeat=m.repeat, min_repeat_ms=m.min_repeat_ms
        )
        report = timer(*args)
        results_ms = np.asarray(report.results, dtype=np.float64) * 1e3
        return Latency(
            median_ms=float(np.median(results_ms)),
            p10_ms=float(np.percentile(results_ms, 10)),
            p90_ms=float(np.percentile(results_ms, 90)),
            samples=len(results_ms),
            number=m.number,
            min_repeat_ms=m.min_repeat_ms,
        )


class LocalSession:
    """A loaded VM with its parameters already on the device."""

    def __init__(self, built: BuildResult) -> None:
        import tvm
        from tvm import relax

        self.device = tvm.cpu()
        self.vm = relax.VirtualMachine(built.executable, self.device)
        self.params = [tvm.runtime.tensor(p, self.device) for p in built.params]

    def args(self, x: np.ndarray) -> list[Any]:
        import tvm

        return [tvm.runtime.tensor(np.ascontiguousarray(x), self.device), *self.params]

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.vm["main"](*self.args(x))
        while not hasattr(out, "numpy"):  # the torch importer returns a tuple of outputs
            out = out[0]
        return out.numpy()


def runner_for(profile: DeviceProfile) -> LocalRunner:
    if profile.measure == "local":
        return LocalRunner(profile.measurement)
    raise UserError(
        f"device '{profile.name}' is measured on the board through a TVM RPC tracker "
        f"(key '{profile.rpc_key}'), which this version of autocomp cannot reach yet; "
        "use --device host"
    )
