"""Built-in tasks by name; user tasks by 'package.module:function'."""

from __future__ import annotations

import importlib
from typing import Callable

from autocomp.errors import UserError, first_line
from autocomp.tasks.base import Task

DEFAULT_TASK = "fashion-mnist"


def _fashion() -> Task:
    from autocomp.tasks import builtin

    return builtin.fashion_mnist()


def _fashion_mobilenet() -> Task:
    from autocomp.tasks import builtin

    return builtin.fashion_mobilenet()


def _fashion_rows() -> Task:
    from autocomp.tasks import builtin

    return builtin.fashion_rows()


def _digits() -> Task:
    from autocomp.tasks import builtin

    return builtin.digits()


BUILTIN_TASKS: dict[str, Callable[[], Task]] = {"fashion-mnist": _fashion, "fashion-mobilenet": _fashion_mobilenet,
                                                 "fashion-rows": _fashion_rows, "digits": _digits}


def load_task(spec: str | None = None) -> Task:
    """Resolve a built-in task name or a 'module:function' that returns a Task."""
    spec = spec or DEFAULT_TASK
    if spec in BUILTIN_TASKS:
        return BUILTIN_TASKS[spec]()
    if ":" not in spec:
        raise UserError(
            f"unknown task '{spec}'; built-in tasks: {', '.join(BUILTIN_TASKS)}, "
            "or give your own as package.module:function"
        )
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(
            f"task '{spec}': cannot import module '{module_name}' ({exc}); is it on PYTHONPATH?"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UserError(f"task '{spec}': module '{module_name}' has no function '{func_name}'")
    try:
        task = func()
    except UserError:
        raise
    except Exception as exc:  # the user's code: its message, not our traceback
        raise UserError(f"task '{spec}': {func_name}() raised {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(task, Task):
        raise UserError(
            f"task '{spec}': {func_name}() returned {type(task).__name__}, expected autocomp.tasks.Task"
        )
    if task.example_input.shape[0] != 1:
        raise UserError(f"task '{spec}': example_input must have batch size 1, got shape {tuple(task.example_input.shape)}")
    return task
