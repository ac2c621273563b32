"""The sensitivity step's jobs in spawned processes give what they give here, and fall back to here."""

import psutil
import torch

from autocomp.compress.distill import Recovery
from autocomp.compress.pipeline import float_input_ranges
from autocomp.study import sensitivity_pool as pool


def shared_for(ctx, model=None, prefix=""):
    task = ctx.task
    layers = tuple(prefix + n for n in ctx.layers)
    protected = tuple(prefix + n for n in ctx.protected)
    model = model or ctx.model
    ranges = float_input_ranges(model, list(layers), task.example_input, task.calib_data, protected)
    return pool.Shared(model, task.example_input, task.calib_data, protected, False, ctx.channel_multiple(),
                       ranges, Recovery(20, task.calib_data), task.eval_inputs[:200], layers)


def jobs_for(ctx):
    from autocomp.plan import LayerPlan

    def choices(name):
        return (("w8a8", LayerPlan(name, 8, 8)), ("w4a32", LayerPlan(name, 4, 32)), ("k2a8", LayerPlan(name, 2, 8, 0.0, True)))

    # a prune ratio in a job of its own, as sensitivity.measure sends it: run merges a layer's jobs
    return ([pool.LayerJob(name, (("p0.5", LayerPlan(name, 32, 32, 0.5)),)) for name in reversed(ctx.prunable)]
            + [pool.LayerJob(name, choices(name)) for name in ctx.layers])


def test_spawned_workers_give_the_outputs_this_process_gives(digits_ctx):
    shared, jobs = shared_for(digits_ctx), jobs_for(digits_ctx)
    here = pool.run(shared, jobs, workers=1)
    spread = pool.run(shared, jobs, workers=2)
    assert list(spread) == list(here) == list(reversed(digits_ctx.prunable)) + [  # every layer, in the caller's order
        n for n in digits_ctx.layers if n not in digits_ctx.prunable]
    assert any(job.pruned() for job in jobs)  # a prune ratio, with its distillation, went to a worker too
    for name in here:
        assert set(spread[name]) == set(here[name]) == {"w8a8", "w4a32", "k2a8", *(["p0.5"] if name in digits_ctx.prunable else [])}
        for key, out in here[name].items():
            # one thread there, torch's default here: the same arithmetic up to summation order
            assert torch.allclose(spread[name][key], out, atol=1e-3, rtol=1e-3), (name, key)
    # the pool is gone: no worker process outlives the step
    assert not [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


class Unpicklable(torch.nn.Module):
    """A user's model holding a lambda: pickle refuses it, so its jobs run in this process."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.hook = lambda x: x

    def forward(self, x):
        return self.hook(self.inner(x))


def test_a_model_that_does_not_pickle_is_measured_here(digits_ctx):
    import copy

    model = Unpicklable(copy.deepcopy(digits_ctx.model)).eval()
    shared = shared_for(digits_ctx, model, prefix="inner.")
    from autocomp.plan import LayerPlan

    jobs = [pool.LayerJob(name, (("w8a8", LayerPlan(name, 8, 8)),)) for name in (shared.layers[0], shared.layers[-1])]
    assert not pool._pickles(shared)
    out = pool.run(shared, jobs, workers=2)
    assert list(out) == [shared.layers[0], shared.layers[-1]]
    assert all(torch.isfinite(v["w8a8"]).all() and v["w8a8"].shape[0] == 200 for v in out.values())
