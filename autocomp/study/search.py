"""The study: objective, constraints, baseline seeding and resume.

Optuna owns the state: every trial's plan and measured result live in the study storage as JSON user
attributes, so a killed search loses only the trial in flight and rerunning the same command resumes.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from autocomp import interrupt
from autocomp.errors import CandidateError, ScreenedOut, UserError
from autocomp.plan import CompressionPlan
from autocomp.study import liveness
from autocomp.study.config import (
    ATTR,
    COMMAND_ATTR,
    CONFIG_ATTR,
    DIRECTIONS,
    METRIC_NAMES,
    SENSITIVITY_ATTR,
    SearchConfig,
    SearchOutcome,
    check_compatible,
    constraint_values,
    default_study_name,
    make_sampler,
    memory_limit_bytes,
    objective_latency_ms,
    settings_for,
)
from autocomp.study.neighbours import layer_weights
from autocomp.study.space import FIXED_PLAN, SearchSpace

# screened-out trials (simulated accuracy over the budget: pruned, not compiled) do not count towards
# --trials, up to this many times --trials of them per run; past that they count like the rest
SCREEN_CAP = 1


@dataclass
class PreparedSearch:
    """A validated search whose study exists in storage; `run` adds the trials."""

    cfg: SearchConfig
    url: str
    study: Any
    space: SearchSpace
    ctx: Any  # candidate.Context
    baseline: float
    seed: int  # this worker's sampler seed
    settings: dict[str, Any] = field(default_factory=dict)  # as stored with the study
    worker: dict[str, Any] = field(default_factory=liveness.this_worker)

    def jobs(self) -> int:
        """Parallel compiles: one per core by default, at most one per trial. Tile tuning times kernels
        inside the build, so with --tune-trials on a local device builds run one at a time."""
        from autocomp.study.buildpool import default_jobs

        if self.cfg.tune_trials > 0 and self.ctx.tuning_db is not None:
            return 1
        return max(1, min(self.cfg.jobs or default_jobs(), self.cfg.trials))

    def run(self, on_trial: Callable[[int, int, Any], None] | None = None) -> SearchOutcome:
        """`cfg.trials` trials by this worker; others may be adding trials to the same study meanwhile."""
        import optuna

        study, t0 = self.study, time.perf_counter()
        mine: list[int] = []  # trials this worker finished
        screened: list[int] = []  # of them, the ones screened out (pruned): they do not count towards --trials

        def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            mine.append(trial.number)
            if trial.state == optuna.trial.TrialState.PRUNED:
                screened.append(trial.number)
            counted = len(mine) - min(len(screened), self.cfg.trials * SCREEN_CAP)  # towards --trials
            if on_trial is not None:
                on_trial(counted, self.cfg.trials, trial)
            if self.jobs() == 1 and counted >= self.cfg.trials:
                study.stop()  # the sequential path's budget (the parallel one counts its own)
            interrupt.check()

        try:
            if self.jobs() > 1:
                self._run_parallel(callback)
            else:
                study.optimize(
                    self._objective, n_trials=self.cfg.trials * (1 + SCREEN_CAP), timeout=self.cfg.timeout_s,
                    catch=(CandidateError,), callbacks=[callback], gc_after_trial=True,
                )
            interrupt.check()
        except KeyboardInterrupt:
            self._requeue_interrupted()
            raise
        trials = study.get_trials(deepcopy=False)
        failed_here = [t for t in trials if t.number in mine and t.state == optuna.trial.TrialState.FAIL]
        return SearchOutcome(
            study=study.study_name,
            storage=self.url,
            trials_run=len(mine) - min(len(screened), self.cfg.trials * SCREEN_CAP),  # what counts towards --trials
            trials_total=len(trials),
            failed=sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
            elapsed_s=time.perf_counter() - t0,
            seed=self.seed,
            errors=tuple(str(t.user_attrs.get("error", "no error recorded")) for t in failed_here),
            screened=len(screened),
        )

    def min_accuracy(self, trial: Any) -> float | None:
        """The simulated accuracy below which the trial's candidate is screened out: the budget's edge,
        less one eval sample (the compiled artifact's accuracy is the simulation's on CPU targets, and a
        remote device's result is the simulation's when their outputs agree; see measure/accuracy.py).
        None for an enqueued plan (FIXED_PLAN: a baseline, a checked knapsack plan, a requeued trial):
        measured whatever its accuracy, as a reference point."""
        if not self.cfg.screen or FIXED_PLAN in trial.user_attrs:
            return None
        return self.baseline - self.cfg.max_accuracy_drop - 1.0 / max(len(self.ctx.task.eval_targets), 1)

    def _screened(self, trial: Any, exc: ScreenedOut) -> None:
        """A candidate the simulation screened out: what it reached, and the accuracy constraint it breaks,
        so the sampler (which reads constraints) learns it is infeasible. It has no latency or memory."""
        drop = self.baseline - exc.accuracy_sim
        trial.set_user_attr("screened", {"accuracy_sim": exc.accuracy_sim, "accuracy_drop": round(drop, 6),
                                         "timings_s": exc.timings_s})
        trial.set_constraint("accuracy_drop", round(drop - self.cfg.max_accuracy_drop, 9))

    def _requeue_interrupted(self) -> None:
        """Ctrl-C inside a trial: Optuna failed it; queue its plan again so the next run measures it."""
        import optuna

        from autocomp.study.storage import requeue

        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            if t.user_attrs.get(liveness.ATTR) == self.worker and "error" not in t.user_attrs:
                requeue(self.study, t)

    def _suggest(self, trial: Any) -> tuple[CompressionPlan, Any]:
        """The trial's plan, and the result of an identical plan measured before (reused, and said so)."""
        import optuna

        from autocomp.candidate import CandidateResult

        trial.set_user_attr(liveness.ATTR, self.worker)
        plan = self.space.suggest(trial)
        trial.set_user_attr("plan", plan.to_dict())
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.user_attrs.get("result", {}).get("plan_key") == plan.key():
                trial.set_user_attr("reused_from_trial", t.number)
                return plan, CandidateResult.from_dict(t.user_attrs["result"])
        return plan, None

    def _record(self, trial: Any, result: Any) -> tuple[float, float, float]:
        trial.set_user_attr("result", result.to_dict())
        latency = objective_latency_ms(result, self.settings)
        memory_limit = memory_limit_bytes(self.ctx.profile.memory_mb, self.cfg.max_memory_mb)
        constraints = constraint_values(result, self.baseline, self.cfg.max_accuracy_drop, memory_limit,
                                        latency, self.cfg.max_latency_ms)
        trial.set_user_attr("constraints", constraints)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        return latency, float(result.memory_bytes), result.accuracy_compiled

    def _objective(self, trial: Any) -> tuple[float, float, float]:
        import optuna

        from autocomp.candidate import evaluate_plan

        plan, result = self._suggest(trial)
        if result is None:
            try:
                result, _model, _built = evaluate_plan(self.ctx, plan, min_accuracy=self.min_accuracy(trial))
            except ScreenedOut as exc:
                self._screened(trial, exc)
                raise optuna.TrialPruned(f"screened out: simulated accuracy {exc.accuracy_sim:.4f}") from None
            except CandidateError as exc:
                # the Ctrl-C that stops the search can break the candidate first (a compiler child in its
                # process group killed, the signal raised inside a TVM callback): stopped, not failed
                interrupt.check()
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

        from autocomp.measure.local import LocalRunner
        from autocomp.study.buildpool import BuildPool, WorkerSpec
        from autocomp.device.timing_lock import shared_use
        from autocomp.study.storage import HEARTBEAT_S, Heartbeats, fail_stale_trials

        cfg, ctx, study = self.cfg, self.ctx, self.study
        local = isinstance(ctx.runner(), LocalRunner)
        pool = BuildPool(WorkerSpec(cfg.task, cfg.device, ctx.options, cfg.finetune_steps, local), ctx, self.jobs())
        deadline = None if cfg.timeout_s is None else time.perf_counter() + cfg.timeout_s
        left, in_flight, beats = cfg.trials, {}, Heartbeats(study)
        screens = cfg.trials * SCREEN_CAP  # screened-out trials this run may still replace

        def tell(trial: Any, result: Any) -> None:
            nonlocal left, screens
            beats.stop(trial)
            try:
                if isinstance(result, ScreenedOut):
                    self._screened(trial, result)
                    frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    if screens > 0:  # not counted towards --trials
                        screens, left = screens - 1, left + 1
                elif isinstance(result, CandidateError):
                    trial.set_user_attr("error", str(result))
                    frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    frozen = study.tell(trial, self._record(trial, result))
            except optuna.exceptions.UpdateFinishedTrialError:  # this process was frozen past the grace
                print(f"autocomp: trial {trial.number} was failed as stale by another worker while this one was "
                      "not running; its plan is queued again", file=sys.stderr)
                return
            callback(study, frozen)

        with shared_use():  # for the pool's compiles; converted to exclusive while a candidate is timed
            try:
                while True:
                    while left > 0 and len(in_flight) < self.jobs() and (deadline is None or time.perf_counter() < deadline):
                        fail_stale_trials(study)  # what study.optimize does before each trial
                        with warnings.catch_warnings():  # heartbeats: a thread per trial in flight (Heartbeats)
                            warnings.filterwarnings("ignore", message="Heartbeat of storage")
                            trial = study.ask()
                        beats.start(trial)  # from its first write on: a trial that never beat is never stale
                        left -= 1
                        plan, reused = self._suggest(trial)
                        if reused is not None:
                            tell(trial, reused)
                        else:
                            in_flight[pool.submit(plan, self.min_accuracy(trial))] = trial
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
                    interrupt.check()
                    for future in done:
                        result = pool.finish(future)
                        if isinstance(result, CandidateError):
                            interrupt.check()  # as in _objective; the trial is still in_flight: queued below
                        tell(in_flight.pop(future), result)
            finally:
                for trial in in_flight.values():
                    beats.stop(trial)
                    trial.set_user_attr("error", "the search stopped before this trial was measured; enqueued again")
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    self.space.enqueue(study, CompressionPlan.from_dict(trial.user_attrs["plan"]))
                beats.stop_all()  # one asked but not yet in flight
                pool.close()


def run_search(cfg: SearchConfig, on_trial: Callable[[int, int, Any], None] | None = None) -> SearchOutcome:
    """Run `cfg.trials` more trials of the study (creating or resuming it)."""
    return prepare_search(cfg).run(on_trial)


def prepare_search(cfg: SearchConfig) -> PreparedSearch:
    """Check every input, load the task and open (or create, or join) the study; nothing is written
    on error.

    Many workers may run this on one study at once (`autocomp search` with the same --study and
    --storage, on one machine or many): exactly one creates the study (the storage decides) and
    enqueues the baselines before it writes the settings, which tell the others the study is ready.
    Every other worker samples with its own seed, and first fails the trials of dead workers and
    queues their plans again (liveness.py, storage.py), so a killed search loses nothing."""
    import optuna

    from autocomp.candidate import fp32_accuracy, prepare
    from autocomp.device.profiles import load_profile
    from autocomp.measure.runners import runner_for
    from autocomp.study import storage as storage_mod
    from autocomp.tasks import load_task

    cfg.validate()
    profile = load_profile(cfg.device)
    profile.tvm_target()  # a target TVM rejects fails now, before a model is trained
    options = cfg.measure_options()
    runner_for(profile, options)  # a device we cannot measure on fails here, before anything is written
    url = storage_mod.normalise(cfg.storage, create=True)
    study_name = cfg.study or default_study_name(cfg.task, profile.name)
    task = load_task(cfg.task)
    ctx = prepare(task, profile, options, cfg.finetune_steps, cfg.tune_trials)
    space = SearchSpace.for_context(ctx)
    baseline = fp32_accuracy(ctx)
    wanted = settings_for(cfg, task.name, space, baseline, profile.winograd)

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported by autocomp, once
    storage = storage_mod.open_storage(url, create=True)
    seed = cfg.seed
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, directions=list(DIRECTIONS),
                                    sampler=make_sampler(seed, cfg.sampler))
        with warnings.catch_warnings():  # experimental in Optuna 4; the names are what optuna-dashboard shows
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(METRIC_NAMES))
        stored = None
    except optuna.exceptions.DuplicatedStudyError:
        seed = cfg.seed + os.getpid()  # a joining (or resuming) worker: not the trials the others sample
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(seed, cfg.sampler))
        stored = _settings_of(study)
        if stored is not None:
            check_compatible(study_name, stored, wanted)
            baseline = stored["baseline_accuracy"]
            wanted = stored
        liveness.fail_dead_trials(study)
        storage_mod.fail_stale_trials(study)
    except ValueError as exc:
        raise UserError(f"study '{study_name}' in {storage_mod.redact(url)} cannot be used: {exc}") from exc
    if list(study.directions) != [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MINIMIZE,
                                  optuna.study.StudyDirection.MAXIMIZE]:
        raise UserError(f"study '{study_name}' in {storage_mod.redact(url)} is not an autocomp study "
                        "(other objectives); use another --study name")
    proposals: list[CompressionPlan] = []
    if stored is None:  # created here: the creator's reference figure is the study's
        wanted["reference"] = {"plan": ctx.reference().label, "latency_ms": _reference_latency_ms(ctx)}
    if stored is None and cfg.sensitivity:  # created here: the creator measures it once, for every worker
        from autocomp.study import sensitivity

        sens = sensitivity.measure(ctx, space)
        wanted = {**wanted, "excluded": sensitivity.excluded(sens, space, cfg.max_accuracy_drop)}
        checks: list[dict[str, Any]] = []
        with sensitivity.simulated_check(ctx, cfg.max_accuracy_drop, checks) as check:
            proposals = sensitivity.knapsack_plans(sens, space, cfg.max_accuracy_drop, check=check)
        wanted["proposals"] = [p.summary() for p in proposals]
        wanted["proposal_checks"] = checks  # every plan the knapsack solved, with its simulated drop
        study.set_user_attr(SENSITIVITY_ATTR, sens.to_dict())
    space = replace(space, excluded=wanted.get("excluded", {}), redundant=wanted.get("redundant", {}))  # as stored
    if hasattr(study.sampler, "search_space"):
        study.sampler.search_space = space.distributions()
        study.sampler.layer_weights = layer_weights(ctx.model, space.layers, study.user_attrs.get(SENSITIVITY_ATTR))
        study.sampler.drops = (study.user_attrs.get(SENSITIVITY_ATTR) or {}).get("drops")
    for plan in [*(p for _label, p in space.baselines()), *proposals]:
        if not storage_mod.baseline_settled(study, plan):
            space.enqueue(study, plan)
    if stored is None:  # created here, or its creator died before writing the settings
        effective = replace(cfg, task=cfg.task or task.name, study=study_name, storage=storage_mod.redact(url))
        study.set_user_attr(CONFIG_ATTR, asdict(effective))  # before ATTR: the settings say the study is ready
        study.set_user_attr(COMMAND_ATTR, shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
        study.set_user_attr(ATTR, wanted)
    return PreparedSearch(cfg, url, study, space, ctx, baseline, seed, settings=wanted)


def _reference_latency_ms(ctx: Any) -> float:
    """The reference's latency on the study's device now: the fixed figure a study's ratios are
    multiplied by (its creator measures it once), so drift-corrected latencies read as milliseconds."""
    from autocomp.measure.local import LocalRunner

    ref, runner = ctx.reference(), ctx.runner()
    if isinstance(runner, LocalRunner):
        latency, _none = runner.compare([], runner.reference_session(ref), ctx.task.example_input.numpy())
        return latency.median_ms
    return runner.run(ref.built, ref.model, ctx.task, reference=ref).comparison.reference.median_ms


def _settings_of(study: Any, wait_s: float = 300.0) -> dict[str, Any] | None:
    """The settings of a study another worker is creating: they are written last (after the sensitivity
    is measured and the baselines enqueued), up to minutes after the study itself. None: its creator is gone."""
    deadline = time.monotonic() + wait_s
    while True:
        stored = study.user_attrs.get(ATTR)
        if stored is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def load_study(study: str, storage: str | None) -> Any:
    """Open an existing study for reading; the error lists the studies the storage does have."""
    import optuna

    from autocomp.study import storage as storage_mod

    url = storage_mod.normalise(storage, create=False)
    rdb = storage_mod.open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)]
    if study not in names:
        raise UserError(
            f"no study '{study}' in {storage_mod.redact(url)}; studies there: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study, storage=rdb)


def plan_of(trial: Any) -> CompressionPlan:
    return CompressionPlan.from_dict(trial.user_attrs["plan"])
