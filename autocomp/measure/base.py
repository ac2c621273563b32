"""What every runner takes and returns (MetaSchedule's Builder -> Runner split): the measurement
options, a latency distribution, a run's result, the Runner protocol, and reading a VM's output.

A runner takes a build and returns a RunResult: latency, the accuracy it could establish and how, and
where it ran (`measured_on`). LocalRunner (local.py) runs on this machine; RPCRunner (rpc.py) on a
device obtained from a TVM RPC tracker; EstimateRunner (estimate.py) only when the user asked for
estimates, and every figure it produces is labelled `estimate`. runners.py picks one for a profile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from autocomp.device.profiles import Measurement

if TYPE_CHECKING:
    from autocomp.build.compile import BuildResult


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
    threads: int | None = None  # TVM runtime threads that ran the timed calls (None: the device did not say)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_seconds(cls, results_s: Any, m: Measurement, threads: int | None) -> Latency:
        ms = np.asarray(results_s, dtype=np.float64) * 1e3
        return cls(float(np.median(ms)), float(np.percentile(ms, 10)), float(np.percentile(ms, 90)), len(ms),
                   m.number, m.min_repeat_ms, threads)


def is_estimate(measured_on: str) -> bool:
    """`estimate` (the profile's rates) or `estimate (llvm-mca)` (measure/mca.py): not a measurement."""
    return measured_on.startswith("estimate")


@dataclass(frozen=True)
class RunResult:
    latency: Latency | None  # None: not timed here (a compile worker's run; the parent times it)
    measured_on: str  # local | rpc:<key>@<host:port> | emulated:<key>@<host:port> | estimate[ (llvm-mca)]
    accuracy_compiled: float | None  # None: the artifact was not run on the eval set; use the simulation's
    accuracy_source: str  # compiled | simulation, agreeing on N samples | simulation (estimate)
    peak_rss: Any = None  # measure.memory.PeakRSS or None
    details: dict[str, Any] = field(default_factory=dict)
    comparison: Any = None  # interleave.Comparison: timed beside the reference (None: no reference given)


@dataclass
class Reference:
    """The build every candidate is timed beside (interleave.py): the task's fp32 model, compiled once.

    `loaded` keeps what each runner made of it (a loaded session, an exported library) for the life of
    the process, so a trial pays only for the reference's timing rounds."""

    label: str
    built: BuildResult
    model: Any  # its torch model (the estimate runner counts its MACs)
    loaded: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    def run(self, built: BuildResult, model: Any, task: Any, reference: Reference | None = None) -> RunResult: ...


@dataclass(frozen=True)
class MeasureOptions:
    """How the user asked to reach devices (flags of search / evaluate)."""

    tracker: str | None = None  # HOST:PORT of a TVM RPC tracker
    rpc_key: str | None = None  # default: the profile's rpc_key
    estimate: bool = False
    timeout_s: float = 120.0  # per remote measurement
    tracker_timeout_s: float = 10.0  # for the tracker to accept a connection
    retries: int = 2  # other devices tried after a failure


def first_output(out: Any) -> np.ndarray:
    """The model's output as numpy: the torch importer returns a tuple of outputs (nested on the VM)."""
    while not hasattr(out, "numpy"):
        out = out[0]
    return out.numpy()
