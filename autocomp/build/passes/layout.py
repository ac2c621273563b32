"""Channels-last (NHWC) activations for CPU targets, chosen once for the whole graph.

Why: autocomp's conv kernels vectorize over output channels (build/kernels/), so their register tiles hold
channels innermost. In NCHW every tile is transposed on its way out (gathers of the accumulators,
per-byte stores for int8), and the int8 dot templates interleave each input into ``[C/4, H, W, 4]``
on their way in. With NHWC between layers both disappear: a tile's channels are stored as one
contiguous vector, and four channels of a pixel are already the 32-bit word vpdpbusd / sdot broadcast.

TVM's own ``ConvertLayout`` does the rewrite: every conv2d goes NHWC / OHWI, the layout is propagated
through the elementwise ops, pools and reductions that have layout inference, and transposes are left
only at the graph's edges. ``clip`` has no layout inference in TVM 0.27 (each one would get a pair of
transposes around it), so it is first rewritten as ``minimum(maximum(x, lo), hi)``, the same values.
``squeeze``'s layout inference indexes a string with the axis as given, so a negative axis (the torch
importer emits ``squeeze(x, axis=[-2])`` inside every ``nn.MultiheadAttention``) writes out of bounds
and the pass dies with ``std::bad_alloc``: axes are made non-negative first, the same op.
The weights' OIHW -> OHWI transposes are parameter-only kernels that precompute.fold runs at build time.
"""

from __future__ import annotations

from typing import Any

from autocomp.build.passes.relax_main import mutate_functions

DATA_LAYOUT = "NHWC"
KERNEL_LAYOUT = "OHWI"


def channels_last(mod: Any) -> Any:
    """`mod` with every conv2d of `main` in NHWC / OHWI."""
    from tvm import relax

    mod = _layout_safe(mod)
    return relax.transform.ConvertLayout({"relax.nn.conv2d": [DATA_LAYOUT, KERNEL_LAYOUT]})(mod)


def _layout_safe(mod: Any) -> Any:
    """`clip` as min / max and `squeeze` with non-negative axes (see the module docstring)."""
    import tvm
    from tvm import relax

    clip, squeeze = tvm.ir.Op.get("relax.clip"), tvm.ir.Op.get("relax.squeeze")

    @relax.expr_functor.mutator
    class _Rewrite(relax.PyExprMutator):
        def visit_call_(self, op: Any) -> Any:  # noqa: N802 (TVM's visitor names)
            call = super().visit_call_(op)
            if call.op.same_as(clip):
                x, lo, hi = call.args
                dtype = str(x.ty.dtype)
                low = self.builder_.emit(relax.op.maximum(x, relax.const(_prim(lo), dtype)))
                return relax.op.minimum(low, relax.const(_prim(hi), dtype))
            if call.op.same_as(squeeze) and call.attrs.axis is not None:
                ndim = call.args[0].ty.ndim
                axes = [int(a) for a in call.attrs.axis]
                if ndim >= 0 and any(a < 0 for a in axes):
                    return relax.op.squeeze(call.args[0], [a % ndim for a in axes])
            return call

    return mutate_functions(mod, _Rewrite)


def _prim(value: Any) -> float:
    v = getattr(value, "value", value)
    return float(getattr(v, "value", v))
