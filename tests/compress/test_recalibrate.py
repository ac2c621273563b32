from autocomp.compress import compress
from autocomp.compress.prune import prune
from autocomp.compress.recalibrate import recalibrate_batchnorm
from autocomp.measure.accuracy import accuracy_torch
from autocomp.plan import CompressionPlan


def test_batchnorm_recalibration_recovers_accuracy_after_pruning(digits_task, digits_ctx):
    ratios = {n: 0.25 for n in digits_ctx.prunable}
    pruned = prune(digits_ctx.model, digits_task.example_input, ratios, digits_ctx.protected)
    before = accuracy_torch(pruned, digits_task)
    after = accuracy_torch(recalibrate_batchnorm(pruned, digits_task.calib_data), digits_task)
    assert after > before
    # compress() does it for every pruned plan
    plan = CompressionPlan.uniform(digits_ctx.layers, prune=0.25, prunable=digits_ctx.prunable)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    assert accuracy_torch(model, digits_task) == after
