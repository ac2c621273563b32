"""What a search's progress line says after each trial: the study's state, not only this worker's.

Read from the storage after each trial, so with many workers the counts and the front are the
study's. The speedup is the drift-corrected figure the search compares (study/pareto.py), against the
study's fp32 trial; it is absent until both exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autocomp.plan import CompressionPlan
from autocomp.reports.table import kib


@dataclass(frozen=True)
class SearchStatus:
    running: int  # in the study, every worker's
    failed: int
    front_size: int
    best_speedup: float | None  # fastest feasible point's, over fp32

    @classmethod
    def of(cls, study: Any) -> SearchStatus:
        import optuna

        from autocomp.study import pareto

        states = [t.state for t in study.get_trials(deepcopy=False)]
        points, base = pareto.front(study), pareto.baseline(study)
        best = base.latency_ms / points[0].latency_ms if points and base is not None else None
        return cls(running=states.count(optuna.trial.TrialState.RUNNING),
                   failed=states.count(optuna.trial.TrialState.FAIL), front_size=len(points), best_speedup=best)

    def describe(self) -> str:
        best = f"best {self.best_speedup:.2f}x fp32" if self.best_speedup else "no feasible speedup yet"
        return f"{self.running} running, {self.failed} failed, front {self.front_size}, {best}"


def trial_line(trial: Any, feasible: bool, verbose: bool = False) -> str:
    """One line per finished trial; `verbose` adds where its time went (compress, compile, time, ...)."""
    r = trial.user_attrs.get("result")
    screened = trial.user_attrs.get("screened")
    if screened:
        label = CompressionPlan.from_dict(trial.user_attrs["plan"]).summary() if "plan" in trial.user_attrs else "?"
        return (f"trial {trial.number}: {label} screened out: simulated accuracy {screened['accuracy_sim']:.4f} "
                f"(drop {100 * screened['accuracy_drop']:.1f} pt, over the budget); not compiled or timed")
    if not r:
        return f"trial {trial.number}: failed: {trial.user_attrs.get('error', trial.state.name)}"
    ok = "feasible" if feasible else "infeasible"
    if "reused_from_trial" in trial.user_attrs:
        ok += f", same plan as trial {trial.user_attrs['reused_from_trial']}"
    line = (f"trial {trial.number}: {r['plan_label']} {r['latency_ms']:.2f} ms "
            f"{kib(r['memory_bytes'])} KiB acc {r['accuracy_compiled']:.4f} ({ok})")
    if verbose and r.get("timings_s"):
        line += " [" + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()) + "]"
    return line
