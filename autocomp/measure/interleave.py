"""Latencies that stay comparable across timing windows: each candidate is timed in A/B rounds with a
reference build, and the search compares the ratio, not the absolute figure.

This machine's speed drifts between windows by up to 1.8x (a Pi throttles when hot): an absolute latency
timed minutes after another ranks the drift. Within a window both builds see the same machine, so the
per-round ratio (candidate sample / reference sample, rounds in ABBA order so a linear drift cancels)
is stable; its median over rounds is what the search optimises (times the study's fixed reference
figure, so it still reads as milliseconds).

The timers are plain callables returning one sample in seconds, so the same rounds run on a local VM
or on a remote one over RPC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from autocomp.device.profiles import Measurement
from autocomp.measure.base import Latency

Timer = Callable[[], float]  # one timed sample: seconds per inference
MIN_ROUNDS = 3


@dataclass(frozen=True)
class Comparison:
    """One build timed against the reference in the same window."""

    candidate: Latency
    reference: Latency
    ratio: float  # median over rounds of candidate / reference
    ratio_p10: float
    ratio_p90: float
    rounds: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calls_per_sample(once: Callable[[int], float], m: Measurement) -> int:
    """How many back-to-back calls make one sample last `min_repeat_ms` (TVM's evaluator would search
    for it again in every call; found once here, the rounds then time exactly this many)."""
    number = max(1, m.number)
    if m.min_repeat_ms <= 0:
        return number
    per_call_ms = once(number) * 1e3
    if per_call_ms <= 0:
        return number
    return max(number, int(np.ceil(m.min_repeat_ms / per_call_ms)))


def rounds_of(timers: Sequence[Timer], reference: Timer, m: Measurement, threads: int | None,
              number: int) -> tuple[Latency, list[Comparison]]:
    """`m.repeat` rounds; each round times the reference and every build once, the order reversed in
    every other round (ABBA), so a drift within the window falls on both sides equally. Returns the
    reference's own latency in the window (also with no builds) and one comparison per build."""
    n = len(timers)
    rounds = max(MIN_ROUNDS, m.repeat)
    ref: list[float] = []
    cand: list[list[float]] = [[] for _ in range(n)]
    for r in range(rounds):
        order = list(range(-1, n)) if r % 2 == 0 else list(range(n - 1, -2, -1))
        for i in order:
            if i < 0:
                ref.append(reference())
            else:
                cand[i].append(timers[i]())
    ref_s = np.asarray(ref)
    m_used = Measurement(number=number, repeat=rounds, min_repeat_ms=m.min_repeat_ms, warmup=m.warmup, threads=m.threads)
    ref_latency = Latency.from_seconds(ref_s, m_used, threads)
    out = []
    for samples in cand:
        s = np.asarray(samples)
        ratios = s / ref_s
        out.append(Comparison(Latency.from_seconds(s, m_used, threads), ref_latency, float(np.median(ratios)),
                              float(np.percentile(ratios, 10)), float(np.percentile(ratios, 90)), rounds))
    return ref_latency, out
