"""Softmax, GELU, SiLU, sigmoid, exp, erf and tanh through TVM's vectorizable approximations on CPU targets.

Why: TVM lowers `exp`, `erf` and `tanh` to libm calls, one scalar call per element, so LLVM cannot
vectorize the loops around them. On DeiT-tiny that made attention's softmax and the MLP's GELU the two
most expensive kernels after the matmul templates (9.3 and 8.7 ms of 51 ms). TVM's fast variants
(topi.fast_exp: a polynomial with range reduction; topi.fast_erf: Eigen's rational approximation) are
plain arithmetic that vectorizes; their error is at float32 rounding level (tested in
tests/build/passes/test_fast_math.py against PyTorch), far inside the agreement tolerance, and
onnxruntime uses approximations of the same kind. TVM's own FastMathTransform misses `nn.gelu`, which
is where the erf is, so this pass writes GELU out around fast_erf itself.
"""

from __future__ import annotations

import math
from typing import Any

from autocomp.build.passes.relax_main import mutate_functions


def fast_math(mod: Any) -> Any:
    """`mod` with softmax, gelu, silu, sigmoid, exp, erf and tanh of float32 tensors computed by TVM's fast kernels."""
    from tvm import relax, topi

    def gelu(x: Any) -> Any:
        return x * (0.5 + 0.5 * topi.fast_erf(x * (1.0 / math.sqrt(2.0))))

    def sigmoid(x: Any) -> Any:
        return 1.0 / (1.0 + topi.fast_exp(-x))

    def silu(x: Any) -> Any:
        return x * sigmoid(x)

    @relax.expr_functor.mutator
    class _Rewrite(relax.PyExprMutator):
        def visit_call_(self, op: Any) -> Any:  # noqa: N802 (TVM's visitor names)
            call = super().visit_call_(op)
            name = getattr(call.op, "name", "")
            if not call.args or getattr(call.args[0].ty, "dtype", "") != "float32":
                return call
            x = call.args[0]
            if name == "relax.nn.softmax":
                return self.builder_.call_te(topi.nn.fast_softmax, x, int(call.attrs.axis))
            if name == "relax.nn.gelu":
                return self.builder_.call_te(gelu, x)
            if name in ("relax.sigmoid", "relax.nn.silu"):  # EfficientNet's SiLU and squeeze-excitation gates
                return self.builder_.call_te(sigmoid if name == "relax.sigmoid" else silu, x)
            if name in ("relax.exp", "relax.erf", "relax.tanh"):
                return self.builder_.call_te(getattr(topi, f"fast_{name.split('.')[-1]}"), x)
            return call

    return mutate_functions(mod, _Rewrite)
