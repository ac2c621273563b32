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


def measure_peak_rss(built: Any, input_shape: tuple[int, ...], threads: int, timeout_s: float = 120) -> PeakRSS:
    with tempfile.TemporaryDirectory(prefix="autocomp-rss-") as d:
        lib, params = Path(d) / "model.so", Path(d) / "params.bin"
        built.executable.export_library(str(lib))
        save_params(built.params, params)
        # the timed thread count, not a compile worker's 1-thread limit: each thread has its own stack
        env = dict(os.environ, TVM_USE_RUNTIME_LIB="1", TVM_NUM_THREADS=str(threads))
        proc = subprocess.run(
            [sys.executable, "-m", "autocomp.measure.rss_probe", str(lib), str(params), json.dumps(list(input_shape))],
            capture_output=True, text=True, timeout=timeout_s, env=env,
            start_new_session=True,  # a terminal's Ctrl-C is for the search, which ends the probe itself
        )
    if proc.returncode != 0:
        from autocomp.errors import CandidateError

        raise CandidateError(f"peak-RSS probe failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return PeakRSS(int(data["peak_rss_bytes"]), int(data["runtime_rss_bytes"]), int(data["model_rss_bytes"]))
