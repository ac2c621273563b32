"""The one exception type a user is meant to read.

Anything raised as `UserError` is printed by the CLI as a single line and exits with code 2; every
other exception is a bug in autocomp and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message names what is wrong and how to fix it."""


class CandidateError(Exception):
    """One candidate could not be compressed, compiled or measured; the search goes on."""


class ScreenedOut(Exception):
    """A search's candidate whose simulated accuracy already breaks the budget: it is not lowered,
    compiled or timed (search.py records the trial as pruned, with this figure)."""

    def __init__(self, accuracy_sim: float, timings_s: dict[str, float]) -> None:
        super().__init__(accuracy_sim, timings_s)  # the arguments again: it crosses a process pool
        self.accuracy_sim, self.timings_s = accuracy_sim, timings_s


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (the type's name when it has none): what a
    one-line error quotes from a library's multi-line message."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__
