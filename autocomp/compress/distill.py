"""A short knowledge-distillation fine-tune that recovers accuracy lost to pruning.

The pruned student learns to reproduce the unpruned teacher's logits (mean squared error) on unlabeled
inputs: the task's `recovery_inputs`, else its calibration inputs; never evaluation data. BatchNorm
statistics stay frozen (eval mode) so small batches cannot disturb them. Seeded and on one thread: the
same plan gives the same weights in every process (a build worker, the main process of `autocomp
export`), so an exported trial is the trial that was measured (device/threads.torch_threads).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

CACHE_BYTES = 64 << 20  # teacher outputs kept per (teacher, recovery); beyond it they are computed per step

# teacher -> (its state, the recovery's inputs and draw) -> the teacher's output for each step's batch
_TARGETS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], list[torch.Tensor]]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Recovery:
    steps: int
    inputs: torch.Tensor
    lr: float = 1e-3
    batch: int = 16  # 150 steps of 16 cost ~9 s on one thread (FashionNet, Zen 3) and recover as much as 200 of 64
    seed: int = 0
    from_first_change: bool = False  # train only the layers from the first pruned one on (frozen_prefix)


TRAIN_THREADS = 1  # the build workers' count: a distillation elsewhere then ends on the same weights


def distill(student: nn.Module, teacher: nn.Module, recovery: Recovery) -> nn.Module:
    from autocomp.device.threads import torch_threads

    if recovery.steps <= 0 or len(recovery.inputs) == 0:
        return student
    with torch_threads(TRAIN_THREADS):
        return _distill(student, teacher, recovery)


def _distill(student: nn.Module, teacher: nn.Module, recovery: Recovery) -> nn.Module:
    gen = torch.Generator().manual_seed(recovery.seed)
    teacher.eval()
    student.eval()  # frozen BatchNorm statistics; gradients still flow to every weight
    frozen = frozen_prefix(student, teacher, recovery.inputs[:1]) if recovery.from_first_change else set()
    params = [p for p in student.parameters() if p.dtype.is_floating_point and id(p) not in frozen]
    for p in student.parameters():
        p.requires_grad_(id(p) not in frozen and p.dtype.is_floating_point)  # a frozen one in the graph: no backward
    opt = torch.optim.Adam(params, lr=recovery.lr)
    n = len(recovery.inputs)
    targets = _targets(teacher, recovery)
    for step in range(recovery.steps):
        idx = torch.randint(0, n, (min(recovery.batch, n),), generator=gen)
        x = recovery.inputs[idx]
        if step < len(targets):
            target = targets[step]
        else:
            with torch.no_grad():
                target = teacher(x)
            if (step + 1) * target.nelement() * target.element_size() <= CACHE_BYTES:
                targets.append(target)
        opt.zero_grad()
        nn.functional.mse_loss(student(x), target).backward()
        opt.step()
    for p in params:
        p.requires_grad_(False)
    return student.eval()


def frozen_prefix(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> set[int]:
    """The ids of the parameters of the modules the student runs before its first one whose parameter
    shapes differ from the teacher's (the first pruned layer). Why: the sensitivity step recovers one
    pruned group at a time; the layers before it are the teacher's own, and leaving them as they are
    skips their part of every backward pass (the step's prune jobs cost a quarter less on the built-in
    task). Its drops are closer to what the search's own whole-model recovery gives on the built-in task
    and slightly further on the MobileNet task (scripts/bench_sensitivity.py, docs/design-notes.md)."""
    from autocomp.compress.layers import run_with_hooks

    shapes = {name: p.shape for name, p in teacher.named_parameters()}
    order: list[str] = []  # leaf modules, as their calls end: the order they run in
    leaves = [name for name, m in student.named_modules() if not list(m.children())]
    run_with_hooks(student, x, {name: (lambda *_, name=name: order.append(name)) for name in leaves})
    frozen: set[int] = set()
    for name in dict.fromkeys(order):  # first calls
        own = [(f"{name}.{n}" if name else n, p) for n, p in student.get_submodule(name).named_parameters(recurse=False)]
        if any(shapes.get(n) != p.shape for n, p in own):
            return frozen
        frozen.update(id(p) for _n, p in own)
    return set()  # nothing pruned: train everything, as without the option


def _targets(teacher: nn.Module, recovery: Recovery) -> list[torch.Tensor]:
    """The teacher's outputs for the batches a recovery draws, kept across calls. Why: every pruned
    candidate (and every pruning group the sensitivity step measures) distills from the same teacher
    with the same seeded draw, so the batches are the same each time; the teacher's forward was a third
    of each step. The key holds the teacher's parameter and buffer versions (an in-place update, e.g.
    training it further, starts a new list) and the identity of the inputs."""
    inputs = recovery.inputs
    state = tuple(t._version for t in (*teacher.parameters(), *teacher.buffers()))  # noqa: SLF001
    key = (state, id(inputs), inputs.data_ptr(), inputs._version, tuple(inputs.shape), recovery.seed,  # noqa: SLF001
           recovery.batch)
    per_teacher = _TARGETS.setdefault(teacher, {})
    if key not in per_teacher:
        per_teacher.clear()  # an older state's outputs are never read again
        per_teacher[key] = []
    return per_teacher[key]
