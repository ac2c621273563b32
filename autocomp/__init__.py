"""autocomp: hardware-aware compression search for PyTorch models.

Importing autocomp is cheap: torch, TVM and Optuna load when a function needs them. The public
functions live in api.py; the package folders follow the pipeline (tasks -> compress -> lower ->
build -> measure -> study -> artifacts / reports, device profiles beside them): docs/design-notes.md.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["search", "open_study", "evaluate", "export", "load_task", "load_profile", "Study", "SearchConfig",
           "FrontPoint", "CompressionPlan", "UserError"]

from autocomp.api import evaluate, export, load_profile, load_task, open_study, search
from autocomp.errors import UserError
from autocomp.plan import CompressionPlan


def __getattr__(name: str) -> Any:
    """The record types load on first use (their modules import Optuna or torch)."""
    if name == "SearchConfig":
        from autocomp.study.config import SearchConfig

        return SearchConfig
    if name == "Study":
        from autocomp.handle import Study

        return Study
    if name == "FrontPoint":
        from autocomp.study.pareto import FrontPoint

        return FrontPoint
    raise AttributeError(name)
