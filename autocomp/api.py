"""The public functions: what `import autocomp` offers a script, mirroring the CLI's commands.

Each loads what it needs when called, so importing autocomp stays cheap (no torch, TVM or Optuna).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocomp.device.profiles import load_profile

if TYPE_CHECKING:
    from autocomp.study.search import SearchConfig, SearchOutcome
    from autocomp.tasks import Task

__all__ = ["search", "export", "load_task", "load_profile"]


def search(config: SearchConfig) -> SearchOutcome:
    """Run (or resume) a compression search; see SearchConfig."""
    from autocomp.study.search import run_search

    return run_search(config)


def export(study: str, trial: int, out: str, storage: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write one trial's artifacts and manifest to `out`; returns the manifest."""
    from autocomp.artifacts.export import export_trial

    return export_trial(study, storage, trial, Path(out), force)


def load_task(spec: str | None = None) -> Task:
    """A built-in task by name, or `package.module:function` returning a Task (None: the default task)."""
    from autocomp.tasks import load_task as load

    return load(spec)
