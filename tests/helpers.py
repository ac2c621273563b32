"""Helpers shared by several test modules (conftest.py holds the shared fixtures)."""

from __future__ import annotations

from typing import Any

import numpy as np

from autocomp.measure.base import first_output


def unscheduled_outputs(lowered: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs from TVM's own default build (no autocomp pass or schedule): the reference
    a scheduled kernel must reproduce."""
    import tvm
    from tvm import relax

    ex = tvm.compile(lowered.mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return first_output(vm["main"](tvm.runtime.tensor(x), *[tvm.runtime.tensor(p) for p in lowered.params]))
