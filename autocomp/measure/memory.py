"""Peak resident memory of a process that loads the artifact and runs one inference.

Measured in a fresh subprocess (so nothing the search process holds is counted) that imports only the
TVM runtime, loads the exported library and its parameters, and runs the model once. The kernel's
high-water mark (VmHWM) is read after importing the runtime and again after the inference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PeakRSS:
    peak_rss_bytes: int  # the process's high-water mark after one inference
    runtime_rss_bytes: int  # the same mark right after importing the TVM runtime, before the model
    model_rss_bytes: int  # resident memory the loaded model and one inference added (VmRSS after - before)


def save_params(params: tuple[Any, ...], path: Path) -> list[str]:
    import tvm

    names = [f"p{i:03d}" for i in range(len(params))]
    tvm.runtime.save_param_dict_to_file({n: tvm.runtime.tensor(a) for n, a in zip(names, params)}, str(path))
    return names


class PeakRSSProbe:
    """The probe process, started: it loads the artifact and runs it while the caller does other work
    (the candidate's accuracy run), since memory, unlike time, is not disturbed by busy cores."""

    def __init__(self, built: Any, input_shape: tuple[int, ...], threads: int, timeout_s: float = 120) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="autocomp-rss-")
        self._timeout_s = timeout_s
        try:
            lib, params = Path(self._dir.name) / "model.so", Path(self._dir.name) / "params.bin"
            built.executable.export_library(str(lib))
            save_params(built.params, params)
            # the timed thread count, not a compile worker's 1-thread limit: each thread has its own stack
            env = dict(os.environ, TVM_USE_RUNTIME_LIB="1", TVM_NUM_THREADS=str(threads))
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "autocomp.measure.rss_probe", str(lib), str(params), json.dumps(list(input_shape))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                start_new_session=True,  # a terminal's Ctrl-C is for the search, which ends the probe itself
            )
        except BaseException:
            self._dir.cleanup()
            raise

    def result(self) -> PeakRSS:
        """Wait for the probe (at most timeout_s from now) and read its figures."""
        from autocomp.errors import CandidateError

        try:
            out, err = self._proc.communicate(timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise CandidateError(f"peak-RSS probe did not finish in {self._timeout_s:.0f} s") from None
        finally:
            self._dir.cleanup()
        if self._proc.returncode != 0:
            raise CandidateError(f"peak-RSS probe failed: {err.strip().splitlines()[-1:] or self._proc.returncode}")
        data = json.loads(out.strip().splitlines()[-1])
        return PeakRSS(int(data["peak_rss_bytes"]), int(data["runtime_rss_bytes"]), int(data["model_rss_bytes"]))

    def cancel(self) -> None:
        """Stop the probe (the candidate failed or the search was interrupted meanwhile)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._dir.cleanup()
