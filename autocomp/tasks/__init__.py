"""Tasks: a trained model, its data and its metric."""

from autocomp.tasks.base import Task
from autocomp.tasks.registry import BUILTIN_TASKS, DEFAULT_TASK, load_task

__all__ = ["Task", "BUILTIN_TASKS", "DEFAULT_TASK", "load_task"]
