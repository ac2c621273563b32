"""Bad input as a user meets it: one line naming what is wrong and the fix, exit 2, nothing written.

The broken tasks, profiles and plans are real files in a temporary directory, run through the real
command line."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

TASKS = '''
import torch
from torch import nn

from autocomp.tasks import Task


def _task(name, model, shape=(1, 1, 8, 8)):
    x = torch.randn(16, *shape[1:])
    return Task(name=name, build_model=lambda: model, example_input=torch.randn(*shape), calib_data=x,
                eval_inputs=x, eval_targets=torch.zeros(16, dtype=torch.long))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class NaNNet(Net):
    def forward(self, x):
        return super().forward(x) * float("nan")


class Branchy(Net):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
            return super().forward(x)
        return -super().forward(x)


class Spectral(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40, 3)

    def forward(self, x):
        return self.fc(torch.fft.rfft(x).abs().flatten(1))  # TVM's importer has no converter for rfft


def nan_outputs():
    return _task("nan", NaNNet())


def unexportable():
    return _task("branchy", Branchy())


def spectral():
    return _task("spectral", Spectral())


def no_layers():
    return _task("flat", nn.Sequential(nn.Flatten(), nn.ReLU()))


def wrong_shape():
    return _task("shape", Net(), shape=(1, 3, 8, 8))


def raises():
    raise FileNotFoundError("/data/train.npz is missing")
'''

PLAN_BAD_TYPE = {"_type": "autocomp.CompressionPlan", "_version": 1,
                 "layers": [{"name": "conv", "w_bits": "8", "a_bits": 8, "prune": 0.0}]}
PLAN_BAD_PRUNE = {"_type": "autocomp.CompressionPlan", "_version": 1,
                  "layers": [{"name": "conv", "w_bits": 8, "a_bits": 8, "prune": 0.9}]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "badtasks.py").write_text(TASKS)
    profiles = d / "profiles"
    profiles.mkdir()
    (profiles / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (profiles / "badtarget.toml").write_text(textwrap.dedent('''
        name = "badtarget"
        description = "a target TVM rejects"
        kind = "cpu"
        measure = "local"
        [target]
        kind = "no-such-kind"
    '''))
    (d / "plan_type.json").write_text(json.dumps(PLAN_BAD_TYPE))
    (d / "plan_prune.json").write_text(json.dumps(PLAN_BAD_PRUNE))
    return d


def run(workdir, *args):
    path = os.pathsep.join(p for p in (str(workdir), os.environ.get("PYTHONPATH", "")) if p)  # the caller's kept: a worktree's autocomp wins
    env = {**os.environ, "PYTHONPATH": path, "AUTOCOMP_PROFILE_PATH": str(workdir / "profiles")}
    return subprocess.run([sys.executable, "-m", "autocomp", *args], capture_output=True, text=True,
                          cwd=workdir, env=env, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["search", "--task", "badtasks:nan_outputs"], "outputs on its example_input are not finite"),
    (["search", "--task", "badtasks:unexportable"], "torch.export cannot export the model at"),
    (["search", "--task", "badtasks:spectral"], "TVM's Relax importer has no conversion for the torch op '_fft_r2c' at"),
    (["search", "--task", "badtasks:no_layers"], "nothing to search: task flat's model has no Conv2d, Conv1d or Linear layer (its layer types: Flatten, ReLU)"),
    (["search", "--task", "badtasks:wrong_shape"], "the model fails on its example_input of shape (1, 3, 8, 8)"),
    (["search", "--task", "badtasks:raises"], "raises() raised FileNotFoundError: /data/train.npz is missing"),
    (["search", "--task", "digits", "--device", "binary"], "binary.toml: is not a text file"),
    (["search", "--task", "badtasks:raises", "--device", "badtarget"], "TVM rejects its target"),
    (["evaluate", "--task", "badtasks:raises", "--device", "badtarget", "--plan", "fp32"], "TVM rejects its target"),
    (["search", "--task", "digits", "--timeout", "nan"], "--timeout must be positive seconds, got nan"),
    (["search", "--task", "digits", "--max-accuracy-drop", "inf"], "--max-accuracy-drop must be a fraction"),
    (["search", "--task", "digits", "--tracker-timeout", "nan"], "--tracker-timeout must be positive"),
    (["evaluate", "--task", "digits", "--plan", "plan_type.json"], "w_bits must be int, got str '8'"),
    (["evaluate", "--task", "digits", "--plan", "plan_prune.json"], "prune=0.9 is outside [0, 0.75]"),
    (["search", "--task", "digits", "--device", "rpi4", "--tracker", "127.0.0.1:9", "--tracker-timeout", "2"],
     "cannot reach the RPC tracker at 127.0.0.1:9 within 2 s"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(workdir, args, message):
    r = run(workdir, *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("autocomp: error: "), r.stderr
    assert message in lines[0]
    assert not (workdir / "runs").exists()  # no study was created


def test_a_broken_profile_does_not_hide_the_others(workdir):
    r = run(workdir, "devices", "--json")
    assert r.returncode == 0
    names = {d["name"] for d in json.loads(r.stdout)}
    assert {"host", "rpi4", "badtarget"} <= names and "binary" not in names
    assert "binary.toml: is not a text file" in r.stderr
