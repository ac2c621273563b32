import torch

from autocomp.compress.distill import Recovery, distill
from autocomp.compress.prune import prune
from autocomp.compress.recalibrate import recalibrate_batchnorm
from autocomp.measure.accuracy import accuracy_torch
from autocomp.plan import CompressionPlan


def test_distillation_recovers_pruned_accuracy_and_is_deterministic(digits_task, digits_ctx):
    ratios = {n: 0.5 for n in digits_ctx.prunable}
    pruned = prune(digits_ctx.model, digits_task.example_input, ratios, digits_ctx.protected)
    recalibrate_batchnorm(pruned, digits_task.calib_data)
    before = accuracy_torch(pruned, digits_task)
    recovery = Recovery(steps=150, inputs=digits_task.recovery_inputs)
    once = distill(pruned, digits_ctx.model, recovery)
    assert accuracy_torch(once, digits_task) > before
    assert not any(p.requires_grad for p in once.parameters())
    # the same plan compresses to the same weights: an exported trial is the measured one
    from dataclasses import replace

    ctx = replace(digits_ctx, finetune_steps=30)
    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8, 0.5, digits_ctx.prunable)
    a, b = ctx.compress(plan), ctx.compress(plan)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_weights_do_not_depend_on_the_callers_thread_count(digits_ctx):
    """A build worker distills on one thread, `autocomp export` in a process with every core: both must
    end on the same weights (a backward pass's reductions follow the thread count)."""
    from dataclasses import replace

    from autocomp.device.threads import torch_threads

    ctx = replace(digits_ctx, finetune_steps=150)
    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8, 0.25, digits_ctx.prunable)
    with torch_threads(1):
        one = ctx.compress(plan)
    with torch_threads(2):
        two = ctx.compress(plan)
        assert torch.get_num_threads() == 2  # restored after the distillation
    assert all(torch.equal(x, y) for x, y in zip(one.state_dict().values(), two.state_dict().values()))


def test_recovery_inputs_are_not_evaluation_data(digits_task):
    evals = {x.numpy().tobytes() for x in digits_task.eval_inputs}
    assert sum(x.numpy().tobytes() in evals for x in digits_task.recovery_inputs) <= 2  # digits has duplicates


def test_kept_teacher_outputs_give_the_same_weights_and_follow_the_teacher(digits_task, digits_ctx):
    """The teacher's outputs are kept across distillations (the same seeded batches each time): a
    second distillation reads them and ends on bit-identical weights; a teacher changed in place (its
    tensors' versions move) is asked again."""
    import copy

    from autocomp.compress import distill as mod

    teacher = copy.deepcopy(digits_ctx.model)
    ratios = {n: 0.5 for n in digits_ctx.prunable}
    recovery = Recovery(steps=40, inputs=digits_task.recovery_inputs)

    students = [prune(teacher, digits_task.example_input, ratios, digits_ctx.protected) for _ in range(4)]
    student = students.pop  # made before the hook: a copy of the teacher would carry it

    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    first = distill(student(), teacher, recovery)
    assert len(calls) == 40 and len(next(iter(mod._TARGETS[teacher].values()))) == 40
    second = distill(student(), teacher, recovery)
    assert len(calls) == 40  # every target read back
    assert all(torch.equal(x, y) for x, y in zip(first.state_dict().values(), second.state_dict().values()))
    with torch.no_grad():
        next(teacher.parameters()).mul_(0.5)
    third = distill(student(), teacher, recovery)
    assert len(calls) == 40 + 40  # a new teacher state: its own outputs
    assert not all(torch.equal(x, y) for x, y in zip(first.state_dict().values(), third.state_dict().values()))
    mod._TARGETS.pop(teacher)
    fresh = distill(student(), teacher, recovery)  # computed anew: the same as the kept ones gave
    assert all(torch.equal(x, y) for x, y in zip(third.state_dict().values(), fresh.state_dict().values()))


def test_recovery_from_the_first_change_trains_only_the_pruned_layer_and_what_follows(digits_task, digits_ctx):
    """The sensitivity step's one-group recoveries leave the layers before the pruned one as the
    teacher's (no backward pass through them); the pruned layer and every later one still learn."""
    from autocomp.compress.distill import frozen_prefix

    layers = digits_ctx.layers
    target = digits_ctx.prunable[1]
    before = layers[: layers.index(target)]
    assert before
    pruned = prune(digits_ctx.model, digits_task.example_input, {target: 0.5}, digits_ctx.protected)
    recalibrate_batchnorm(pruned, digits_task.calib_data)
    start = {k: v.clone() for k, v in pruned.state_dict().items()}
    teacher = dict(digits_ctx.model.named_parameters())
    assert frozen_prefix(digits_ctx.model, digits_ctx.model, digits_task.calib_data[:1]) == set()  # nothing pruned

    def changed(model, name):
        return not torch.equal(model.get_submodule(name).weight, start[name + ".weight"])

    tail = distill(pruned, digits_ctx.model, Recovery(20, digits_task.recovery_inputs, from_first_change=True))
    assert all(torch.equal(tail.get_submodule(n).weight, teacher[n + ".weight"]) for n in before)
    assert all(changed(tail, n) for n in layers[layers.index(target):])

    whole = prune(digits_ctx.model, digits_task.example_input, {target: 0.5}, digits_ctx.protected)
    recalibrate_batchnorm(whole, digits_task.calib_data)
    whole = distill(whole, digits_ctx.model, Recovery(20, digits_task.recovery_inputs))
    assert all(changed(whole, n) for n in layers)  # without the option every layer learns
    assert not any(p.requires_grad for p in (*tail.parameters(), *whole.parameters()))
