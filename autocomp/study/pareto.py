"""The feasible Pareto front of a study, and its points as plain records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autocomp.measure.base import is_estimate
from autocomp.plan import CompressionPlan

HV_REF_POINT = (1.1, 1.1)  # hypervolume box, in (latency, memory) each divided by the fp32 trial's
RETIMED_ATTR = "retimed"  # study user attr: the front and baselines re-timed together (remeasure.py)


@dataclass(frozen=True)
class FrontPoint:
    trial: int
    plan_label: str
    plan: dict[str, Any]
    latency_ms: float
    latency_p10_ms: float
    latency_p90_ms: float
    memory_bytes: int
    param_bytes: int
    arena_bytes: int
    accuracy: float  # of the compiled artifact
    accuracy_sim: float
    compute: str
    measured_on: str
    device: str
    estimated: bool
    raw_latency_ms: float  # the median as timed, in its own window (latency_ms is drift-corrected)
    latency_ratio: float | None  # to the reference timed beside it (None: a study from before ratios)
    retimed_ms: float | None = None  # re-timed together with the rest of the front (remeasure.py)
    retimed_ratio: float | None = None

    @classmethod
    def from_trial(cls, trial: Any, retimed: dict[str, Any] | None = None) -> FrontPoint:
        """`latency_ms` is the objective the search compared (the drift-corrected figure; the raw
        median for a study from before ratios); p10 / p90 are the ratio's, on the same scale."""
        r = trial.user_attrs["result"]
        latency = trial.values[0] if trial.values else r["latency_ms"]
        ratio = r.get("latency_ratio")
        scale = latency / ratio if ratio else latency / r["latency_ms"]
        p10 = r["latency_ratio_p10"] if ratio else r["latency_p10_ms"]
        p90 = r["latency_ratio_p90"] if ratio else r["latency_p90_ms"]
        again = (retimed or {}).get(str(trial.number), {})
        return cls(
            trial=trial.number, plan_label=r["plan_label"], plan=trial.user_attrs["plan"],
            latency_ms=latency, latency_p10_ms=p10 * scale, latency_p90_ms=p90 * scale,
            memory_bytes=r["memory_bytes"], param_bytes=r["param_bytes"], arena_bytes=r["arena_bytes"],
            accuracy=r["accuracy_compiled"], accuracy_sim=r["accuracy_sim"], compute=r["compute"],
            measured_on=r["measured_on"], device=r["device"], estimated=is_estimate(r["measured_on"]),
            raw_latency_ms=r["latency_ms"], latency_ratio=ratio,
            retimed_ms=again.get("latency_ms"), retimed_ratio=again.get("ratio"),
        )

    def to_json(self, baseline: FrontPoint | None) -> dict[str, Any]:
        d = asdict(self)
        if baseline is not None:
            d.update(
                baseline_trial=baseline.trial,
                baseline_latency_ms=baseline.latency_ms,
                baseline_memory_bytes=baseline.memory_bytes,
                baseline_param_bytes=baseline.param_bytes,
                baseline_accuracy=baseline.accuracy,
                speedup=baseline.latency_ms / self.latency_ms,
                retimed_speedup=(baseline.retimed_ms / self.retimed_ms
                                 if baseline.retimed_ms and self.retimed_ms else None),
                memory_ratio=self.memory_bytes / baseline.memory_bytes,
                accuracy_drop=baseline.accuracy - self.accuracy,
            )
        return d


def completed(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if "result" in t.user_attrs]


def feasible(trial: Any) -> bool:
    """All constraints satisfied; a trial without constraints (failed before measuring) is not."""
    constraints = trial.constraints
    return bool(constraints) and all(v <= 0 for v in constraints.values())


def retimed(study: Any) -> dict[str, Any]:
    """The last re-timing of the front and baselines together (remeasure.py), or {}."""
    return study.user_attrs.get(RETIMED_ATTR) or {}


def front(study: Any) -> list[FrontPoint]:
    """Feasible, non-dominated trials (Optuna's constrained best_trials), fastest first.

    A reused trial (same plan as an earlier one) is shown once, under the first trial that measured it.
    """
    seen: set[str] = set()
    points = []
    for t in sorted(study.best_trials, key=lambda t: t.number):
        if "result" not in t.user_attrs or not feasible(t):
            continue
        key = t.user_attrs["result"]["plan_key"]
        if key in seen:
            continue
        seen.add(key)
        points.append(FrontPoint.from_trial(t, retimed(study).get("points")))
    return sorted(points, key=lambda p: (p.latency_ms, p.memory_bytes))


def pick(points: list[FrontPoint], max_latency_ms: float | None = None,
         max_memory_mb: float | None = None) -> FrontPoint | None:
    """The most accurate point within the limits (then the fastest): always a front point, since a
    point that dominated it would be within the limits too. Latency: the re-timed figure where the
    front was re-timed together, else the drift-corrected one."""
    def latency(p: FrontPoint) -> float:
        return p.retimed_ms if p.retimed_ms is not None else p.latency_ms

    within = [p for p in points
              if (max_latency_ms is None or latency(p) <= max_latency_ms)
              and (max_memory_mb is None or p.memory_bytes <= max_memory_mb * 1024 * 1024)]
    return max(within, key=lambda p: (p.accuracy, -latency(p)), default=None)


def baseline(study: Any) -> FrontPoint | None:
    """The fp32 trial: the reference for speedups and memory ratios."""
    for t in completed(study):
        plan = CompressionPlan.from_dict(t.user_attrs["plan"])
        if all(lp.w_bits == 32 and lp.a_bits == 32 and lp.prune == 0 for lp in plan.layers):
            return FrontPoint.from_trial(t, retimed(study).get("points"))
    return None


def find_trial(study: Any, number: int) -> Any:
    from autocomp.errors import UserError

    for t in completed(study):
        if t.number == number:
            return t
    done = [t.number for t in completed(study)]
    raise UserError(
        f"trial {number} of study '{study.study_name}' has no completed measurement; "
        f"completed trials: {', '.join(map(str, done)) or 'none'} (see 'autocomp front')"
    )


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float] = HV_REF_POINT) -> float:
    """Area dominated by `points` (both minimised) inside the box up to `ref` (the report's progress
    chart and scripts/bench_search.py)."""
    inside = sorted((x, y) for x, y in points if x < ref[0] and y < ref[1])
    area, best_y = 0.0, ref[1]  # sweep by latency: the staircase of the non-dominated points
    front = []
    for x, y in inside:
        if y < best_y:
            front.append((x, y))
            best_y = y
    for i, (x, y) in enumerate(front):
        next_x = front[i + 1][0] if i + 1 < len(front) else ref[0]
        area += (next_x - x) * (ref[1] - y)
    return area
