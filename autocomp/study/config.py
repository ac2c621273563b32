"""What a study is: the search's config (flags / API), the settings stored with the study (checked
on resume), its objectives and constraints, its sampler."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from autocomp.plan import DEFAULT_FINETUNE_STEPS
from autocomp.errors import UserError
from autocomp.study.space import SearchSpace

STUDY_VERSION = 2  # 2: latencies timed beside a reference; the objective is the drift-corrected figure
ATTR = "autocomp"  # study user attr holding the study's fixed settings
COMMAND_ATTR = "command"  # study user attr: how its creator was started (the report shows it)
CONFIG_ATTR = "config"  # study user attr: its creator's SearchConfig as run (`autocomp front --config`)
SENSITIVITY_ATTR = "sensitivity"  # study user attr: the creator's per-layer sensitivity (sensitivity.py)
DIRECTIONS = ("minimize", "minimize", "maximize")  # latency_ms, memory_bytes, accuracy
METRIC_NAMES = ("latency_ms", "memory_bytes", "accuracy")  # what optuna-dashboard labels the objectives
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
    finetune_steps: int = DEFAULT_FINETUNE_STEPS  # distillation after pruning (compress/distill.py); 0: none
    tune_trials: int = 0
    jobs: int = 0  # candidates compiled at once (0: one per core); see buildpool.py
    tracker_timeout_s: float = 10.0  # for the RPC tracker to accept a connection
    sampler: str = "tpe"  # see SAMPLERS
    sensitivity: bool = True  # measure per-layer sensitivity first: prune the space, propose knapsack plans
    max_latency_ms: float | None = None  # further constraints: the drift-corrected latency ...
    max_memory_mb: float | None = None  # ... and param + arena bytes (besides the device's memory_mb)
    screen: bool = True  # a candidate whose simulated accuracy breaks the budget is not compiled (search.py)

    def measure_options(self) -> Any:
        from autocomp.measure.base import MeasureOptions

        return MeasureOptions(tracker=self.tracker, rpc_key=self.rpc_key, estimate=self.estimate,
                              tracker_timeout_s=self.tracker_timeout_s)

    def validate(self) -> None:
        from autocomp.measure.flags import check_candidate_flags

        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise UserError(f"--max-accuracy-drop must be a fraction in [0, 1] (0.01 = one point), got {self.max_accuracy_drop}")
        if self.timeout_s is not None and not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise UserError(f"--timeout must be positive seconds, got {self.timeout_s}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        for flag, value in (("--max-latency-ms", self.max_latency_ms), ("--max-memory-mb", self.max_memory_mb)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise UserError(f"{flag} must be a positive number, got {value}")
        if self.jobs < 0:
            raise UserError(f"--jobs must be >= 0 (0: one per core), got {self.jobs}")
        check_candidate_flags(self.tracker, self.estimate, self.tune_trials, self.finetune_steps, self.tracker_timeout_s)


@dataclass(frozen=True)
class SearchOutcome:
    study: str
    storage: str
    trials_run: int
    trials_total: int
    failed: int
    elapsed_s: float
    seed: int = 0  # this worker's sampler seed
    errors: tuple[str, ...] = ()  # why this worker's failed trials failed, one entry per failed trial
    screened: int = 0  # this worker's trials screened out by the simulation (pruned, not compiled); those
    # within the cap (search.SCREEN_CAP) are not in trials_run


def default_study_name(task: str | None, device: str) -> str:
    from autocomp.tasks import DEFAULT_TASK

    return f"{(task or DEFAULT_TASK).replace(':', '.')}@{device}"


def constraint_values(result: Any, baseline_accuracy: float, max_drop: float, memory_limit_bytes: int,
                      latency_ms: float | None = None, max_latency_ms: float | None = None) -> dict[str, float]:
    """Optuna constraints (> 0 is a violation): accuracy drop over the limit, memory over the device's
    (or the user's, the smaller), the drift-corrected latency `latency_ms` over the user's limit."""
    drop = round(baseline_accuracy - result.accuracy_compiled, 9)
    values = {"accuracy_drop": drop - max_drop}
    if memory_limit_bytes:
        values["memory"] = float(result.memory_bytes - memory_limit_bytes)
    if max_latency_ms is not None and latency_ms is not None:
        values["latency"] = float(latency_ms - max_latency_ms)
    return values


def memory_limit_bytes(device_mb: int, user_mb: float | None) -> int:
    limits = [mb for mb in (device_mb, user_mb) if mb]
    return int(min(limits) * 1024 * 1024) if limits else 0


SAMPLERS = ("tpe", "nsga2", "gp", "random")


def make_sampler(seed: int, kind: str = "tpe") -> Any:
    """Optuna's samplers; all but random read the trials' constraints (Trial.set_constraint).

    TPE is the default: it handles a space of dozens of categorical choices from few trials, and with
    constant_liar, trials asked together (parallel builds) are not sampled as if the others did not exist;
    many of its samples are neighbours of the feasible front (neighbours.py), where it samples near-randomly,
    as many as their feasible record earns against its own (tpe.py).
    NSGA-II needs populations (tens of trials per generation) to pay off; GP suits small continuous spaces;
    random is the control a search must beat (scripts/bench_search.py)."""
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    from autocomp.study.tpe import SpaceTPESampler

    return SpaceTPESampler(seed=seed, n_startup_trials=6, multivariate=True, constant_liar=True)



def objective_latency_ms(result: Any, settings: dict[str, Any]) -> float:
    """What the search minimises: the latency's ratio to the reference timed beside it, times the
    reference figure stored with the study (measure/interleave.py); the raw median when there is no ratio."""
    ratio = result.get("latency_ratio") if isinstance(result, dict) else result.latency_ratio
    ref = (settings.get("reference") or {}).get("latency_ms")
    if ratio is None or not ref:
        return result["latency_ms"] if isinstance(result, dict) else result.latency_ms
    return float(ratio) * float(ref)


def settings_for(cfg: SearchConfig, task_name: str, space: SearchSpace, baseline: float, winograd: str) -> dict[str, Any]:
    settings = {
        "version": STUDY_VERSION,
        "task": task_name,
        "task_spec": cfg.task or task_name,
        "device": cfg.device,
        "max_accuracy_drop": cfg.max_accuracy_drop,
        "max_latency_ms": cfg.max_latency_ms,
        "max_memory_mb": cfg.max_memory_mb,
        "finetune_steps": cfg.finetune_steps,
        "measure": "estimate" if cfg.estimate else ("emulated" if (cfg.rpc_key or "").endswith("-emulated") else "device"),
        "baseline_accuracy": baseline,
        "space": space.to_dict(),
        # prune ratios not offered as they prune as a smaller one does (SearchSpace.redundant): stored, so
        # a study resumed by another version keeps the space its trials were sampled from
        "redundant": space.redundant,
        "objectives": list(OBJECTIVES),
        "winograd": winograd,  # the profile's key: which conv kernels the latencies and memory are of
        # filled in by the study's creator (search.py): latencies are ratios to this build timed beside
        # each candidate, times this figure
        "reference": {},
    }
    return json.loads(json.dumps(settings))  # as it reads back from storage (tuples become lists)


def check_compatible(name: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    for key in ("version", "task", "device", "max_accuracy_drop", "max_latency_ms", "max_memory_mb", "space", "measure",
                "finetune_steps"):
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
