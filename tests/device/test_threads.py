import os
import subprocess
import sys
import threading

import pytest
import tvm

from autocomp.build.compile import build
from autocomp.device.hostcpu import physical_cores
from autocomp.lower import lower
from autocomp.measure.local import LocalRunner
from autocomp.device.threads import master_off_worker_cores, use_threads
from autocomp.device.profiles import Measurement


def _fake_sysfs(root, topology):
    for cpu, (package, core) in topology.items():
        d = root / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{package}\n")
        (d / "core_id").write_text(f"{core}\n")


def test_physical_cores_count_smt_siblings_once(tmp_path):
    _fake_sysfs(tmp_path, {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 1), 4: (1, 0)})
    assert physical_cores({0, 1, 2, 3, 4}, str(tmp_path)) == 3  # core 0 of package 1 is another core
    assert physical_cores({0, 1}, str(tmp_path)) == 1
    assert physical_cores({0, 7}, str(tmp_path)) == 2  # no topology for cpu7: the logical count


def test_a_fresh_process_times_with_one_thread_per_physical_core():
    """TVM alone starts half the logical CPUs on x86; the timing must run one thread per core."""
    code = ("from autocomp.device.threads import local_threads, use_threads\n"
            "from autocomp.device.profiles import Measurement\n"
            "print(use_threads(local_threads(Measurement())))")
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) == physical_cores()


def test_the_profile_thread_count_is_used_and_recorded(digits_task, digits_ctx, host):
    built = build(lower(digits_ctx.model, digits_task.example_input), host)
    x = digits_task.example_input.numpy()
    default = LocalRunner(Measurement(number=2, repeat=3, min_repeat_ms=1, warmup=1))
    assert default.time(default.session(built), x).threads == physical_cores()
    one = LocalRunner(Measurement(number=2, repeat=3, min_repeat_ms=1, warmup=1, threads=1))
    assert one.time(one.session(built), x).threads == 1
    assert default.time(default.session(built), x).threads == physical_cores()  # back up to its start size


def test_the_master_thread_leaves_the_cores_tvm_pinned_its_workers_to():
    """TVM pins worker i to core i and lets the master (which runs task 0) go anywhere; timed on a
    worker's core, the two share it. While timing, the master is kept off those cores; afterwards
    its own affinity is back, for the threads it starts later."""
    own = os.sched_getaffinity(0)
    if len(own) < 2 or physical_cores() < 2:
        pytest.skip("one core: nothing to keep apart")
    assert use_threads(2) == 2
    tvm.get_global_func("runtime.config_threadpool")(1, 2)  # a fresh pool: its worker is pinned now
    me = threading.get_native_id()
    workers = set()
    for tid in os.listdir("/proc/self/task"):
        cpus = os.sched_getaffinity(int(tid))
        if len(cpus) == 1 and int(tid) != me:
            workers |= cpus
    assert workers, "TVM pinned no worker thread"
    with master_off_worker_cores():
        inside = os.sched_getaffinity(0)
    assert inside and not inside & workers
    assert os.sched_getaffinity(0) == own
