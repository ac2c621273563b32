"""Study storage: an Optuna RDB URL, checked before anything is written to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocomp.errors import UserError
from autocomp.paths import runs_dir

SQLITE_MAGIC = b"SQLite format 3\x00"


def default_storage() -> str:
    return f"sqlite:///{runs_dir() / 'autocomp.db'}"


def normalise(storage: str | None, create: bool) -> str:
    """A storage URL; a bare path means a SQLite file. Problems are one-line UserErrors."""
    default = not storage
    if not storage:
        storage = default_storage()
    elif "://" not in storage:
        storage = f"sqlite:///{Path(storage)}"
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


def open_storage(url: str, create: bool = False) -> Any:
    """Open (with create: and make the default runs/ directory); call only once inputs are checked."""
    import optuna

    if create and url == default_storage():
        runs_dir().mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=None)
    except Exception as exc:  # sqlalchemy raises many types; the user needs one line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot open storage {url}: {msg}") from exc
