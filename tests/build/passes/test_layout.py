"""Channels-last CPU builds: every conv NHWC, transposes only at the graph's edges, results unchanged."""

import numpy as np
import pytest
import tvm
from tvm import s_tir, tirx

from autocomp.build.compile import build, legalize
from autocomp.compress import compress
from autocomp.build.passes.layout import channels_last
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from autocomp.build.passes.precompute import fold
from autocomp.build.kernels.conv import find_conv
from autocomp.build.kernels.driver import schedule_module

from helpers import unscheduled_outputs


def _int8_lowered(task, ctx):
    plan = CompressionPlan.uniform(ctx.layers, 8, 8)
    model = compress(ctx.model, plan, task.example_input, task.calib_data, ctx.protected)
    return lower(model, task.example_input)


def _main_kernels(mod) -> list[str]:
    call_tir = tvm.ir.Op.get("relax.call_tir")
    return [b.value.args[0].name_hint for blk in mod["main"].body.blocks for b in blk.bindings
            if getattr(b.value, "op", None) is not None and b.value.op.same_as(call_tir)]


def test_every_conv_is_channels_last_and_activations_are_transposed_only_at_the_edges(digits_task, digits_ctx, host):
    lowered = _int8_lowered(digits_task, digits_ctx)
    converted = channels_last(lowered.mod)
    assert "R.clip" not in converted.script()  # TVM 0.27's clip has no layout inference: rewritten first
    fused, _, folded = fold(legalize(converted, host.tvm_target()), lowered.params)
    assert any("transpose" in name for name in folded)  # OIHW -> OHWI weight transposes run at build time
    convs = [f for gv, f in fused.functions_items() if "conv2d" in gv.name_hint and isinstance(f, tirx.PrimFunc)]
    assert len(convs) == len(digits_ctx.layers) - 1  # every conv, not the classifier
    assert {find_conv(s_tir.Schedule(f)).layout for f in convs} == {"NHWC"}
    # the image goes channels-last once on the way in and the pooled features back once on the way out
    assert sum("transpose" in name for name in _main_kernels(fused)) == 2


def test_channels_last_int8_build_is_bit_exact_with_the_nchw_graph(digits_task, digits_ctx, host):
    lowered = _int8_lowered(digits_task, digits_ctx)
    session = LocalSession(build(lowered, host))
    for x in digits_task.eval_inputs[:16]:
        x = x[None].numpy()
        assert np.array_equal(session.run(x), unscheduled_outputs(lowered, x))


def _run_kernel(func, args, target):
    lib = tvm.tirx.build(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=target)
    tensors = [tvm.runtime.tensor(a.copy()) for a in args]
    lib["main"](*tensors)
    return tensors[-1].numpy()


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("bits", [32, 8])
def test_conv_templates_take_either_layout_and_keep_every_kernel_result(digits_task, digits_ctx, host, layout, bits):
    """Kernel by kernel (weights repacked in-kernel), on random inputs: the templates are exact on
    both layouts, so a graph ConvertLayout leaves NCHW still compiles to the same numbers."""
    plan = CompressionPlan.uniform(digits_ctx.layers, bits, bits)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    mod = lower(model, digits_task.example_input).mod
    target = host.tvm_target()
    fused = legalize(channels_last(mod) if layout == "NHWC" else mod, target)
    scheduled, report = schedule_module(fused, target)
    checked = 0
    for gv, func in fused.functions_items():
        if "conv2d" not in gv.name_hint or not isinstance(func, tirx.PrimFunc):
            continue
        assert report[gv.name_hint].startswith("scheduled"), report[gv.name_hint]
        assert find_conv(s_tir.Schedule(func)).layout == layout
        rng = np.random.default_rng(checked)
        args = []
        for p in func.params:
            shape, dtype = [int(d) for d in p.shape], str(p.dtype)
            if "int" in dtype:
                info = np.iinfo(dtype)
                args.append(rng.integers(max(info.min, -100), min(info.max, 100), size=shape).astype(dtype))
            else:
                args.append((rng.standard_normal(shape) * 0.01).astype(dtype))
        got = _run_kernel(scheduled[gv.name_hint], args, target)
        want = _run_kernel(func, args, target)
        if bits == 8:
            assert np.array_equal(got, want), gv.name_hint
        else:
            assert np.allclose(got, want, rtol=1e-5, atol=1e-5), gv.name_hint
        checked += 1
    assert checked == len(digits_ctx.layers) - 1


def test_negative_squeeze_axes_survive_the_layout_pass(host):
    """TVM 0.27's squeeze layout inference indexes a string with the axis as given: axis=-2 (what the
    torch importer emits inside nn.MultiheadAttention) wrote out of bounds and ended in std::bad_alloc."""
    import torch
    from torch import nn

    class Squeezes(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x).unsqueeze(-2).squeeze(-2) * 2.0

    x = torch.randn(1, 3, 4)
    lowered = lower(Squeezes().eval(), x)
    assert "axis=[-2]" in lowered.mod.script()
    converted = channels_last(lowered.mod)
    assert "axis=[2]" in converted.script()
    assert np.allclose(LocalSession(build(lowered, host)).run(x.numpy()), x.relu().numpy() * 2.0)
