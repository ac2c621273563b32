"""Ctrl-C, heard once and said once.

Python raises KeyboardInterrupt wherever the main thread happens to be, and where that is a finalizer
(a weakref callback, a `__del__`, e.g. SQLAlchemy's or Optuna's during garbage collection) the
exception is printed as "Exception ignored in ..." with a traceback and dropped: the search went on as
if nothing happened. So the CLI's handler also remembers the request, the search checks it between
trials (`check`), and an interrupt dropped in a finalizer is not printed.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

_REQUESTED = threading.Event()


def _handler(signum: int, frame: Any) -> None:
    _REQUESTED.set()
    raise KeyboardInterrupt


def _unraisable(info: Any) -> None:
    if isinstance(info.exc_value, KeyboardInterrupt):
        return  # remembered by _handler; `check` raises it where it can be handled
    sys.__unraisablehook__(info)


def install() -> None:
    """Called by the CLI (main thread); a library user keeps Python's own handling."""
    signal.signal(signal.SIGINT, _handler)
    sys.unraisablehook = _unraisable


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, also when the first one was dropped."""
    if _REQUESTED.is_set():
        raise KeyboardInterrupt
