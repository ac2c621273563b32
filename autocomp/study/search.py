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
from autocomp.study.space import SearchSpace

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
    jobs: int = 0  # candidates compiled at once (0: one per core); see buildpool.py

    def measure_options(self) -> Any:
        from autocomp.measure.base import MeasureOptions

        return MeasureOptions(tracker=self.tracker, rpc_key=self.rpc_key, estimate=self.estimate)

    def validate(self) -> None:
        from autocomp.candidate import check_candidate_flags

        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise UserError(f"--max-accuracy-drop must be a fraction in [0, 1] (0.01 = one point), got {self.max_accuracy_drop}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise UserError(f"--timeout must be positive seconds, got {self.timeout_s}")
        if self.jobs < 0:
            raise UserError(f"--jobs must be >= 0 (0: one per core), got {self.jobs}")
        check_candidate_flags(self.tracker, self.estimate, self.tune_trials, self.finetune_steps)


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

    # constant_liar: trials asked together (parallel builds) are not sampled as if the others did not exist
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6, multivariate=True, constant_liar=True)


def _settings(cfg: SearchConfig, task_name: str, space: SearchSpace, baseline: float, winograd: str) -> dict[str, Any]:
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
        "winograd": winograd,  # the profile's key: which conv kernels the latencies and memory are of
    }
    return json.loads(json.dumps(settings))  # as it reads back from storage (tuples become lists)


def _check_compatible(name: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    for key in ("version", "task", "device", "max_accuracy_drop", "space", "measure", "finetune_steps"):
        if stored.get(key) != wanted.get(key):
            raise UserError(
                f"study '{name}' was made with {key}={stored.get(key)!r}, not {wanted.get(key)!r}; "
                "use another --study name, or the same settings to resume it"
            )
    was = stored_winograd(stored)
    if was != wanted.get("winograd"):
        raise UserError(
            f"study '{name}' was measured with the device profile's winograd = {was!r}, not {wanted.get('winograd')!r}; "
            f"use another --study name, or set winograd = \"{was}\" in the profile to resume it"
        )


def stored_winograd(settings: dict[str, Any]) -> str:
    """A study's winograd mode; studies from before the key existed ran every conv direct."""
    return str(settings.get("winograd", "off"))


@dataclass
class PreparedSearch:
    """A validated search whose study exists in storage; `run` adds the trials."""

    cfg: SearchConfig
    url: str
    study: Any
    space: SearchSpace
    ctx: Any  # candidate.Context
    baseline: float

    def jobs(self) -> int:
        """Parallel compiles: one per core by default, at most one per trial. Tile tuning times kernels
        inside the build, so with --tune-trials on a local device builds run one at a time."""
        from autocomp.study.buildpool import default_jobs

        if self.cfg.tune_trials > 0 and self.ctx.tuning_db is not None:
            return 1
        return max(1, min(self.cfg.jobs or default_jobs(), self.cfg.trials))

    def run(self, on_trial: Callable[[int, int, Any], None] | None = None) -> SearchOutcome:
        import optuna

        study, t0 = self.study, time.perf_counter()
        before, finished_before = _started(study), _finished(study)

        def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if on_trial is not None:
                on_trial(_finished(study) - finished_before, self.cfg.trials, trial)

        if self.jobs() > 1:
            self._run_parallel(callback)
        else:
            study.optimize(
                self._objective, n_trials=self.cfg.trials, timeout=self.cfg.timeout_s, catch=(CandidateError,),
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

    def _suggest(self, trial: Any) -> tuple[CompressionPlan, Any]:
        """The trial's plan, and the result of an identical plan measured before (reused, and said so)."""
        import optuna

        from autocomp.candidate import CandidateResult

        plan = self.space.suggest(trial)
        trial.set_user_attr("plan", plan.to_dict())
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.user_attrs.get("result", {}).get("plan_key") == plan.key():
                trial.set_user_attr("reused_from_trial", t.number)
                return plan, CandidateResult.from_dict(t.user_attrs["result"])
        return plan, None

    def _record(self, trial: Any, result: Any) -> tuple[float, float, float]:
        trial.set_user_attr("result", result.to_dict())
        memory_limit = self.ctx.profile.memory_mb * 1024 * 1024
        constraints = constraint_values(result, self.baseline, self.cfg.max_accuracy_drop, memory_limit)
        trial.set_user_attr("constraints", constraints)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        return result.latency_ms, float(result.memory_bytes), result.accuracy_compiled

    def _objective(self, trial: Any) -> tuple[float, float, float]:
        from autocomp.candidate import evaluate_plan

        plan, result = self._suggest(trial)
        if result is None:
            try:
                result, _model, _built = evaluate_plan(self.ctx, plan)
            except CandidateError as exc:
                trial.set_user_attr("error", str(exc))
                raise
        return self._record(trial, result)

    def _run_parallel(self, callback: Callable[[Any, Any], None]) -> None:
        """Keep `jobs` trials compiling in worker processes; time each here as it is ready (workers
        stopped meanwhile, see buildpool.py), tell it, ask the next.

        Trials are told as soon as they are measured, so a stop (Ctrl-C, a UserError) loses only the
        trials still compiling: those are told FAIL (none stays RUNNING in the study) and their plans
        enqueued again, so the next run of the search measures them first. The order in
        which trials finish depends on compile times: use jobs=1 for a reproducible trial sequence.
        """
        from concurrent.futures import FIRST_COMPLETED, wait

        import optuna

        from autocomp.study.buildpool import BuildPool, WorkerSpec
        from autocomp.measure.local import LocalRunner

        cfg, ctx, study = self.cfg, self.ctx, self.study
        local = isinstance(ctx.runner(), LocalRunner)
        pool = BuildPool(WorkerSpec(cfg.task, cfg.device, ctx.options, cfg.finetune_steps, local), ctx, self.jobs())
        deadline = None if cfg.timeout_s is None else time.perf_counter() + cfg.timeout_s
        left, in_flight = cfg.trials, {}

        def tell(trial: Any, result: Any) -> None:
            if isinstance(result, CandidateError):
                trial.set_user_attr("error", str(result))
                frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                frozen = study.tell(trial, self._record(trial, result))
            callback(study, frozen)

        try:
            while True:
                while left > 0 and len(in_flight) < self.jobs() and (deadline is None or time.perf_counter() < deadline):
                    trial = study.ask()
                    left -= 1
                    plan, reused = self._suggest(trial)
                    if reused is not None:
                        tell(trial, reused)
                    else:
                        in_flight[pool.submit(plan)] = trial
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    tell(in_flight.pop(future), pool.finish(future))
        finally:
            for trial in in_flight.values():
                trial.set_user_attr("error", "the search stopped before this trial was measured; enqueued again")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(trial.params)
            pool.close()


def _baseline_settled(study: Any, params: dict[str, Any]) -> bool:
    """A baseline needs no (new) trial when one with its parameters is waiting, running, complete, or
    failed as a candidate (an `error` recorded). A trial that only failed because the search was
    stopped under it (Ctrl-C in the objective) does not count: the baseline is enqueued again."""
    import optuna

    state = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False):
        if t.system_attrs.get("fixed_params", t.params) != params:
            continue
        if t.state in (state.WAITING, state.RUNNING, state.COMPLETE) or "error" in t.user_attrs:
            return True
    return False


def _finished(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


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

    from autocomp.study import storage as storage_mod
    from autocomp.candidate import fp32_accuracy, prepare
    from autocomp.measure.runners import runner_for
    from autocomp.device.profiles import load_profile
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
    wanted = _settings(cfg, task.name, space, baseline, profile.winograd)

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

    for _label, plan in space.baselines():
        if not _baseline_settled(study, space.params(plan)):
            study.enqueue_trial(space.params(plan))

    return PreparedSearch(cfg, url, study, space, ctx, baseline)


def load_study(study: str, storage: str | None) -> Any:
    """Open an existing study for reading; the error lists the studies the storage does have."""
    import optuna

    from autocomp.study import storage as storage_mod

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
