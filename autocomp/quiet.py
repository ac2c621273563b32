"""Third-party warnings a user can do nothing about, kept off the terminal between trials.

Each entry is a warning a library raises about its own internals on every model (torch.export's
pytree on every export and every unpickled spec; Torch-Pruning on a model's free parameters, such as a
transformer's position embedding, which it then prunes as intended). Installed by the CLI, the API
and every compile worker (spawned processes start with fresh filters). `search` appends any other
warning to a log file (LOG_ENV, inherited by the workers) instead of printing it between the trials,
and says at the end how many it logged; `search --verbose` shows every warning, these too (SHOW_ENV).
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path

SHOW_ENV = "AUTOCOMP_SHOW_WARNINGS"  # "1": leave every warning on (search --verbose)
LOG_ENV = "AUTOCOMP_WARNINGS_LOG"  # a path: other warnings are appended there, not printed

KNOWN_NOISE: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r".*LeafSpec.*"),
    (UserWarning, r"Unwrapped parameters detected"),
)


def silence_known_noise() -> None:
    if os.environ.get(SHOW_ENV) == "1":
        return
    for category, message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
    if os.environ.get(LOG_ENV):
        _log_to(Path(os.environ[LOG_ENV]))


def log_other_warnings(path: Path) -> int:
    """Warnings not in KNOWN_NOISE go to `path` (here and in the workers this process starts), one line
    each; returns the file's size now, for `logged_since`. A no-op under --verbose."""
    if os.environ.get(SHOW_ENV) == "1":
        return 0
    os.environ[LOG_ENV] = str(path)
    _log_to(path)
    return path.stat().st_size if path.exists() else 0


def logged_since(path: Path, size: int) -> int:
    """How many warnings were logged to `path` after it had `size` bytes."""
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        f.seek(size)
        return f.read().count(b"\n")


def _log_to(path: Path) -> None:
    shown = warnings.showwarning

    def append(message, category, filename, lineno, file=None, line=None) -> None:  # type: ignore[no-untyped-def]
        text = str(message).replace("\n", " ")
        at = _dt.datetime.now().isoformat(timespec="seconds")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:  # one short write per line: processes appending together stay whole
                f.write(f"{at} pid {os.getpid()} {filename}:{lineno}: {category.__name__}: {text}\n")
        except OSError:
            shown(message, category, filename, lineno, file, line)  # an unwritable log: show it after all

    warnings.showwarning = append


def show_all() -> None:
    """Every warning shown, here and in the compile workers this process starts."""
    os.environ[SHOW_ENV] = "1"
