"""Study storage: an Optuna RDB URL, checked before anything is written to it, opened with heartbeats.

Why heartbeats: a worker killed with SIGKILL (or a machine that dies) leaves its trial RUNNING, and a
RUNNING trial is never measured again. With a heartbeat every HEARTBEAT_S seconds, a trial whose
worker has been silent for GRACE_S is failed by the next worker that looks (Optuna's
`fail_stale_trials`), and `requeue` puts its plan back in the queue. On one machine
study/liveness.py finds such trials at once, from the worker's PID; `requeue` is the policy for both.

PostgreSQL: SQLAlchemy maps a bare `postgresql://` URL to psycopg 3, which the `postgres` extra
installs (`pip install autocomp[postgres]`); `postgresql+DRIVER://` URLs are used as given.
Passwords never reach a message: `redact` masks them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from autocomp.errors import UserError
from autocomp.paths import runs_dir

SQLITE_MAGIC = b"SQLite format 3\x00"
HEARTBEAT_S = int(os.environ.get("AUTOCOMP_HEARTBEAT_S", "10"))  # tests shorten it
GRACE_S = 6 * HEARTBEAT_S  # a timing or a long compile may hold the worker's main thread this long
MAX_RETRY = 3  # a plan whose worker died this many times is not tried again (it may be what kills it)
_PASSWORD = re.compile(r"(://[^:/@]+:).*@")


def redact(url: str) -> str:
    """The URL with its password masked, for messages, logs and manifests."""
    return _PASSWORD.sub(r"\1***@", url)


def default_storage() -> str:
    return f"sqlite:///{runs_dir() / 'autocomp.db'}"


def normalise(storage: str | None, create: bool) -> str:
    """A storage URL; a bare path means a SQLite file. Problems are one-line UserErrors."""
    default = not storage
    if not storage:
        storage = default_storage()
    elif "://" not in storage:
        storage = f"sqlite:///{Path(storage)}"
    if storage.startswith(("postgresql://", "postgres://")):
        storage = "postgresql+psycopg://" + storage.split("://", 1)[1]
        _require("psycopg", storage)
    if storage.startswith("sqlite:///"):
        path = Path(storage[len("sqlite:///"):])
        if path.exists():
            if not path.is_file():
                raise UserError(f"storage {path} is not a file; give a SQLite file path or an RDB URL")
            try:
                with open(path, "rb") as f:
                    head = f.read(16)
            except OSError as exc:
                raise UserError(f"storage {path} cannot be read ({exc.strerror}); check its permissions") from exc
            if head and head != SQLITE_MAGIC:
                raise UserError(f"storage {path} is not a SQLite database; give another path with --storage")
        elif not create:
            raise UserError(f"storage {path} does not exist; run 'autocomp search' first or pass --storage")
        elif not path.parent.is_dir() and not default:
            raise UserError(f"storage directory {path.parent} does not exist; create it or pass another --storage")
    return storage


def _require(module: str, url: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"storage {redact(url)} needs the PostgreSQL driver psycopg 3: "
                        "pip install 'autocomp[postgres]' (or 'psycopg[binary]')")


def open_storage(url: str, create: bool = False) -> Any:
    """Open (with create: and make the default runs/ directory); call only once inputs are checked."""
    import time
    import warnings

    import optuna

    if create and url == default_storage():
        runs_dir().mkdir(parents=True, exist_ok=True)
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sqlite = url.startswith("sqlite")
                rdb = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                                 heartbeat_stale_trial_callback=requeue,
                                                 engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None)
                return _write_locked_transactions(rdb) if sqlite else rdb
        except Exception as exc:  # sqlalchemy raises many types; the user needs one line
            if _schema_race(exc) and attempt < 3:
                time.sleep(0.5 + attempt)  # workers started together: another one is creating the tables
                continue
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot open storage {redact(url)}: {redact(msg)}") from exc
    raise AssertionError("unreachable: the last attempt returns or raises")


def _write_locked_transactions(rdb: Any) -> Any:
    """Every SQLite transaction of `rdb` begins with the database's write lock (BEGIN IMMEDIATE).

    Why: Python's sqlite3 opens a transaction only at the first write, so the row Optuna reads "FOR
    UPDATE" before claiming a WAITING trial is not locked (SQLite has no row locks): two workers both
    read WAITING and both claimed the same enqueued baseline, and the second to finish crashed with
    "Cannot tell a COMPLETE trial". With the lock taken first, the second worker reads RUNNING and
    takes the next trial. SQLAlchemy's own recipe for pysqlite; PostgreSQL's FOR UPDATE needs nothing.
    """
    from sqlalchemy import event

    @event.listens_for(rdb.engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver begins nothing itself ...

    @event.listens_for(rdb.engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # ... SQLAlchemy begins, with the write lock

    rdb.engine.dispose()  # connections opened before the listeners: closed, new ones get them
    return rdb


def _schema_race(exc: Exception) -> bool:
    """Whether opening failed because another worker was creating the same tables at that moment:
    SQLite says "table ... already exists", PostgreSQL "relation ... already exists" or a duplicate key
    in its catalogue, either may say UNIQUE constraint failed on alembic_version."""
    text = str(exc).lower()
    return any(s in text for s in ("already exists", "duplicate key", "unique constraint"))


def requeue(study: Any, trial: Any) -> None:
    """A trial whose worker died: its plan goes back in the queue as a WAITING copy (same parameters,
    its plan; not its worker), at most MAX_RETRY times. Optuna's RetryHeartbeatStaleTrialCallback
    does the same but copies every user attribute, and a copied worker would look dead again.

    A trial stopped before its plan was chosen (between ask and the last suggest) is not queued: it
    holds no plan to repeat, and its partial parameters would pin a later trial's choices."""
    import optuna

    from autocomp.study.space import FIXED_PLAN

    if not {"plan", FIXED_PLAN} & set(trial.user_attrs) and "fixed_params" not in trial.system_attrs:
        return
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    system_attrs = {**trial.system_attrs, "failed_trial": history[0], "retry_history": history}
    plan = trial.user_attrs.get("plan", trial.user_attrs.get(FIXED_PLAN))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={"plan": plan, FIXED_PLAN: plan} if plan is not None else {}, system_attrs=system_attrs))


def fail_stale_trials(study: Any) -> None:
    """Fail the trials whose worker stopped sending heartbeats and requeue them (Optuna's sweep, which
    study.optimize runs before each trial; the parallel search runs it itself)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def baseline_settled(study: Any, plan: Any) -> bool:
    """A baseline needs no (new) trial when one with its plan is waiting, running, complete, or
    failed as a candidate (an `error` recorded). A trial that only failed because the search was
    stopped under it (Ctrl-C in the objective) does not count: the baseline is enqueued again."""
    import optuna

    from autocomp.study.space import FIXED_PLAN

    state = optuna.trial.TrialState
    wanted = plan.to_dict()
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(FIXED_PLAN, t.user_attrs.get("plan")) != wanted and not _enqueued_before(t, plan):
            continue
        if t.state in (state.WAITING, state.RUNNING, state.COMPLETE) or "error" in t.user_attrs:
            return True
    return False


def _enqueued_before(trial: Any, plan: Any) -> bool:
    """A baseline a study created by autocomp before FIXED_PLAN queued by its parameters alone."""
    from autocomp.study.space import FIXED_PLAN, SearchSpace

    fixed = trial.system_attrs.get("fixed_params")
    if fixed is None or FIXED_PLAN in trial.user_attrs or "plan" in trial.user_attrs:
        return False
    complete = all(f"w_bits:{lp.name}" in fixed and f"a_bits:{lp.name}" in fixed for lp in plan.layers)
    return complete and all(SearchSpace.value(plan, param) == value for param, value in fixed.items())


class Heartbeats:
    """Optuna's heartbeat thread for each trial a parallel search has in flight, the one study.optimize
    runs beside its trial. Why a thread: the search's main thread can wait far longer than GRACE_S (a
    timing waits for the machine's lock while another process compiles, device/timing_lock.py), and a
    trial without heartbeats meanwhile is failed as stale, by the other workers or by this worker's
    own sweep before its next trial (a 32-trial benchmark beside a test run crashed on that)."""

    def __init__(self, study: Any) -> None:
        self.study, self.threads = study, {}

    def start(self, trial: Any) -> None:
        from optuna.storages._heartbeat import get_heartbeat_thread

        thread = get_heartbeat_thread(trial._trial_id, self.study._storage)  # noqa: SLF001 - as study.optimize
        thread.start()
        self.threads[trial._trial_id] = thread  # noqa: SLF001

    def stop(self, trial: Any) -> None:
        thread = self.threads.pop(trial._trial_id, None)  # noqa: SLF001
        if thread is not None:
            thread.join()

    def stop_all(self) -> None:
        """Why: Optuna's threads are not daemons; one left beating keeps the process from exiting."""
        for thread in self.threads.values():
            thread.join()
        self.threads.clear()
