"""autocomp: hardware-aware compression search for PyTorch models.

Importing autocomp is cheap: torch, TVM and Optuna load when a function needs them. The public
functions live in api.py; the package folders follow the pipeline (tasks -> compress -> lower ->
build -> measure -> study -> artifacts / reports, device profiles beside them): docs/design-notes.md.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["search", "export", "load_task", "load_profile", "SearchConfig", "CompressionPlan", "UserError"]

from autocomp.api import export, load_profile, load_task, search
from autocomp.errors import UserError
from autocomp.plan import CompressionPlan


def __getattr__(name: str) -> Any:
    if name == "SearchConfig":
        from autocomp.study.search import SearchConfig

        return SearchConfig
    raise AttributeError(name)
