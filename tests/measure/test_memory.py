import json
import subprocess
import sys

from autocomp.build.compile import build
from autocomp.lower import lower
from autocomp.measure.memory import PeakRSSProbe, save_params


def test_peak_rss_counts_the_runtime_and_the_model_not_torch(digits_task, digits_ctx, host, tmp_path):
    """The probe is a deployment's process: the TVM runtime, the library, its parameters, one inference.
    tvm_ffi would import torch (a few hundred MiB) if the probe let it; no deployment carries that."""
    built = build(lower(digits_ctx.model, digits_task.example_input), host)
    rss = PeakRSSProbe(built, tuple(digits_task.example_input.shape), threads=1).result()
    assert rss.peak_rss_bytes >= rss.runtime_rss_bytes > 0 and rss.model_rss_bytes > 0

    lib, params = tmp_path / "model.so", tmp_path / "params.bin"
    built.executable.export_library(str(lib))
    save_params(built.params, params)
    shape = json.dumps(list(digits_task.example_input.shape))
    out = subprocess.run([sys.executable, "-m", "autocomp.measure.rss_probe", str(lib), str(params), shape],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1])["torch_mapped"] is False


def test_a_cancelled_probe_leaves_no_process_and_no_files(digits_task, digits_ctx, host):
    """The probe runs beside the accuracy run; when that fails or is interrupted, the probe goes too."""
    import os

    built = build(lower(digits_ctx.model, digits_task.example_input), host)
    probe = PeakRSSProbe(built, tuple(digits_task.example_input.shape), threads=1)
    directory = probe._dir.name
    assert os.path.isdir(directory) and probe._proc.poll() is None
    probe.cancel()
    assert probe._proc.returncode is not None and not os.path.exists(directory)  # ended, reaped, removed
