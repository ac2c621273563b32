"""A study as a script holds it: what `autocomp.search()` returns and `autocomp.open_study()` opens.

The CLI's `front`, `front --pick`, `front --config`, `front --remeasure`, `export` and `report` as methods, so a
script never parses the terminal table. It sits beside api.py, above the stages (it reads the study and
writes artifacts). It holds the study's name and storage URL, not an Optuna handle: every call reads
the storage again, so the front it returns includes other workers' trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocomp.errors import UserError
from autocomp.study.pareto import FrontPoint


@dataclass(frozen=True)
class Study:
    name: str
    storage: str | None = None  # URL or SQLite path, as the CLI's --storage (None: runs/autocomp.db)
    outcome: Any = None  # SearchOutcome of the search() call that returned it (None: opened)

    def _optuna(self) -> Any:
        from autocomp.study.search import load_study

        return load_study(self.name, self.storage)

    def front(self) -> list[FrontPoint]:
        """The feasible non-dominated trials, fastest first (`autocomp front --json`, as records)."""
        from autocomp.study import pareto

        return pareto.front(self._optuna())

    def baseline(self) -> FrontPoint | None:
        """The fp32 trial every speedup and accuracy drop is against."""
        from autocomp.study import pareto

        return pareto.baseline(self._optuna())

    def pick(self, max_latency_ms: float | None = None, max_memory_mb: float | None = None) -> FrontPoint:
        """The most accurate front point within the limits (`autocomp front --pick`)."""
        from autocomp.study import pareto

        points = self.front()
        chosen = pareto.pick(points, max_latency_ms, max_memory_mb)
        if chosen is None:
            raise UserError(f"no feasible point of study '{self.name}' is within max_latency_ms={max_latency_ms}, "
                            f"max_memory_mb={max_memory_mb}; the front has {len(points)} points")
        return chosen

    def config(self) -> dict[str, Any]:
        """The settings the study was created with (`autocomp front --config --json`)."""
        from autocomp.study.config import CONFIG_ATTR

        stored = self._optuna().user_attrs.get(CONFIG_ATTR)
        if stored is None:
            raise UserError(f"study '{self.name}' has no stored config: it was created before autocomp stored one")
        return stored

    def remeasure(self) -> dict[str, Any]:
        """Re-time the front and the uniform baselines together on this host (`front --remeasure`)."""
        from autocomp.measure.base import MeasureOptions
        from autocomp.study.remeasure import context_of, retime

        study = self._optuna()
        return retime(study, context_of(study, MeasureOptions()))

    def export(self, trial: int | FrontPoint, out: str | Path, force: bool = False) -> dict[str, Any]:
        """Write one trial's TVM library, ONNX model, torch state and manifest to `out`; the manifest."""
        from autocomp.artifacts.export import export_trial

        number = trial.trial if isinstance(trial, FrontPoint) else trial
        return export_trial(self.name, self.storage, number, Path(out), force)

    def report(self, out: str | Path, trial: int | None = None, png: str | Path | None = None,
               measure: bool = True, force: bool = False) -> Path:
        """Write the HTML report (`autocomp report`); `measure` compiles the chosen point to time its kernels."""
        from autocomp.reports import html
        from autocomp.reports.report_data import gather

        html.write(gather(self._optuna(), trial, measure), Path(out), Path(png) if png else None, force)
        return Path(out)
