"""The tuning database: tiles timed once per workload, recorded per device, reused by later builds."""

import numpy as np

from autocomp.build.compile import build
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from autocomp.build.kernels.tuning import TuningDB


def test_new_workloads_are_tuned_once_then_read_from_the_database(digits_task, digits_ctx, host, tmp_path):
    plan = CompressionPlan.uniform(digits_ctx.layers)  # fp32: every conv uses the tiled template
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    reference = build(lowered, host)

    db = TuningDB.for_profile("host", tmp_path)
    tuned = build(lowered, host, db, tune_trials=4)
    convs = {k: v for k, v in tuned.kernels.items() if "conv2d" in k}  # other kernels get fixed templates
    assert len(convs) == 2 and all(s.startswith("scheduled (tuned now") for s in convs.values())
    assert (db.hits, db.misses) == (0, 2)
    records = TuningDB.for_profile("host", tmp_path).records  # persisted
    assert len(records) == 2
    for r in records.values():
        assert 1 <= r["tried"] <= 4 and r["kernel_us"] <= r["default_us"] and len(r["tile"]) == 3

    again = TuningDB.for_profile("host", tmp_path)
    warm = build(lowered, host, again, tune_trials=4)
    assert {v for k, v in warm.kernels.items() if "conv2d" in k} == {"scheduled (tile from the tuning database)"}
    assert (again.hits, again.misses) == (2, 0)

    x = digits_task.eval_inputs[:16].numpy()
    a, b = LocalSession(reference), LocalSession(warm)
    for i in range(len(x)):
        assert np.allclose(a.run(x[i : i + 1]), b.run(x[i : i + 1]), rtol=1e-5, atol=1e-5)


def test_records_from_two_workers_are_both_kept(tmp_path):
    one, two = TuningDB.for_profile("p", tmp_path), TuningDB.for_profile("p", tmp_path)
    one.store("a", {"tile": [16, 1, 4], "kernel_us": 5.0, "default_us": 6.0, "tried": 2})
    two.store("b", {"tile": [8, 2, 2], "kernel_us": 7.0, "default_us": 7.0, "tried": 1})
    two.store("a", {"tile": [8, 1, 1], "kernel_us": 9.0, "default_us": 9.0, "tried": 1})  # slower: not kept
    merged = TuningDB.for_profile("p", tmp_path).records
    assert set(merged) == {"a", "b"} and merged["a"]["tile"] == [16, 1, 4]


WRITER = """
import sys
from pathlib import Path
from autocomp.build.kernels.tuning import TuningDB
db = TuningDB.for_profile("host", Path(sys.argv[1]))
for i in range(100000):
    db.store(f"w{i}", {"tile": [8, 1, 4], "kernel_us": 1.0, "default_us": 2.0, "tried": 1, "pad": "x" * 2000})
    print(i, flush=True)
"""


def test_a_killed_writer_never_leaves_a_broken_database(tmp_path):
    """SIGKILL a process storing records as fast as it can, five times: the file always reads whole,
    with every record the writer had finished."""
    import json
    import signal
    import subprocess
    import sys
    import time

    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        done = -1
        for _ in range(20 + 7 * attempt):  # a different moment each time
            done = int(proc.stdout.readline())
        time.sleep(0.001 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        records = json.loads((tmp_path / "host.json").read_text())["records"]  # whole JSON, not a torn write
        assert {f"w{i}" for i in range(done + 1)} <= set(records)
