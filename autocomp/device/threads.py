"""How many threads TVM's runtime runs a timed model with.

Why this is its own concern: TVM's thread pool reads ``TVM_NUM_THREADS`` once, when it first starts,
and without it an x86 runtime starts *half* the logical CPUs (it assumes two SMT threads per core).
On a machine without SMT, such as a 2-core cloud VM, that is one thread on two cores, so a latency
timed with TVM's default is half the speed the device gives the model. The measurement therefore
asks for one thread per physical core (or the profile's ``measurement.threads``) and every result
records the count it was timed with, so that a deployment can reproduce it (``TVM_NUM_THREADS=N``).
Training in PyTorch has the opposite need (torch_threads): a fixed count, whatever the machine.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from autocomp.device.profiles import Measurement


def local_threads(measurement: Measurement) -> int:
    """Threads for timing on this machine: the profile's count, else one per physical core."""
    from autocomp.device import hostcpu

    if measurement.threads:
        return measurement.threads
    cpu = hostcpu.detect()
    return cpu.physical_cores or cpu.cores


def use_threads(n: int) -> int:
    """Ask this process's TVM thread pool for `n` threads; returns the number it actually runs.

    Before the pool starts, the environment decides; a running pool is reconfigured, but never beyond
    the threads it started with, so a process that ran TVM code with fewer threads keeps those, and the
    caller records the real count."""
    import tvm

    os.environ["TVM_NUM_THREADS"] = str(n)
    running = int(tvm.get_global_func("runtime.NumThreads")())
    if running != n:
        tvm.get_global_func("runtime.config_threadpool")(1, n)  # 1: every (equal) core; n threads
        running = int(tvm.get_global_func("runtime.NumThreads")())
    return running


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op thread count fixed at `n` for the duration, then restored.

    Why: a backward pass reduces each weight's gradient over the batch in per-thread chunks, so the
    trained weights depend on the thread count. A pruned candidate is distilled in a build worker (one
    thread) during the search but in the main process (every core) by `autocomp export`, `evaluate` and
    the knapsack's checks: at the process's own count, FashionNet `w8a8 p0.25` ended on other weights
    there (simulated accuracy 0.888 against 0.886), so the exported artifact was not the one measured."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def remote_threads(session: object, n: int) -> int | None:
    """The thread count of a remote device's runtime (shrunk to `n` when n > 0); None when its
    runtime cannot say."""
    try:
        if n:
            session.get_function("runtime.config_threadpool")(1, n)  # type: ignore[attr-defined]
        return int(session.get_function("runtime.NumThreads")())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an older runtime without these functions: the count is unknown
        return None


@contextmanager
def master_off_worker_cores() -> Iterator[None]:
    """For the duration, keep this thread (TVM's master: it runs task 0 of every parallel loop) off the
    cores TVM pinned its worker threads to.

    Why: TVM pins worker i to core i but lets the master run anywhere, and nothing stops the kernel
    from scheduling it on a worker's core, where the two share one core (the worker spins between
    tasks). On this 2-core VM that happened after any pause (a sleep between timings) and then
    stayed: FashionNet int8 timed 0.226 ms instead of 0.156 for the whole run. Unpinned workers
    (TVM_BIND_THREADS=0) doubled up the same way. The thread's own affinity is restored afterwards,
    so threads it starts later (torch's, onnxruntime's) are not confined."""
    if not hasattr(os, "sched_getaffinity") or not os.path.isdir("/proc/self/task"):  # not Linux
        yield
        return
    own = os.sched_getaffinity(0)
    me = threading.get_native_id()
    taken: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            cpus = os.sched_getaffinity(int(tid)) if int(tid) != me else set()
        except OSError:  # the thread ended meanwhile
            continue
        if len(cpus) == 1:  # pinned to one core: a TVM worker
            taken |= cpus
    free = own - taken
    if not free or free == own:
        yield
        return
    os.sched_setaffinity(0, free)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)
