"""LocalRunner: load the executable in this process, time it on this CPU, evaluate it on every eval
sample, probe its peak RSS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from autocomp.build.compile import BuildResult
from autocomp.device.profiles import Measurement
from autocomp.measure.base import Latency, Reference, RunResult, first_output

if TYPE_CHECKING:
    from autocomp.measure.interleave import Comparison


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
        return first_output(self.vm["main"](*self.args(x)))

    def warm(self, x: np.ndarray, n: int) -> None:
        args = self.args(x)
        for _ in range(n):
            self.vm["main"](*args)

    def timer(self, x: np.ndarray, number: int) -> Callable[[], float]:
        """One sample per call: the mean of `number` back-to-back runs, in seconds."""
        import tvm

        args = self.args(x)
        evaluator = self.vm.time_evaluator("main", tvm.cpu(), number=number, repeat=1, min_repeat_ms=0)
        return lambda: float(evaluator(*args).results[0])


class LocalRunner:
    """Loads the executable in this process, times it on the CPU, evaluates it on every eval sample."""

    measured_on = "local"

    def __init__(self, measurement: Measurement, peak_rss: bool = True) -> None:
        self.measurement = measurement
        self.peak_rss = peak_rss
        self.last_window: dict[str, Any] = {}

    def session(self, built: BuildResult) -> LocalSession:
        return LocalSession(built)

    def time(self, session: LocalSession, example_input: np.ndarray) -> Latency:
        """Time the session under this machine's timing lock (lock.py): no other autocomp process times
        on these cores meanwhile (device/timing_lock.py). `last_window` records when, for the details."""
        import time

        import tvm

        from autocomp.device.threads import local_threads, master_off_worker_cores, use_threads
        from autocomp.device.timing_lock import timing_lock

        m = self.measurement
        threads = use_threads(local_threads(m))
        args = session.args(example_input)
        with timing_lock() as waited_s, master_off_worker_cores():
            start = time.time()
            for _ in range(m.warmup):
                session.vm["main"](*args)
            timer = session.vm.time_evaluator("main", tvm.cpu(), number=m.number, repeat=m.repeat,
                                              min_repeat_ms=m.min_repeat_ms)
            results = timer(*args).results
            self.last_window = {"timing_window": [start, time.time()], "timing_lock_wait_s": round(waited_s, 3)}
        return Latency.from_seconds(results, m, threads)

    def reference_session(self, reference: Reference) -> LocalSession:
        """The reference, loaded once per process and kept (every trial is timed beside it)."""
        if "local" not in reference.loaded:
            reference.loaded["local"] = self.session(reference.built)
        return reference.loaded["local"]

    def compare(self, sessions: list[Any], reference: LocalSession,
                example_input: np.ndarray) -> tuple[Latency, list[Comparison]]:
        """Time each session in A/B rounds with the reference (interleave.py), under the timing lock;
        returns the reference's own latency in this window and one comparison per session. A session
        is anything with `warm(x, n)` and `timer(x, number)` (an onnxruntime one too)."""
        import time

        from autocomp.device.threads import local_threads, master_off_worker_cores, use_threads
        from autocomp.device.timing_lock import timing_lock
        from autocomp.measure.interleave import calls_per_sample, rounds_of

        m = self.measurement
        threads = use_threads(local_threads(m))
        with timing_lock() as waited_s, master_off_worker_cores():
            start = time.time()
            for s in (reference, *sessions):
                s.warm(example_input, m.warmup)
            number = calls_per_sample(lambda n: reference.timer(example_input, n)(), m)
            timers = [s.timer(example_input, number) for s in sessions]
            ref_timer = reference.timer(example_input, number)
            ref_latency, results = rounds_of(timers, ref_timer, m, threads, number)
            self.last_window = {"timing_window": [start, time.time()], "timing_lock_wait_s": round(waited_s, 3)}
        return ref_latency, results

    def run(self, built: BuildResult, model: Any, task: Any, timed: bool = True,
            reference: Reference | None = None) -> RunResult:
        """`timed=False`: everything but the latency (a compile worker, whose cores are not quiet).
        With a reference, the latency is timed in A/B rounds beside it (interleave.py)."""
        from autocomp.device.timing_lock import shared_use
        from autocomp.measure import accuracy
        from autocomp.device.threads import local_threads
        from autocomp.measure.memory import PeakRSSProbe

        import time

        t0 = time.perf_counter()
        session = self.session(built)
        comparison = None
        if timed and reference is not None:
            _ref, (comparison,) = self.compare([session], self.reference_session(reference), task.example_input.numpy())
            latency = comparison.candidate
        else:
            latency = self.time(session, task.example_input.numpy()) if timed else None
        t1 = time.perf_counter()
        with shared_use():  # the cores are busy, but not timing: no other process times meanwhile
            # the memory probe runs beside the accuracy run: its figures are its own process's
            probe = (PeakRSSProbe(built, tuple(task.example_input.shape), local_threads(self.measurement))
                     if self.peak_rss else None)
            t_probe = time.perf_counter()
            try:
                acc = accuracy.accuracy_compiled(session.run, task)
            except BaseException:
                if probe is not None:
                    probe.cancel()
                raise
            t2 = time.perf_counter()
            rss = probe.result() if probe is not None else None
        # evaluate: the accuracy run; peak_rss: exporting the probe's library, and waiting for it after
        timings = {"latency": t1 - t0, "evaluate": t2 - t_probe,
                   "peak_rss": (t_probe - t1) + (time.perf_counter() - t2)}
        details: dict[str, Any] = {"timings_s": timings}
        if timed:
            details.update(self.last_window)
        else:
            del timings["latency"]
        return RunResult(latency, self.measured_on, acc, "compiled", rss, details, comparison)
