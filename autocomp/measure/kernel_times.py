"""Where an inference's time goes: every kernel the Relax VM calls, timed through its instrument hook.

The hook brackets each call of one inference on the device's own session, so these are measured times
of the compiled artifact's kernels (the search's sensitivity step and the report's per-layer chart).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

LAYER_OPS = ("conv2d", "matmul", "dense")  # a VM call whose name holds one of these is a layer's kernel


def kernel_times(session: Any, x: Any, runs: int) -> list[tuple[str, float]]:
    """(kernel name, median ms) of every VM call of one inference, in call order."""
    import numpy as np

    samples: list[list[tuple[str, float]]] = []
    started: dict[str, float] = {}

    def hook(_func: Any, name: str, before: bool, _ret: Any, *_args: Any) -> int:
        if before:
            started[name] = time.perf_counter()
        else:
            samples[-1].append((name, (time.perf_counter() - started.pop(name)) * 1e3))
        return 0

    session.vm.set_instrument(hook)
    try:
        for _ in range(runs + 2):
            samples.append([])
            session.run(x)
    finally:
        session.vm.set_instrument(lambda *_a: 0)
    kept = samples[2:]  # the first calls allocate and warm caches
    return [(name, float(np.median([s[i][1] for s in kept]))) for i, (name, _t) in enumerate(kept[0])]


def by_layer(calls: list[tuple[str, float]], layers: list[str]) -> dict[str, float] | None:
    """Each layer's time: its own kernel and the ones since the previous layer's (requantize, transpose,
    pool); None when the kernels cannot be told apart by layer (e.g. Winograd splits a conv in three)."""
    kernels = [(n, t) for n, t in calls if not n.startswith("vm.builtin")]
    out: dict[str, float] = defaultdict(float)
    pending, i = 0.0, 0
    for name, t in kernels:
        pending += t
        if any(op in name for op in LAYER_OPS):
            if i >= len(layers):
                return None
            out[layers[i]] += pending
            pending, i = 0.0, i + 1
    if i != len(layers):
        return None
    out[layers[-1]] += pending  # the tail (e.g. an output reshape) with the last layer
    return dict(out)
