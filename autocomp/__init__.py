"""autocomp: hardware-aware compression search for PyTorch models.

Importing autocomp is cheap: torch, TVM and Optuna load when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["search", "export", "load_task", "load_profile", "SearchConfig", "CompressionPlan", "UserError"]

from autocomp.errors import UserError
from autocomp.plan import CompressionPlan
from autocomp.profiles import load_profile

if TYPE_CHECKING:
    from autocomp.study import SearchConfig, SearchOutcome
    from autocomp.tasks import Task


def search(config: SearchConfig) -> SearchOutcome:
    """Run (or resume) a compression search; see SearchConfig."""
    from autocomp.study import run_search

    return run_search(config)


def export(study: str, trial: int, out: str, storage: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write one trial's artifacts and manifest to `out`; returns the manifest."""
    from pathlib import Path

    from autocomp.artifacts import export_trial

    return export_trial(study, storage, trial, Path(out), force)


def load_task(spec: str | None = None) -> Task:
    from autocomp.tasks import load_task as _load

    return _load(spec)


def __getattr__(name: str) -> Any:
    if name == "SearchConfig":
        from autocomp.study import SearchConfig

        return SearchConfig
    raise AttributeError(name)
