"""Rewriting `main` of a Relax module, shared by the build-time rewrites: re-declaring it with new
parameters (prepack.py re-types packed weights, precompute.py adds precomputed ones) and running an
expression mutator over every Relax function (layout.py, winograd.py)."""

from __future__ import annotations

from typing import Any


def num_inputs(main: Any) -> int:
    """How many of `main`'s parameters are inputs (the rest are weights): the importer's attribute, else 1."""
    return int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else 1


def rebuild_main(mod: Any, main: Any, body: Any, fn_params: list[Any], swap: dict[Any, Any]) -> Any:
    """`mod` with `main` re-declared as (fn_params) -> body, every use of a key of `swap` replaced.

    Fresh GlobalVars for every function, added through a BlockBuilder so that they carry the type of the
    function as it is now: an old one keeps the signature its function had when it was first added, and
    call sites are type-checked against it."""
    from tvm import relax

    bb = relax.BlockBuilder()
    fresh = {gv.name_hint: bb.add_func(f, gv.name_hint) for gv, f in mod.functions_items() if gv.name_hint != "main"}

    @relax.expr_functor.mutator
    class _Swap(relax.PyExprMutator):
        def visit_var_(self, op: Any) -> Any:  # noqa: N802 (TVM's visitor names)
            return swap.get(op, op)

        def visit_dataflow_var_(self, op: Any) -> Any:  # noqa: N802
            return swap.get(op, op)

        def visit_global_var_(self, op: Any) -> Any:  # noqa: N802
            return fresh.get(op.name_hint, op)

    new_body = _Swap().visit_expr(body)
    bb.add_func(relax.Function(fn_params, new_body, main.ret_ty, main.is_pure, main.attrs), "main")
    out = bb.get()
    for key, value in (mod.attrs.items() if mod.attrs else []):
        out = out.with_attr(key, value)
    return out


def mutate_functions(mod: Any, mutator_cls: Any) -> Any:
    """`mod` with every Relax function passed through a ``relax.PyExprMutator`` subclass (constructed
    with `mod`; new bindings and functions go through its builder)."""
    from tvm import relax

    rewriter = mutator_cls(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
    return rewriter.builder_.get()
