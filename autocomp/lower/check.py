"""The user's fp32 model, exported and imported into Relax once before any trial runs.

Why: an op torch.export cannot trace or TVM's Relax importer has no conversion for fails every trial
of a search, one by one, with a graph dump or an importer assertion. Checked here once, it is one
line naming the op, the layer it sits in and the line of the user's code, and what to do.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, Callable

import torch
from torch import nn

from autocomp.errors import UserError, first_line

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')
_HOW = ("rewrite it with ops TVM imports, or move it out of the model (into the task's data preparation "
        "or post-processing)")


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null meanwhile: torch's tracer logs a failed export at length (a graph
    dump per attempt) through handlers holding the original stream; the UserError says it in a line."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _user_frame(text: str) -> str:
    """' at FILE:LINE (function)' of the innermost frame outside torch and site-packages, or ''."""
    user = [w for w in _FRAME.findall(text) if "site-packages" not in w[0] and "/torch/" not in w[0]]
    return f" at {user[-1][0]}:{user[-1][1]} ({user[-1][2]})" if user else ""


def check_exportable(model: nn.Module, example_input: torch.Tensor, name: str) -> Any:
    """The model's torch.export ExportedProgram; a UserError naming what torch.export cannot trace
    (data-dependent control flow, unsupported Python), with the line of the model's code it points at,
    instead of a graph dump per trial."""
    try:
        with torch.no_grad(), quiet_stderr():
            return torch.export.export(model.eval(), (example_input,))
    except Exception as exc:
        raise UserError(f"task {name}: torch.export cannot export the model{_user_frame(str(exc))}: "
                        f"{type(exc).__name__}: {first_line(exc)}; make it traceable (e.g. no Python `if` on "
                        "tensor values)") from exc


def where(node: Any) -> str:
    """' in layer NAME (Type) at FILE:LINE (function)' for an exported graph node, as far as its
    metadata tells (the innermost module that called it, the user's line)."""
    stack = node.meta.get("nn_module_stack") or {}
    inner = [(path, kind) for path, kind in stack.values() if path]
    layer = ""
    if inner:
        path, kind = inner[-1]
        kind_name = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        layer = f" in layer '{path}' ({kind_name})"
    return layer + _user_frame(node.meta.get("stack_trace") or "")


def op_name(node: Any) -> str:
    """The ATen op of a graph node without its overload ('_fft_r2c' for aten._fft_r2c.default)."""
    return getattr(node.target, "__name__", str(node.target)).rsplit(".", 1)[0]


def _recording(convert: Callable[..., Any], node_seen: list[Any]) -> Callable[..., Any]:
    def wrapped(node: Any, *args: Any) -> Any:
        node_seen[0] = node
        return convert(node, *args)

    return wrapped


def import_failure(exported: Any, run: Callable[[Any], Any]) -> tuple[str, Any] | None:
    """Import `exported` with `run(importer)`; None when it imports, else (what failed, node or None).

    The importer checks first that every op has a converter (one AssertionError listing the missing
    ones); a converter may also raise on arguments it does not handle. Each converter is wrapped to
    remember the node it was converting, so either failure is tied to a node of the graph.
    """
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    importer = ExportedProgramImporter()
    seen: list[Any] = [None]
    importer.convert_map = {k: _recording(v, seen) for k, v in importer.convert_map.items()}
    try:
        run(importer)
    except Exception as exc:
        known = set(importer.convert_map)  # the custom converters included, once the run added them
        missing = [n for n in exported.graph.nodes if n.op == "call_function"
                   and getattr(n.target, "__name__", None) not in known]
        if missing:
            return f"has no conversion for the torch op '{op_name(missing[0])}'", missing[0]
        node = seen[0]
        what = f"cannot convert the torch op '{op_name(node)}'" if node is not None else "failed"
        return f"{what} ({type(exc).__name__}: {first_line(exc, 160)})", node
    return None


def check_importable(exported: Any, name: str, custom_convert_map: dict[str, Any] | None = None) -> None:
    """A UserError, one line, when TVM's Relax importer rejects an op of the exported fp32 model: which
    op, in which layer, at which line of the user's code, and what to do."""
    exported = exported.run_decompositions()  # what from_exported_program imports

    def run(importer: Any) -> Any:
        return importer.from_exported_program(exported, True, False, False, custom_convert_map)

    import gc

    with quiet_stderr():
        failure = import_failure(exported, run)
        gc.collect()  # the failed importer's BlockBuilder warns on stderr when freed: free it here
    if failure is not None:
        what, node = failure
        at = where(node) if node is not None else ""
        raise UserError(f"task {name}: TVM's Relax importer {what}{at}; {_HOW}")
