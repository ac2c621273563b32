"""Re-time the front and the uniform baselines together, in one window, beside the reference.

Each trial's latency was timed beside the reference in its own window (measure/interleave.py), so the
search compares ratios. Before a front is shown, its points are timed once more in the same rounds, so
the absolute figures a user reads next to each other were timed next to each other. The result is stored
with the study (a user attr), and the table says when it was taken.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from autocomp.errors import UserError
from autocomp.plan import CompressionPlan
from autocomp.study import pareto


def trials_to_retime(study: Any) -> list[Any]:
    """The front's trials, and every completed uniform plan (the baselines a user compares with)."""
    front = {p.trial for p in pareto.front(study)}
    chosen, seen = [], set()
    for t in sorted(pareto.completed(study), key=lambda t: t.number):
        plan = CompressionPlan.from_dict(t.user_attrs["plan"])
        key = t.user_attrs["result"]["plan_key"]
        if key in seen or not (t.number in front or _uniform(plan)):
            continue
        seen.add(key)
        chosen.append(t)
    return chosen


def _uniform(plan: CompressionPlan) -> bool:
    first = plan.layers[0]
    return all((lp.w_bits, lp.a_bits, lp.shared) == (first.w_bits, first.a_bits, first.shared) for lp in plan.layers) and \
        len({lp.prune for lp in plan.layers if lp.prune > 0}) <= 1


def _local_runner(ctx: Any) -> Any:
    from autocomp.measure.local import LocalRunner

    runner = ctx.runner()
    if not isinstance(runner, LocalRunner):
        raise UserError(f"re-timing the front runs on the local host; device '{ctx.profile.name}' is measured "
                        "elsewhere (each trial there was already timed beside the reference on the device)")
    return runner


def time_together(trials: list[Any], ctx: Any) -> tuple[Any, Any, list[Any]]:
    """Compile the trials' plans again and time them together beside the reference, in one window, on
    this host: (runner, the reference's latency, one comparison per trial). Trials of several studies of
    one task and device may be mixed (scripts/bench_search.py compares samplers this way)."""
    from autocomp.device.timing_lock import shared_use

    runner = _local_runner(ctx)
    with shared_use():
        builds = [ctx.compile(CompressionPlan.from_dict(t.user_attrs["plan"])).built for t in trials]
    sessions = [runner.session(b) for b in builds]
    ref_latency, comparisons = runner.compare(sessions, runner.reference_session(ctx.reference()),
                                              ctx.task.example_input.numpy())
    return runner, ref_latency, comparisons


def retime(study: Any, ctx: Any) -> dict[str, Any]:
    """Compile the chosen trials' plans again, time them together beside the reference, store and
    return the record (`points`: trial number -> latency_ms, p10 / p90, ratio)."""
    _local_runner(ctx)
    trials = trials_to_retime(study)
    if not trials:
        return {}
    runner, ref_latency, comparisons = time_together(trials, ctx)
    record = {
        "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "measured_on": runner.measured_on,
        "reference": ctx.reference().label,
        "reference_ms": ref_latency.median_ms,
        "rounds": comparisons[0].rounds,
        "window": runner.last_window.get("timing_window"),
        "points": {
            str(t.number): {"latency_ms": c.candidate.median_ms, "p10_ms": c.candidate.p10_ms,
                            "p90_ms": c.candidate.p90_ms, "ratio": c.ratio}
            for t, c in zip(trials, comparisons)
        },
    }
    study.set_user_attr(pareto.RETIMED_ATTR, record)
    return record


def retime_if_local(study: Any, ctx: Any) -> dict[str, Any]:
    """`retime` where the device is this machine; {} elsewhere (each remote or estimated trial was
    already timed beside the reference on its device)."""
    from autocomp.measure.local import LocalRunner

    return retime(study, ctx) if isinstance(ctx.runner(), LocalRunner) else {}


def context_of(study: Any, options: Any) -> Any:
    """The task and device a stored study was made with, prepared again (for `front --remeasure`)."""
    from autocomp.candidate import prepare
    from autocomp.device.profiles import load_profile
    from autocomp.study.config import ATTR
    from autocomp.tasks import load_task

    settings = study.user_attrs.get(ATTR, {})
    if settings.get("measure") == "estimate":
        raise UserError(f"study '{study.study_name}' holds estimates: they do not drift, so there is nothing to re-time")
    profile = load_profile(settings.get("device", "host"))
    return prepare(load_task(settings.get("task_spec")), profile, options, settings.get("finetune_steps", 0))
