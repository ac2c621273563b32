"""Which worker runs a trial, and the trials whose worker on this machine is gone.

Every trial records its worker (host, PID, the process's start time) as it starts. A RUNNING trial
whose worker was on this host and no longer exists (killed with SIGKILL, OOM-killed, the machine
rebooted) is failed at once by the next worker here, and its plan queued again, through the same
callback the storage's heartbeat uses for workers on other machines (storage.py). The start time
guards against a reused PID.
"""

from __future__ import annotations

import os
import socket
from typing import Any

ATTR = "worker"


def this_worker() -> dict[str, Any]:
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def is_alive(worker: dict[str, Any]) -> bool:
    """Whether a worker of this host still runs (workers elsewhere are left to the heartbeat)."""
    import psutil

    if worker.get("host") != socket.gethostname():
        return True
    try:
        return abs(psutil.Process(int(worker["pid"])).create_time() - float(worker["started"])) < 0.01
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def fail_dead_trials(study: Any) -> list[int]:
    """Fail the RUNNING trials of workers of this host that are gone and queue their plans again;
    returns their numbers. Two workers sweeping at once fail each trial once (the storage decides)."""
    import optuna

    from autocomp.study.storage import requeue

    storage = study._storage  # noqa: SLF001 - Optuna's own fail_stale_trials works on it the same way
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get(ATTR)
        if worker is None or is_alive(worker):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL):  # noqa: SLF001
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        requeue(study, storage.get_trial(trial._trial_id))  # noqa: SLF001
        failed.append(trial.number)
    return failed
