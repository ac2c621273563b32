"""The study: objective, constraints, baseline seeding and resume.

Optuna owns the state: every trial's plan and measured result live in the study storage as JSON user
attributes, so a killed search loses only the trial in flight and rerunning the same command resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from autocomp.errors import CandidateError, UserError
from autocomp.plan import CompressionPlan
from autocomp.space import SearchSpace

STUDY_VERSION = 1
ATTR = "autocomp"  # study user attr holding the study's fixed settings
DIRECTIONS = ("minimize", "minimize", "maximize")  # latency_ms, memory_bytes, accuracy
OBJECTIVES = ("latency_ms", "memory_bytes", "accuracy")


@dataclass(frozen=True)
class SearchConfig:
    device: str = "host"
    task: str | None = None
    trials: int = 24
    max_accuracy_drop: float = 0.01
    study: str | None = None
    storage: str | None = None
    seed: int = 0
    timeout_s: float | None = None
    tracker: str | None = None
    rpc_key: str | None = None
    estimate: bool = False
    finetune_steps: int = 0
    tune_trials: int = 0

    def measure_options(self) -> Any:
        from autocomp.measure.runner import MeasureOptions

        return MeasureOptions(tracker=self.tracker, rpc_key=self.rpc_key, estimate=self.estimate)

    def validate(self) -> None:
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise UserError(f"--max-accuracy-drop must be a fraction in [0, 1] (0.01 = one point), got {self.max_accuracy_drop}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise UserError(f"--timeout must be positive seconds, got {self.timeout_s}")
        if self.tracker is not None:
            from autocomp.measure.rpc import parse_tracker

            parse_tracker(self.tracker)
        if self.tune_trials < 0:
            raise UserError(f"--tune-trials must be >= 0, got {self.tune_trials}")
        if self.finetune_steps < 0:
            raise UserError(f"--finetune-steps must be >= 0, got {self.finetune_steps}")
        if self.estimate and self.tracker:
            raise UserError("--estimate and --tracker exclude each other: measure on the farm, or estimate")


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    storage: str
    trials_run: int
    trials_total: int
    failed: int
    elapsed_s: float


def default_study_name(task: str | None, device: str) -> str:
    from autocomp.tasks import DEFAULT_TASK

    return f"{(task or DEFAULT_TASK).replace(':', '.')}@{device}"


def constraint_values(result: Any, baseline_accuracy: float, max_drop: float, memory_limit_bytes: int) -> dict[str, float]:
    """Optuna constraints (> 0 is a violation): accuracy drop over the limit, memory over the device's."""
    drop = round(baseline_accuracy - result.accuracy_compiled, 9)
    values = {"accuracy_drop": drop - max_drop}
    if memory_limit_bytes:
        values["memory"] = float(result.memory_bytes - memory_limit_bytes)
    return values


def make_sampler(seed: int) -> Any:
    """TPE reads the trials' constraints (Trial.set_constraint) and favours feasible regions."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6, multivariate=True)


def _settings(cfg: SearchConfig, task_name: str, space: SearchSpace, baseline: float) -> dict[str, Any]:
    settings = {
        "version": STUDY_VERSION,
        "task": task_name,
        "task_spec": cfg.task or task_name,
        "device": cfg.device,
        "max_accuracy_drop": cfg.max_accuracy_drop,
        "finetune_steps": cfg.finetune_steps,
        "measure": "estimate" if cfg.estimate else ("emulated" if (cfg.rpc_key or "").endswith("-emulated") else "device"),
        "baseline_accuracy": baseline,
        "space": space.to_dict(),
        "objectives": list(OBJECTIVES),
    }
    return json.loads(json.dumps(settings))  # as it reads back from storage (tuples become lists)


def _check_compatible(name: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    for key in ("version", "task", "device", "max_accuracy_drop", "space", "measure", "finetune_steps"):
        if stored.get(key) != wanted.get(key):
            raise UserError(
                f"study '{name}' was made with {key}={stored.get(key)!r}, not {wanted.get(key)!r}; "
                "use another --study name, or the same settings to resume it"
            )


@dataclass
class PreparedSearch:
    """A validated search whose study exists in storage; `run` adds the trials."""

    cfg: SearchConfig
    url: str
    study: Any
    objective: Callable[[Any], tuple[float, float, float]]

    def run(self, on_trial: Callable[[int, int, Any], None] | None = None) -> SearchOutcome:
        import optuna

        study, t0 = self.study, time.perf_counter()
        before = _started(study)

        def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if on_trial is not None:
                on_trial(_started(study) - before, self.cfg.trials, trial)

        study.optimize(
            self.objective, n_trials=self.cfg.trials, timeout=self.cfg.timeout_s, catch=(CandidateError,),
            callbacks=[callback], gc_after_trial=True,
        )
        trials = study.get_trials(deepcopy=False)
        return SearchOutcome(
            study=study.study_name,
            storage=self.url,
            trials_run=_started(study) - before,
            trials_total=len(trials),
            failed=sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
            elapsed_s=time.perf_counter() - t0,
        )


def _started(study: Any) -> int:
    """Trials that ran or run (enqueued baselines wait in the study until a worker takes them)."""
    import optuna

    return sum(t.state != optuna.trial.TrialState.WAITING for t in study.get_trials(deepcopy=False))


def run_search(cfg: SearchConfig, on_trial: Callable[[int, int, Any], None] | None = None) -> SearchOutcome:
    """Run `cfg.trials` more trials of the study (creating or resuming it)."""
    return prepare_search(cfg).run(on_trial)


def prepare_search(cfg: SearchConfig) -> PreparedSearch:
    """Check every input, load the task and open (or create) the study; nothing is written on error."""
    import optuna

    from autocomp import storage as storage_mod
    from autocomp.candidate import evaluate_plan, fp32_accuracy, prepare
    from autocomp.measure.runner import runner_for
    from autocomp.profiles import load_profile
    from autocomp.tasks import load_task

    cfg.validate()
    profile = load_profile(cfg.device)
    options = cfg.measure_options()
    runner_for(profile, options)  # a device we cannot measure on fails here, before anything is written
    url = storage_mod.normalise(cfg.storage, create=True)
    study_name = cfg.study or default_study_name(cfg.task, profile.name)
    task = load_task(cfg.task)
    ctx = prepare(task, profile, options, cfg.finetune_steps, cfg.tune_trials)
    space = SearchSpace.for_profile(tuple(ctx.layers), tuple(ctx.prunable), ctx.profile)
    baseline = fp32_accuracy(ctx)
    wanted = _settings(cfg, task.name, space, baseline)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage_mod.open_storage(url, create=True)
    try:
        study = optuna.create_study(
            study_name=study_name, storage=storage, directions=list(DIRECTIONS),
            sampler=make_sampler(cfg.seed), load_if_exists=True,
        )
    except ValueError as exc:
        raise UserError(f"study '{study_name}' in {url} cannot be used: {exc}") from exc
    stored = study.user_attrs.get(ATTR)
    if stored is None:
        study.set_user_attr(ATTR, wanted)
    else:
        _check_compatible(study_name, stored, wanted)
        baseline = stored["baseline_accuracy"]

    seen = {t.user_attrs.get("result", {}).get("plan_key") for t in study.trials}
    for _label, plan in space.baselines():
        if plan.key() not in seen:
            study.enqueue_trial(space.params(plan), skip_if_exists=True)

    memory_limit = profile.memory_mb * 1024 * 1024

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        from autocomp.candidate import CandidateResult

        plan = space.suggest(trial)
        trial.set_user_attr("plan", plan.to_dict())
        done = {
            t.user_attrs["result"]["plan_key"]: t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if "result" in t.user_attrs
        }
        if plan.key() in done:  # an identical plan was already measured: reuse, and say so
            result = CandidateResult.from_dict(done[plan.key()].user_attrs["result"])
            trial.set_user_attr("reused_from_trial", done[plan.key()].number)
        else:
            try:
                result, _model, _built = evaluate_plan(ctx, plan)
            except CandidateError as exc:
                trial.set_user_attr("error", str(exc))
                raise
        trial.set_user_attr("result", result.to_dict())
        constraints = constraint_values(result, baseline, cfg.max_accuracy_drop, memory_limit)
        trial.set_user_attr("constraints", constraints)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        return result.latency_ms, float(result.memory_bytes), result.accuracy_compiled

    return PreparedSearch(cfg, url, study, objective)


def load_study(study: str, storage: str | None) -> Any:
    """Open an existing study for reading; the error lists the studies the storage does have."""
    import optuna

    from autocomp import storage as storage_mod

    url = storage_mod.normalise(storage, create=False)
    rdb = storage_mod.open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)]
    if study not in names:
        raise UserError(
            f"no study '{study}' in {url}; studies there: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study, storage=rdb)


def plan_of(trial: Any) -> CompressionPlan:
    return CompressionPlan.from_dict(trial.user_attrs["plan"])
