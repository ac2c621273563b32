"""Weight-only computations run once at build time instead of on every inference.

The torch importer turns ``nn.Linear`` into ``matmul(x, permute_dims(W))``, and the quantized ops
multiply per-channel weight scales by the input scale: kernels whose inputs are all parameters (or
constants), so each call recomputes the same array. The transpose of a 1000x1024 classifier weight
alone cost 3.3 ms of a 12 ms MobileNet call. Here every such kernel is run on the CPU that builds
(a plain host LLVM build of that one PrimFunc) and its result becomes a parameter of `main`.

Only when it does not make the artifact larger: the result replaces parameters that nothing else
uses, and it is at most as many bytes as they were. That keeps int4 weights packed (unpacking them
doubles their bytes: a memory-for-speed trade the search does not make silently). Two exceptions: a
result at most 1/SMALL of its inputs' bytes folds even when the inputs stay (the per-channel weight sums
that the ARM dot products' re-centred inputs need: a vector per conv, where computing it read the whole
weight on every call; such a sum also folds when its input is a weight unpacked per call, which is
computed here for it and stays per call), and the Winograd weight transform of a profile with
``winograd = "stored"`` (winograd.py), whose kernel is marked GROWS_WEIGHTS, asked for by the user.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autocomp.build.kernels.winograd import GROWS_WEIGHTS
from autocomp.build.passes.relax_main import num_inputs


def fold(mod: Any, params: tuple[np.ndarray, ...]) -> tuple[Any, tuple[np.ndarray, ...], list[str]]:
    """`mod` with parameter-only kernels precomputed; returns the module, its parameters and the names
    of the kernels folded away. Repeated until nothing more folds: folding a weight's per-channel sum
    leaves the weight with one use, and its transpose then folds too."""
    names: list[str] = []
    for _ in range(MAX_ROUNDS):
        mod, params, folded = _fold_once(mod, params)
        names += folded
        if not folded:
            break
    return mod, params, names


MAX_ROUNDS = 4
SMALL = 8  # a result at most 1/SMALL of its inputs' bytes (a per-channel sum of a weight) folds even when they stay


def _fold_once(mod: Any, params: tuple[np.ndarray, ...]) -> tuple[Any, tuple[np.ndarray, ...], list[str]]:
    import tvm
    from tvm.ir.expr import Constant

    main = mod["main"]
    num_input = num_inputs(main)
    call_tir = tvm.ir.Op.get("relax.call_tir")
    nbytes: dict[Any, int] = {v: a.nbytes for v, a in zip(main.params[num_input:], params)}
    uses = use_counts(main)
    steps: list[tuple[Any, Any, list[Any], tuple[int, ...], str]] = []  # (var, kernel, args, shape, dtype)
    dead: set[Any] = set()  # vars (parameters or folded bindings) whose only use was folded
    kept: set[Any] = set()  # computed here for the kernels after them, but still computed per call
    for block in main.body.blocks:  # first pass: which bindings fold (types and byte counts only)
        for binding in block.bindings:
            call = binding.value
            if not (getattr(call, "op", None) is not None and call.op.same_as(call_tir)) or len(call.args) != 2:
                continue
            args = list(call.args[1].fields)
            known = [a for a in args if not isinstance(a, Constant)]
            if not known or not all(a in nbytes for a in known):
                continue
            out_ty = binding.var.ty
            if getattr(out_ty, "shape", None) is None:
                continue
            shape = tuple(int(d) for d in out_ty.shape.values)
            size = int(np.prod(shape)) * np.dtype(str(out_ty.dtype)).itemsize
            grows = bool((mod[call.args[0]].attrs or {}).get(GROWS_WEIGHTS, False))
            inputs = sum(nbytes[a] for a in known)
            step = (binding.var, call.args[0], args, shape, str(out_ty.dtype))
            if all(uses.get(a, 0) == 1 and a not in kept for a in known) and (size <= inputs or grows):
                dead.update(known)  # the inputs' only use: the result replaces them
            elif size * SMALL > inputs:
                # e.g. an int4 weight unpacked, or a codebook's indices looked up (their input is computed per
                # call): stays per call, but what reduces it (a per-channel sum) can fold
                if size > inputs or any(a in kept for a in known):
                    nbytes[binding.var] = size
                    kept.add(binding.var)
                    steps.append(step)
                continue  # an input stays needed elsewhere and the result is not small: folding adds bytes
            nbytes[binding.var] = size
            steps.append(step)
    if all(var in kept for var, *_ in steps):
        return mod, params, []
    # second pass: one host build for every kernel involved, then run them in order
    lib = host_library(mod, [gv for _, gv, _, _, _ in steps])
    values: dict[Any, np.ndarray] = dict(zip(main.params[num_input:], params))
    folded: dict[Any, np.ndarray] = {}
    for var, gv, args, shape, dtype in steps:
        inputs = [tvm.runtime.tensor(np.ascontiguousarray(values[a] if a in values else a.data.numpy())) for a in args]
        out = tvm.runtime.tensor(np.zeros(shape, dtype=dtype))
        lib[gv.name_hint](*inputs, out)  # destination-passing: the output is the last argument
        values[var] = out.numpy()
        if var not in kept:
            folded[var] = values[var]
    names = [gv.name_hint for var, gv, _, _, _ in steps if var not in kept]
    return _rebuild(mod, main, folded, dead), _new_params(main, num_input, params, folded, dead), names


def host_library(mod: Any, kernels: list[Any]) -> Any:
    """The named PrimFuncs of `mod` built for the CPU that builds, callable by name (destination-passing:
    the output is the last argument)."""
    import tvm

    funcs = {gv.name_hint: mod[gv].with_attr("global_symbol", gv.name_hint) for gv in kernels}
    return tvm.tirx.build(tvm.IRModule(funcs), target=tvm.target.Target({"kind": "llvm"}))


def use_counts(main: Any) -> dict[Any, int]:
    from tvm import relax

    counts: dict[Any, int] = {}

    @relax.expr_functor.visitor
    class _Count(relax.PyExprVisitor):
        def visit_var_(self, op: Any) -> None:  # noqa: N802 (TVM's visitor names)
            counts[op] = counts.get(op, 0) + 1

        def visit_dataflow_var_(self, op: Any) -> None:  # noqa: N802
            counts[op] = counts.get(op, 0) + 1

    visitor = _Count()
    for block in main.body.blocks:
        for binding in block.bindings:
            visitor.visit_expr(binding.value)
    visitor.visit_expr(main.body.body)
    return counts


def _new_params(main: Any, num_input: int, params: tuple[np.ndarray, ...], folded: dict[Any, np.ndarray],
                dead: set[Any]) -> tuple[np.ndarray, ...]:
    kept = [a for v, a in zip(main.params[num_input:], params) if v not in dead]
    return tuple(kept + [a for v, a in folded.items() if v not in dead])


def _rebuild(mod: Any, main: Any, folded: dict[Any, np.ndarray], dead: set[Any]) -> Any:
    """`main` without the folded bindings; the surviving folded values are new trailing parameters."""
    from tvm import relax

    from autocomp.build.passes.relax_main import rebuild_main

    new_vars = {v: relax.Var(f"pre_{v.name}", relax.TensorType(a.shape, str(a.dtype)))
                for v, a in folded.items() if v not in dead}
    blocks = []
    for block in main.body.blocks:
        kept = [b for b in block.bindings if b.var not in folded]
        blocks.append(relax.DataflowBlock(kept) if isinstance(block, relax.DataflowBlock) else relax.BindingBlock(kept))
    body = relax.SeqExpr(blocks, main.body.body)
    fn_params = [p for p in main.params if p not in dead] + list(new_vars.values())
    return rebuild_main(mod, main, body, fn_params, new_vars)
