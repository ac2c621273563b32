"""RPCRunner: measure on a device of the profile's key, obtained from a TVM RPC tracker.

The steps are MetaSchedule's RPC runner's: request a session, upload the library, load it, allocate the
inputs, time with the remote time evaluator, check outputs, remove the file; cleanup always runs.
Each attempt runs in a worker thread bounded by a timeout: a device that dies or hangs is given up
(its session closed, so the tracker can hand it out again once it answers) and the measurement is
retried on another device of the key, a bounded number of times. The tracker does the queuing.
"""

from __future__ import annotations

import gc
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from autocomp.errors import CandidateError, UserError
from autocomp.measure.base import Latency, MeasureOptions, Reference, RunResult, first_output
from autocomp.device.threads import remote_threads
from autocomp.device.profiles import DeviceProfile

AGREEMENT_SAMPLES = 32
TRACKER_TIMEOUT_S = 10.0  # how long a tracker may take to accept a connection (--tracker-timeout)
AGREEMENT_ATOL = 1e-3  # fp32 outputs of the same plan; integer layers agree exactly up to FMA ties


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--tracker must be HOST:PORT (e.g. 127.0.0.1:9190), got {text!r}")
    return host, int(port)


def tracker_summary(tracker: str, timeout_s: float = TRACKER_TIMEOUT_S) -> dict[str, dict[str, int]]:
    """Per key: servers registered (total), free, busy (total - free) and requests waiting (pending):
    the tracker's own summary."""
    import socket

    from tvm import rpc

    host, port = parse_tracker(tracker)
    try:  # TVM's client retries for a minute, logging every try: ask the port once first
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(
            f"cannot reach the RPC tracker at {tracker} within {timeout_s:g} s ({exc.strerror or exc}); is it "
            f"running? (python -m tvm.exec.rpc_tracker --host {host} --port {port}; --tracker-timeout waits longer)"
        ) from exc
    try:
        session = rpc.connect_tracker(host, port)
        data = session.summary()
        session.close()
    except (OSError, RuntimeError) as exc:
        raise UserError(
            f"cannot reach the RPC tracker at {tracker} ({exc}); is it running? "
            f"(python -m tvm.exec.rpc_tracker --host {host} --port {port})"
        ) from exc
    out: dict[str, dict[str, int]] = {}
    for item in data.get("server_info", []):
        key = str(item["key"]).split(":", 1)[-1]
        out.setdefault(key, {"total": 0, "free": 0, "pending": 0})["total"] += 1
    for key, q in data.get("queue_info", {}).items():
        entry = out.setdefault(key, {"total": 0, "free": 0, "pending": 0})
        entry["free"], entry["pending"] = int(q.get("free", 0)), int(q.get("pending", 0))
    for entry in out.values():
        entry["busy"] = max(entry["total"] - entry["free"], 0)
    return out


class RPCRunner:
    def __init__(self, profile: DeviceProfile, options: MeasureOptions) -> None:
        self.profile = profile
        self.options = options
        self.tracker = options.tracker or ""
        self.host, self.port = parse_tracker(self.tracker)
        self.key = options.rpc_key or profile.rpc_key
        if not self.key:
            raise UserError(f"device '{profile.name}' has no rpc_key; pass --rpc-key KEY")
        summary = tracker_summary(self.tracker, options.tracker_timeout_s)
        if summary.get(self.key, {}).get("total", 0) == 0:
            keys = ", ".join(f"{k} ({v['total']})" for k, v in sorted(summary.items())) or "none"
            raise UserError(
                f"no device with key '{self.key}' is registered at the tracker {self.tracker} "
                f"(registered keys: {keys}); start one with: python -m tvm.exec.rpc_server "
                f"--tracker {self.tracker} --key {self.key}"
            )
        from autocomp.measure.emulator import is_emulated_key

        kind = "emulated" if is_emulated_key(self.key) else "rpc"
        self.measured_on = f"{kind}:{self.key}@{self.tracker}"

    def _library(self, built: Any, directory: Path) -> Path:
        from autocomp.build.compile import export_library

        lib = export_library(built, self.profile, directory)
        if lib.suffix != ".so":
            raise CandidateError(
                f"cannot link the library for '{self.profile.name}': the cross compiler "
                f"'{self.profile.cross_cc}' is not installed"
            )
        return lib

    def _reference_library(self, reference: Reference) -> tuple[Path, tuple[np.ndarray, ...]]:
        """The reference, linked once per process (uploaded beside every candidate)."""
        if "rpc" not in reference.loaded:
            import atexit
            import shutil

            d = Path(tempfile.mkdtemp(prefix="autocomp-rpc-ref-"))
            atexit.register(shutil.rmtree, d, True)
            reference.loaded["rpc"] = self._library(reference.built, d)
        return reference.loaded["rpc"], reference.built.params

    def run(self, built: Any, model: Any, task: Any, reference: Reference | None = None) -> RunResult:
        """With a reference, the candidate is timed in A/B rounds beside it on the same device, in the
        same session (interleave.py)."""
        from autocomp.measure import accuracy

        errors: list[str] = []
        ref = self._reference_library(reference) if reference is not None else None
        with tempfile.TemporaryDirectory(prefix="autocomp-rpc-") as d:
            lib = self._library(built, Path(d))
            xs = task.eval_inputs[:AGREEMENT_SAMPLES].numpy()
            for attempt in range(1 + self.options.retries):
                box: dict[str, Any] = {}
                worker = threading.Thread(target=self._attempt, args=(lib, built.params, xs, box, ref), daemon=True)
                worker.start()
                worker.join(self.options.timeout_s)
                if worker.is_alive():
                    errors.append(f"attempt {attempt + 1}: no answer within {self.options.timeout_s:.0f} s")
                    session = box.get("session")
                    if session is not None:  # give the device up; a hung call keeps its thread, not us
                        _close(session)
                    continue
                if "error" in box:
                    errors.append(f"attempt {attempt + 1}: {box['error']}")
                    continue
                outputs = box["outputs"]
                want = accuracy.torch_outputs(model, task.eval_inputs[:AGREEMENT_SAMPLES]).numpy()
                err = float(np.abs(outputs - want).max())
                same_class = float((outputs.argmax(1) == want.argmax(1)).mean())
                agree = same_class >= 0.995 and err <= max(AGREEMENT_ATOL, 0.05 * float(np.abs(want).max()))
                details = {"rpc_key": self.key, "tracker": self.tracker, "attempts": attempt + 1,
                           "failed_attempts": errors, "agreement_samples": len(xs), "agreement_max_abs_err": err,
                           "agreement_same_class": same_class, "server": box.get("server", "")}
                if not agree:
                    raise CandidateError(
                        f"the device's outputs disagree with the torch simulation on {len(xs)} samples "
                        f"(max abs error {err:.3g}, same class {same_class:.1%}); its accuracy cannot be trusted")
                source = f"simulation, agreeing with the device on {len(xs)} samples (max abs err {err:.2g})"
                return RunResult(box["latency"], self.measured_on, None, source, None, details, box.get("comparison"))
        raise CandidateError(f"no device of key '{self.key}' at {self.tracker} completed the measurement: "
                             + "; ".join(errors))

    def _attempt(self, lib: Path, params: tuple[np.ndarray, ...], xs: np.ndarray, box: dict[str, Any],
                 ref: tuple[Path, tuple[np.ndarray, ...]] | None = None) -> None:
        """One device: request, upload, load, time (beside the reference when there is one), run the
        agreement samples, remove; errors are data."""
        import tvm
        from tvm import rpc
        from tvm.runtime.vm import VirtualMachine

        session = None
        try:
            tracker = rpc.connect_tracker(self.host, self.port)
            session = tracker.request(self.key, priority=1, session_timeout=max(self.options.timeout_s * 2, 60))
            box["session"] = session
            session.upload(str(lib))
            dev = session.cpu() if self.profile.kind == "cpu" else session.device(self._device_type(), 0)
            vm = VirtualMachine(session.load_module(lib.name), dev)
            remote_params = [tvm.runtime.tensor(p, dev) for p in params]
            m = self.profile.measurement
            threads = remote_threads(session, m.threads) if self.profile.kind == "cpu" else None
            x0 = tvm.runtime.tensor(np.ascontiguousarray(xs[:1]), dev)
            for _ in range(m.warmup):
                vm["main"](x0, *remote_params)
            if ref is None:
                timer = vm.time_evaluator("main", dev, number=m.number, repeat=m.repeat, min_repeat_ms=m.min_repeat_ms)
                latency = Latency.from_seconds(timer(x0, *remote_params).results, m, threads)
            else:
                box["comparison"] = _compare_remote(session, dev, vm, remote_params, x0, ref, m, threads)
                latency = box["comparison"].candidate
            outputs = []
            for i in range(len(xs)):
                vm.set_input("main", tvm.runtime.tensor(np.ascontiguousarray(xs[i : i + 1]), dev), *remote_params)
                vm.invoke_stateful("main")
                outputs.append(first_output(vm.get_outputs("main")))
            box["latency"], box["outputs"] = latency, np.concatenate(outputs)
            try:
                session.remove(lib.name)
            except Exception:  # removal is best effort; the server's work dir is temporary anyway
                pass
        except Exception as exc:  # the device died, refused or broke: the runner retries elsewhere
            box["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        finally:
            if session is not None:
                _close(session)
            gc.collect()  # the session ends only once every remote handle is gone

    def _device_type(self) -> str:
        return str(self.profile.target.get("kind", "cpu"))


def _compare_remote(session: Any, dev: Any, vm: Any, params: list[Any], x0: Any,
                    ref: tuple[Path, tuple[np.ndarray, ...]], m: Any, threads: int | None) -> Any:
    """The candidate's A/B rounds beside the reference, both loaded on this device."""
    import tvm
    from tvm.runtime.vm import VirtualMachine

    from autocomp.measure.interleave import calls_per_sample, rounds_of

    ref_lib, ref_params = ref
    remote_name = f"ref-{ref_lib.name}"
    session.upload(str(ref_lib), target=remote_name)
    ref_vm = VirtualMachine(session.load_module(remote_name), dev)
    ref_remote = [tvm.runtime.tensor(p, dev) for p in ref_params]
    for _ in range(m.warmup):
        ref_vm["main"](x0, *ref_remote)

    def timer(machine: Any, args: list[Any], number: int) -> Any:
        evaluator = machine.time_evaluator("main", dev, number=number, repeat=1, min_repeat_ms=0)
        return lambda: float(evaluator(*args).results[0])

    number = calls_per_sample(lambda n: timer(ref_vm, [x0, *ref_remote], n)(), m)
    _ref, (comparison,) = rounds_of([timer(vm, [x0, *params], number)], timer(ref_vm, [x0, *ref_remote], number),
                                    m, threads, number)
    try:
        session.remove(remote_name)
    except Exception:  # best effort, as for the candidate's library
        pass
    return comparison


def _close(session: Any) -> None:
    try:
        session._sess = None  # drops the RPC session; the server returns to the tracker's free pool
    except Exception:
        pass

