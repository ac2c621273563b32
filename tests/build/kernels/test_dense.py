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
