"""The dense conv template: tiles sized for the target's registers, one register vectorized at a time."""

import re

import numpy as np
import pytest
import torch
from torch import nn

from autocomp.build.compile import legalize
from autocomp.lower import lower
from autocomp.build.kernels.conv import find_conv
from autocomp.build.kernels.dense import pick_tile


@pytest.mark.parametrize("mcpu, lanes", [("znver4", 16), ("haswell", 8), ("x86-64", 4)])
def test_tile_follows_the_target_vector_width(digits_task, digits_ctx, host, mcpu, lanes):
    import tvm
    from tvm import s_tir

    fused = legalize(lower(digits_ctx.model, digits_task.example_input).mod, host.tvm_target())
    conv = next(f for gv, f in fused.functions_items() if "conv2d1" in gv.name_hint)
    info = find_conv(s_tir.Schedule(conv))
    vf, ty, tx = pick_tile(info, tvm.target.Target({"kind": "llvm", "mcpu": mcpu}))
    assert vf % min(lanes, info.o) == 0 and info.o % vf == 0
    assert info.h % ty == 0 and info.w % tx == 0


def test_multi_register_tiles_vectorize_one_register_at_a_time():
    """A tile of 3 AVX2 registers (24 channels) vectorizes 8 lanes 3 times: a 24-lane vector made LLVM
    emit code 5x slower (FashionNet's 48-channel convs on haswell). The result stays exact."""
    import tvm
    from tvm import s_tir

    from autocomp.build.kernels.dense import schedule_conv

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(8, 48, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, 8, 12, 12)
    target = tvm.target.Target({"kind": "llvm", "mcpu": "haswell"})
    fused = legalize(lower(net, x).mod, target)
    gv, conv = next((gv, f) for gv, f in fused.functions_items() if "conv2d" in gv.name_hint)
    assert pick_tile(find_conv(s_tir.Schedule(conv)), target)[0] == 24
    scheduled = schedule_conv(conv, target)
    widths = [int(w) for w in re.findall(r"T\.vectorized\((?:T\.int64\()?(\d+)", scheduled.script())]
    assert widths and max(widths) <= 8

    mod = tvm.IRModule({"main": scheduled.with_attr("global_symbol", "main")})
    lib = tvm.tirx.build(mod, target=target)
    args = [np.random.default_rng(i).standard_normal([int(d) for d in p.shape]).astype("float32") for i, p in enumerate(scheduled.params)]
    ref = [a.copy() for a in args]
    ref_lib = tvm.tirx.build(tvm.IRModule({"main": conv.with_attr("global_symbol", "main")}), target=target)
    out, ref_out = [tvm.runtime.tensor(a) for a in args], [tvm.runtime.tensor(a) for a in ref]
    lib["main"](*out)
    ref_lib["main"](*ref_out)
    assert np.allclose(out[-1].numpy(), ref_out[-1].numpy(), rtol=1e-5, atol=1e-5)


class Grouped(nn.Module):
    """RegNet's grouped convs (group width 16, strided and not) and a depthwise conv, which keeps its own template."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(32, 64, 3, stride=2, padding=1, groups=2)
        self.b = nn.Conv2d(64, 64, 3, padding=1, groups=4)
        self.dw = nn.Conv2d(64, 64, 3, padding=1, groups=64)

    def forward(self, x):
        return self.dw(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("int8", [False, True])
def test_grouped_convs_take_the_dense_template_and_agree(host, int8):
    from autocomp.build.compile import build
    from autocomp.compress.quantize import quantize
    from autocomp.measure.local import LocalSession
    from autocomp.plan import CompressionPlan
    from helpers import unscheduled_outputs

    torch.manual_seed(0)
    model, x = Grouped().eval(), torch.randn(1, 32, 18, 18)
    if int8:
        model = quantize(model, CompressionPlan.uniform(["a", "b", "dw"], 8, 8), torch.randn(8, 32, 18, 18))
    lowered = lower(model, x)
    built = build(lowered, host)
    convs = {k: v for k, v in built.kernels.items() if "conv2d" in k}
    assert sorted(convs.values()) == ["scheduled (default tile)"] * 2 + ["scheduled (depthwise template)"], convs
    got, want = LocalSession(built).run(x.numpy()), unscheduled_outputs(lowered, x.numpy())
    if int8:
        assert np.array_equal(got, want)
    else:
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
