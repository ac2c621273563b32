"""The public functions: what `import autocomp` offers a script, mirroring the CLI's commands.

`search(task=..., device=..., trials=...)` takes SearchConfig's fields as keywords (or a SearchConfig)
and returns a Study handle (handle.py) with `.front()`, `.pick()`, `.export()`; `evaluate()` is
`autocomp evaluate` returning its CandidateResult. Each loads what it needs when called, so importing
autocomp stays cheap (no torch, TVM or Optuna).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from autocomp.device.profiles import load_profile
from autocomp.errors import UserError
from autocomp.quiet import silence_known_noise

if TYPE_CHECKING:
    from autocomp.candidate import CandidateResult
    from autocomp.plan import CompressionPlan
    from autocomp.handle import Study
    from autocomp.study.search import SearchConfig
    from autocomp.tasks import Task

__all__ = ["search", "open_study", "evaluate", "export", "load_task", "load_profile"]


def search(config: SearchConfig | None = None, *, on_trial: Callable[[int, int, Any], None] | None = None,
           retime: bool = True, **settings: Any) -> Study:
    """Run (or resume, or join) a compression search, as `autocomp search` does, and return its study.

    `settings` are SearchConfig's fields (`task`, `device`, `trials`, `max_accuracy_drop`, `storage`,
    ...); they replace those of `config`. `on_trial(done, total, trial)` is called after each trial.
    With `retime` (the CLI's behaviour) a local search ends by re-timing its front and baselines together.
    """
    from autocomp.study.config import SearchConfig
    from autocomp.handle import Study
    from autocomp.study.remeasure import retime_if_local
    from autocomp.study.search import prepare_search

    silence_known_noise()
    cfg = _with(config or SearchConfig(), settings)
    prepared = prepare_search(cfg)
    outcome = prepared.run(on_trial)
    if outcome.trials_run and len(outcome.errors) == outcome.trials_run:
        raise UserError(f"every trial of this search failed; the first: {outcome.errors[0]}")
    if retime:
        retime_if_local(prepared.study, prepared.ctx)
    return Study(outcome.study, outcome.storage, outcome)


def open_study(name: str, storage: str | None = None) -> Study:
    """An existing study (one line naming the studies the storage has, when it has no such study)."""
    from autocomp.handle import Study
    from autocomp.study.search import load_study

    load_study(name, storage)
    return Study(name, storage)


def evaluate(plan: str | CompressionPlan = "w8a8", task: str | None = None, device: str = "host",
             finetune_steps: int | None = None, **measure: Any) -> CandidateResult:
    """Compress, compile, measure and evaluate one plan (`autocomp evaluate`): a uniform plan's name
    (fp32, w8a8, w4a8, w16, ...), a plan JSON file, or a CompressionPlan. `measure` takes
    MeasureOptions' fields (`tracker`, `rpc_key`, `estimate`, `tracker_timeout_s`)."""
    from autocomp.candidate import evaluate_plan, prepare
    from autocomp.plan_spec import resolve_plan
    from autocomp.measure.flags import check_candidate_flags
    from autocomp.measure.base import MeasureOptions
    from autocomp.measure.runners import runner_for
    from autocomp.plan import DEFAULT_FINETUNE_STEPS, CompressionPlan
    from autocomp.tasks import load_task as load

    silence_known_noise()
    options = _with(MeasureOptions(), measure)
    steps = DEFAULT_FINETUNE_STEPS if finetune_steps is None else finetune_steps
    check_candidate_flags(options.tracker, options.estimate, 0, steps, options.tracker_timeout_s)
    profile = load_profile(device)
    profile.tvm_target()
    runner_for(profile, options)
    ctx = prepare(load(task), profile, options, steps)
    chosen = plan if isinstance(plan, CompressionPlan) else resolve_plan(plan, ctx)
    result, _model, _built = evaluate_plan(ctx, chosen)
    return result


def export(study: str, trial: int, out: str, storage: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write one trial's artifacts and manifest to `out`; returns the manifest."""
    from autocomp.artifacts.export import export_trial

    return export_trial(study, storage, trial, Path(out), force)


def load_task(spec: str | None = None) -> Task:
    """A built-in task by name, or `package.module:function` returning a Task (None: the default task)."""
    from autocomp.tasks import load_task as load

    return load(spec)


def _with(record: Any, values: dict[str, Any]) -> Any:
    """`record` with `values` replaced; an unknown name is one line listing the valid ones."""
    names = [f.name for f in dataclasses.fields(record)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"unknown {type(record).__name__} setting {', '.join(map(repr, unknown))}; "
                        f"valid: {', '.join(names)}")
    return dataclasses.replace(record, **values)
