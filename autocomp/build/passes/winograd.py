"""The Winograd rewrite: which fp32 convs of a CPU build take the Winograd F(4x4, 3x3) kernel
(build/kernels/winograd.py), and the Relax rewrite that puts it in the graph.

Where the transformed weights come from is the device profile's ``winograd`` key (auto | stored |
off; see the kernel module's doc for what each costs). The two thresholds below were measured with
``scripts/bench_winograd.py`` (ResNet-18's four 3x3 shapes, each kernel alone, in the three modes).
"""

from __future__ import annotations

from typing import Any

from autocomp.build.kernels.winograd import TILE, WinogradConv, conv_func, weight_func
from autocomp.build.passes.relax_main import mutate_functions
from autocomp.device.features import f32_lanes
from autocomp.device.profiles import WINOGRAD_MODES

MIN_TILES_PER_CALL = 32  # `auto`: below this many output tiles the per-call weight transform does not pay
MIN_TILES_STORED = 8  # `stored`: below this, reading 4x the weight bytes costs more than the multiplies saved


def eligible(call: Any, lanes: int) -> WinogradConv | None:
    """The conv a relax.nn.conv2d call is, if Winograd takes it: fp32, NHWC / OHWI, 3x3, stride 1,
    no dilation, one group, static shapes, output channels a multiple of 4 (pruned counts such as 24 or
    40 take narrower vectors: AVX-512 then runs them on 8 lanes)."""
    attrs = call.attrs
    if str(attrs.data_layout) != "NHWC" or str(attrs.kernel_layout) != "OHWI" or str(attrs.out_layout) != "NHWC":
        return None
    if [int(s) for s in attrs.strides] != [1, 1] or [int(d) for d in attrs.dilation] != [1, 1] or int(attrs.groups) != 1:
        return None
    x, w = call.args
    try:
        xs = [int(d) for d in x.ty.shape.values]
        ws = [int(d) for d in w.ty.shape.values]
    except (AttributeError, TypeError):
        return None
    if str(x.ty.dtype) != "float32" or str(w.ty.dtype) != "float32" or str(call.ty.dtype) != "float32":
        return None
    if len(ws) != 4 or ws[1:3] != [3, 3] or ws[3] != xs[3]:
        return None
    co = ws[0]
    vf = next((v for v in (2 * lanes, lanes, lanes // 2, lanes // 4) if v >= 4 and co % v == 0), 0)
    if not vf:
        return None
    pad = tuple(int(p) for p in attrs.padding)
    pad = pad * 2 if len(pad) == 2 else pad
    return WinogradConv(xs[0], xs[1], xs[2], xs[3], co, pad, vf)  # type: ignore[arg-type]


def chosen(conv: WinogradConv, mode: str) -> str | None:
    """``stored`` / ``runtime`` (where U comes from) or None (direct template) for one conv."""
    if mode == "stored" and conv.tiles >= MIN_TILES_STORED:
        return "stored"
    if mode == "auto" and conv.tiles >= MIN_TILES_PER_CALL:
        return "runtime"
    return None


def rewrite(mod: Any, target: Any, mode: str) -> Any:
    """`mod` with its eligible fp32 conv2d calls replaced by Winograd kernels (see the module doc)."""
    import tvm
    from tvm import relax

    if mode not in WINOGRAD_MODES:
        raise ValueError(f"winograd mode must be one of {WINOGRAD_MODES}, got {mode!r}")
    if mode == "off":
        return mod
    conv2d = tvm.ir.Op.get("relax.nn.conv2d")
    lanes = f32_lanes(target)

    @relax.expr_functor.mutator
    class _Rewrite(relax.PyExprMutator):
        def visit_call_(self, op: Any) -> Any:  # noqa: N802 (TVM's visitor names)
            call = super().visit_call_(op)
            if not call.op.same_as(conv2d):
                return call
            conv = eligible(call, lanes)
            how = chosen(conv, mode) if conv is not None else None
            if how is None:
                return call
            stored = how == "stored"
            x, w = call.args
            wf = weight_func(conv, stored)
            wgv = self.builder_.add_func(wf, "winograd_weight_transform" if stored else "winograd_weight_pack")
            wshape = [int(d) for d in wf.params[1].shape]
            wt = self.builder_.emit(relax.call_tir(wgv, [w], relax.TensorType(wshape, "float32")))
            cgv = self.builder_.add_func(conv_func(conv, stored), f"winograd_f{TILE}_conv2d")
            oh, ow = conv.out_hw
            return relax.call_tir(cgv, [x, wt], relax.TensorType([conv.n, oh, ow, conv.co], "float32"))

    return mutate_functions(mod, _Rewrite)
