"""Where autocomp keeps things between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Trained reference models and (later) tuning databases; AUTOCOMP_CACHE_DIR overrides."""
    env = os.environ.get("AUTOCOMP_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autocomp"


def runs_dir() -> Path:
    """Default home of study databases: ./runs, beside where the user works."""
    return Path(os.environ.get("AUTOCOMP_RUNS_DIR", "runs"))
