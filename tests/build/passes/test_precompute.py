"""Weight-only kernels run once at build time: the classifier transpose and scale products are gone
from `main`, the artifact is no larger and the outputs do not change."""

import numpy as np
import torch
from torch import nn

from autocomp.build.passes import precompute
from autocomp.build.compile import build, legalize
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from helpers import unscheduled_outputs


def _calls(mod):
    return [gv.name_hint for gv, f in mod.functions_items() if gv.name_hint != "main"]


def test_classifier_transpose_is_computed_at_build_time(digits_task, digits_ctx, host):
    lowered = lower(digits_ctx.model, digits_task.example_input)
    fused = legalize(lowered.mod, host.tvm_target())
    folded, params, names = precompute.fold(fused, lowered.params)
    assert "transpose" in names
    main = folded["main"].script()
    assert "transpose" not in main and "cls.transpose" not in main
    assert sum(p.nbytes for p in params) == sum(p.nbytes for p in lowered.params)
    fc = next(p for p in lowered.params if p.ndim == 2)
    assert any(p.shape == fc.T.shape and np.array_equal(p, fc.T) for p in params)


def test_int4_weights_stay_packed_and_results_are_unchanged(digits_task, digits_ctx, host):
    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    fused = legalize(lowered.mod, host.tvm_target())
    _, params, names = precompute.fold(fused, lowered.params)
    assert sum(p.nbytes for p in params) <= sum(p.nbytes for p in lowered.params)  # unpacking would double them
    assert names and not any("floor_divide" in n for n in names), names  # the int4 unpack kernels stay
    built = build(lowered, host)
    x = digits_task.eval_inputs[:1].numpy()
    assert np.array_equal(LocalSession(built).run(x), unscheduled_outputs(lowered, x))
