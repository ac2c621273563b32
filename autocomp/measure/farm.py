"""A local device farm on loopback: a TVM RPC tracker and RPC servers, as subprocesses.

For trying the farm path out (`scripts/farm.py`) and for the tests. Real boards join the same way:
`python -m tvm.exec.rpc_server --tracker HOST:9190 --key rpi4` on the board. Everything here listens on
127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class Farm:
    """Processes of one local farm; `stop()` ends them all."""

    tracker_port: int
    log_dir: Path
    tracker: subprocess.Popen | None = None  # type: ignore[type-arg]
    servers: dict[str, subprocess.Popen] = field(default_factory=dict)  # type: ignore[type-arg]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.tracker_port}"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def add_server(self, name: str, key: str, emulated: bool = False) -> subprocess.Popen:  # type: ignore[type-arg]
        """An RPC server registered under `key`: this machine's Python, or the emulated aarch64 one
        (then the key must end in '-emulated', so that results say so)."""
        from autocomp.measure import emulator

        port = free_port()
        if emulated:
            if not emulator.is_emulated_key(key):
                raise ValueError(f"an emulated server's key must end in {emulator.SUFFIX!r}, got {key!r}")
            prefix, env = emulator.server_command(), emulator.server_env()
        else:
            prefix, env = [sys.executable, "-m", "tvm.exec.rpc_server"], dict(os.environ)
        cmd = [*prefix, "--host", LOOPBACK, "--port", str(port), "--port-end", str(port + 1),
               "--tracker", self.address, "--key", key]
        with open(self.log(name), "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.servers[name] = proc
        return proc

    def kill_server(self, name: str) -> None:
        _kill(self.servers.pop(name))

    def wait_for(self, key: str, count: int, timeout_s: float = 60.0) -> None:
        from autocomp.measure.rpc import tracker_summary

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if tracker_summary(self.address).get(key, {}).get("total", 0) >= count:
                    return
            except Exception:  # the tracker may still be starting
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{count} server(s) of key {key!r} did not register at {self.address} "
                           f"within {timeout_s:.0f} s; see the logs in {self.log_dir}")

    def stop(self) -> None:
        for name in list(self.servers):
            self.kill_server(name)
        if self.tracker is not None:
            _kill(self.tracker)
            self.tracker = None


def _kill(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


def start_farm(log_dir: Path, port: int | None = None) -> Farm:
    """Start a tracker on loopback (on `port`, or a free one) and return the farm; add servers after."""
    log_dir.mkdir(parents=True, exist_ok=True)
    farm = Farm(port or free_port(), log_dir)
    with open(farm.log("tracker"), "wb") as log:
        farm.tracker = subprocess.Popen(
            [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", LOOPBACK, "--port", str(farm.tracker_port),
             "--port-end", str(farm.tracker_port + 1)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, farm.tracker_port)) == 0:
                return farm
        if farm.tracker.poll() is not None:
            break
        time.sleep(0.2)
    farm.stop()
    raise RuntimeError(f"the RPC tracker did not start; see {farm.log('tracker')}")
