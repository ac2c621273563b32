"""1-D convolutions as 2-D ones of height 1, so that the conv templates (fp32 and int8) schedule them.

autocomp's templates (build/kernels/) match conv2d blocks; a conv1d would fall to TVM's default schedule
(about 16x slower than onnxruntime on the keyword-spotting net). Rewriting each conv1d alone as
squeeze(conv2d(expand_dims(x))) is not enough: TVM fuses a conv only with the elementwise ops right after
it, so the squeeze would cut the conv off from its epilogue (bias, ReLU, the next layer's requantize),
leave an int32 tensor in memory and add two copies per layer. So each squeeze is sunk past the
elementwise ops that follow it (their other operands given the unit axis too) until it meets the next
layer's expand_dims, and the pair cancels: a chain of 1-D layers runs in 4-D end to end, and only the
chain's two ends change rank. Integer 1-D layers already reach here as conv2d (QuantizedLayer unsqueezes
around `autocomp::qconv2d`), with the same squeeze / expand_dims pairs between them.
"""

from __future__ import annotations

from typing import Any

from autocomp.build.passes.relax_main import mutate_functions

UNIT_AXIS = 2  # NCW -> NC1W: the height axis of NCHW
ELEMENTWISE = frozenset(f"relax.{op}" for op in (
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "power",
    "nn.relu", "nn.gelu", "nn.gelu_tanh", "nn.silu", "nn.leakyrelu", "sigmoid", "tanh", "clip", "astype",
    "round", "floor", "ceil", "negative", "abs", "exp", "sqrt", "rsqrt"))


def conv1d_as_conv2d(mod: Any) -> Any:
    """`mod` with every NCW conv1d of its Relax functions computed by a conv2d of height 1."""
    import tvm
    from tvm import relax

    conv1d = tvm.ir.Op.get("relax.nn.conv1d")
    squeeze, expand = tvm.ir.Op.get("relax.squeeze"), tvm.ir.Op.get("relax.expand_dims")

    @relax.expr_functor.mutator
    class _Rewrite(relax.PyExprMutator):
        def squeezed(self, expr: Any) -> Any:
            """The 4-D tensor `expr` is the unit-axis squeeze of, or None."""
            call = self.lookup_binding(expr) if isinstance(expr, relax.Var) else expr
            if isinstance(call, relax.Call) and call.op.same_as(squeeze) and call.attrs.axis is not None:
                src = call.args[0]
                if _ndim(src) == 4 and [int(a) % 4 for a in call.attrs.axis] == [UNIT_AXIS]:
                    return src
            return None

        def with_unit_axis(self, expr: Any) -> Any:
            """A 3-D-broadcastable operand made 4-D-broadcastable against NC1W; None if it cannot be."""
            ndim = _ndim(expr)
            if ndim == 0:
                return expr
            if ndim < 0 or ndim > 3:
                return None
            if ndim < 3:
                shape = [int(d) for d in expr.ty.shape]  # rank-1/2 operands broadcast from the right
                expr = self.builder_.emit(relax.op.reshape(expr, [1] * (3 - ndim) + shape))
            return self.builder_.emit(relax.op.expand_dims(expr, [UNIT_AXIS]))

        def visit_call_(self, op: Any) -> Any:  # noqa: N802 (TVM's visitor names)
            call = super().visit_call_(op)
            if call.op.same_as(conv1d):
                return self.rewrite_conv1d(call)
            if call.op.same_as(expand) and _ndim(call.args[0]) == 3 and call.attrs.axis is not None \
                    and [int(a) % 4 for a in call.attrs.axis] == [UNIT_AXIS]:
                src = self.squeezed(call.args[0])
                if src is not None:
                    return src
            if isinstance(call.op, tvm.ir.Op) and call.op.name in ELEMENTWISE and _ndim(call) == 3:
                return self.sink(call)
            return call

        def rewrite_conv1d(self, call: Any) -> Any:
            a = call.attrs
            if (a.data_layout, a.kernel_layout, a.out_layout) != ("NCW", "OIW", "NCW"):
                return call
            x, w = call.args
            x4 = self.squeezed(x)
            if x4 is None:
                x4 = self.builder_.emit(relax.op.expand_dims(x, [UNIT_AXIS]))
            w4 = self.builder_.emit(relax.op.expand_dims(w, [UNIT_AXIS]))
            left, right = (int(p) for p in a.padding)
            y = self.builder_.emit(relax.op.nn.conv2d(
                x4, w4, strides=[1, int(a.strides[0])], padding=[0, left, 0, right],
                dilation=[1, int(a.dilation[0])], groups=int(a.groups), out_dtype=str(a.out_dtype) or None))
            return relax.op.squeeze(y, [UNIT_AXIS])

        def sink(self, call: Any) -> Any:
            """elementwise(squeeze(a), b) -> squeeze(elementwise(a, b')) when some operand is squeezed."""
            tensors = [arg for arg in call.args if isinstance(arg.ty, relax.TensorType)]
            if not any(self.squeezed(t) is not None for t in tensors):
                return call
            args = []
            for arg in call.args:
                if not isinstance(arg.ty, relax.TensorType):
                    args.append(arg)
                    continue
                four = self.squeezed(arg)
                if four is None:
                    four = self.with_unit_axis(arg)
                if four is None:
                    return call
                args.append(four)
            inner = self.builder_.emit(relax.Call(call.op, args, call.attrs, call.ty_args))
            return relax.op.squeeze(inner, [UNIT_AXIS])

    return relax.transform.DeadCodeElimination(["main"])(mutate_functions(mod, _Rewrite))


def _ndim(expr: Any) -> int:
    ty = getattr(expr, "ty", None)
    return int(getattr(ty, "ndim", -1)) if ty is not None else -1
