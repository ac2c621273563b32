"""Runners: where a compiled candidate is run and timed (MetaSchedule's Builder -> Runner split).

A runner takes a build and returns a RunResult: latency, the accuracy it could establish and how, and
where it ran (`measured_on`). LocalRunner runs on this machine; RPCRunner (measure/rpc.py) on a device
obtained from a TVM RPC tracker; EstimateRunner only when the user asked for estimates, and every
figure it produces is labelled `estimate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

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
    threads: int | None = None  # TVM runtime threads that ran the timed calls (None: the device did not say)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_seconds(cls, results_s: Any, m: Measurement, threads: int | None) -> Latency:
        ms = np.asarray(results_s, dtype=np.float64) * 1e3
        return cls(float(np.median(ms)), float(np.percentile(ms, 10)), float(np.percentile(ms, 90)), len(ms),
                   m.number, m.min_repeat_ms, threads)


@dataclass(frozen=True)
class RunResult:
    latency: Latency | None  # None: not timed here (a compile worker's run; the parent times it)
    measured_on: str  # local | rpc:<key>@<host:port> | emulated:<key>@<host:port> | estimate
    accuracy_compiled: float | None  # None: the artifact was not run on the eval set; use the simulation's
    accuracy_source: str  # compiled | simulation, agreeing on N samples | simulation (estimate)
    peak_rss: Any = None  # measure.memory.PeakRSS or None
    details: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    def run(self, built: BuildResult, model: Any, task: Any) -> RunResult: ...


class LocalSession:
    """A loaded VM with its parameters already on the device."""

    def __init__(self, built: BuildResult) -> None:
        self._load(built.executable, built.params)

    @classmethod
    def from_library(cls, library: str, params: tuple[np.ndarray, ...]) -> LocalSession:
        """A session on an exported library (e.g. one a compile worker wrote)."""
        import tvm

        session = cls.__new__(cls)
        session._load(tvm.runtime.load_module(library), params)
        return session

    def _load(self, executable: Any, params: tuple[np.ndarray, ...]) -> None:
        import tvm
        from tvm import relax

        self.device = tvm.cpu()
        self.vm = relax.VirtualMachine(executable, self.device)
        self.params = [tvm.runtime.tensor(p, self.device) for p in params]

    def args(self, x: np.ndarray) -> list[Any]:
        import tvm

        return [tvm.runtime.tensor(np.ascontiguousarray(x), self.device), *self.params]

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.vm["main"](*self.args(x))
        while not hasattr(out, "numpy"):  # the torch importer returns a tuple of outputs
            out = out[0]
        return out.numpy()


class LocalRunner:
    """Loads the executable in this process, times it on the CPU, evaluates it on every eval sample."""

    measured_on = "local"

    def __init__(self, measurement: Measurement, peak_rss: bool = True) -> None:
        self.measurement = measurement
        self.peak_rss = peak_rss

    def session(self, built: BuildResult) -> LocalSession:
        return LocalSession(built)

    def time(self, session: LocalSession, example_input: np.ndarray) -> Latency:
        import tvm

        from autocomp.measure.threads import local_threads, master_off_worker_cores, use_threads

        m = self.measurement
        threads = use_threads(local_threads(m))
        args = session.args(example_input)
        with master_off_worker_cores():
            for _ in range(m.warmup):
                session.vm["main"](*args)
            timer = session.vm.time_evaluator("main", tvm.cpu(), number=m.number, repeat=m.repeat,
                                              min_repeat_ms=m.min_repeat_ms)
            results = timer(*args).results
        return Latency.from_seconds(results, m, threads)

    def run(self, built: BuildResult, model: Any, task: Any, timed: bool = True) -> RunResult:
        """`timed=False`: everything but the latency (a compile worker, whose cores are not quiet)."""
        from autocomp import evaluate
        from autocomp.measure.memory import measure_peak_rss

        import time

        t0 = time.perf_counter()
        session = self.session(built)
        latency = self.time(session, task.example_input.numpy()) if timed else None
        t1 = time.perf_counter()
        accuracy = evaluate.accuracy_compiled(session.run, task)
        t2 = time.perf_counter()
        rss = None
        if self.peak_rss:
            from autocomp.measure.threads import local_threads

            rss = measure_peak_rss(built, tuple(task.example_input.shape), local_threads(self.measurement))
        timings = {"latency": t1 - t0, "evaluate": t2 - t1, "peak_rss": time.perf_counter() - t2}
        if not timed:
            del timings["latency"]
        return RunResult(latency, self.measured_on, accuracy, "compiled", rss, {"timings_s": timings})


@dataclass(frozen=True)
class MeasureOptions:
    """How the user asked to reach devices (flags of search / evaluate)."""

    tracker: str | None = None  # HOST:PORT of a TVM RPC tracker
    rpc_key: str | None = None  # default: the profile's rpc_key
    estimate: bool = False
    timeout_s: float = 120.0  # per remote measurement
    retries: int = 2  # other devices tried after a failure


def runner_for(profile: DeviceProfile, options: MeasureOptions | None = None) -> Runner:
    """The runner for a profile; a device that cannot be reached is a UserError now, not a bad trial later."""
    options = options or MeasureOptions()
    if options.tracker:
        from autocomp.measure.rpc import RPCRunner

        return RPCRunner(profile, options)
    if profile.measure == "local" and not options.estimate:
        return LocalRunner(profile.measurement)
    if options.estimate:
        from autocomp.measure.estimate import EstimateRunner

        return EstimateRunner(profile)
    raise UserError(
        f"device '{profile.name}' is measured on the board through a TVM RPC tracker: pass "
        f"--tracker HOST:PORT (boards register with key '{profile.rpc_key}'), or --estimate for "
        "figures estimated from the profile's rates, labelled 'estimate'"
    )
