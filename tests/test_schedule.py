"""The zero-tuning conv2d schedules: applied where they fit, and never change a result."""

import re
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from autocomp.build import build, legalize
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.runner import LocalSession
from autocomp.plan import CompressionPlan, LayerPlan
from autocomp.schedule import pick_tile, find_conv, schedule_module


def unscheduled_outputs(lowered, x):
    import tvm
    from tvm import relax

    ex = tvm.compile(lowered.mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x), *[tvm.runtime.tensor(p) for p in lowered.params])
    while not hasattr(out, "numpy"):
        out = out[0]
    return out.numpy()


@pytest.mark.parametrize("w_bits, a_bits", [(32, 32), (8, 8), (4, 8)])
def test_every_conv_is_scheduled_and_results_are_unchanged(digits_task, digits_ctx, host, w_bits, a_bits):
    plan = CompressionPlan.uniform(digits_ctx.layers, w_bits, a_bits)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    built = build(lowered, host)
    assert all(status.startswith("scheduled") for status in built.kernels.values())
    session = LocalSession(built)
    for x in digits_task.eval_inputs[:8]:
        x = x[None].numpy()
        got, want = session.run(x), unscheduled_outputs(lowered, x)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5)


class OddShapes(nn.Module):
    """Channel counts that are multiples of 8 but not 16, stride 2, 1x1, a non-square input, depthwise."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 24, 3, stride=2, padding=1)
        self.b = nn.Conv2d(24, 40, 1)
        self.dw = nn.Conv2d(40, 40, 3, padding=1, groups=40)
        self.c = nn.Conv2d(40, 8, 3, padding=1)

    def forward(self, x):
        return self.c(torch.relu(self.dw(torch.relu(self.b(torch.relu(self.a(x)))))))


def test_odd_shapes_schedule_or_fall_back_and_stay_correct(host):
    torch.manual_seed(0)
    model, x = OddShapes().eval(), torch.randn(1, 3, 30, 22)
    lowered = lower(model, x)
    built = build(lowered, host)
    statuses = list(built.kernels.values())
    assert statuses.count("scheduled (default tile)") == 3
    assert statuses.count("scheduled (depthwise template)") == 1
    got = LocalSession(built).run(x.numpy())
    assert np.allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)


class Separable(nn.Module):
    """Depthwise convs at stride 1 and 2, odd widths, and a grouped (not depthwise) conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.dw1 = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.dw2 = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
        self.g = nn.Conv2d(16, 16, 3, padding=1, groups=4)

    def forward(self, x):
        return self.g(torch.relu(self.dw2(torch.relu(self.dw1(torch.relu(self.a(x)))))))


@pytest.mark.parametrize("int8", [False, True])
def test_depthwise_convs_get_their_template_and_stay_correct(host, int8):
    torch.manual_seed(0)
    model, x = Separable().eval(), torch.randn(1, 3, 23, 19)
    if int8:
        from autocomp.compress.quantize import quantize

        names = ["a", "dw1", "dw2", "g"]
        model = quantize(model, CompressionPlan(tuple(LayerPlan(n, 8, 8) for n in names)), torch.rand(8, 3, 23, 19))
    built = build(lower(model, x), host)
    statuses = list(built.kernels.values())
    assert statuses.count("scheduled (depthwise template)") == 2, statuses
    assert any("grouped" in s for s in statuses)  # groups=4 keeps TVM's default schedule
    with torch.no_grad():
        want = model(x).numpy()
    assert np.allclose(LocalSession(built).run(x.numpy()), want, rtol=1e-4, atol=1e-4)


def test_schedule_module_leaves_its_input_untouched(digits_task, digits_ctx, host):
    fused = legalize(lower(digits_ctx.model, digits_task.example_input).mod, host.tvm_target())
    before = fused.script()
    scheduled, report = schedule_module(fused, host.tvm_target())
    assert fused.script() == before and scheduled.script() != before
    assert {v for k, v in report.items() if "conv2d" in k} == {"scheduled (default tile)"}
    assert {v for k, v in report.items() if "conv2d" not in k} <= {"scheduled (matmul template)",
                                                                   "scheduled (elementwise template)"}


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


def test_vnni_is_used_exactly_where_the_cpu_has_it(digits_task, digits_ctx, host):
    """uint8 x int8 convs with C % 4 == 0 and O % 16 == 0 use vpdpbusd on AVX-512 VNNI CPUs, bit-exact;
    other CPUs (and the int8-input first layer) keep the generic template."""
    import tvm

    from autocomp import hostcpu
    from autocomp.profiles import DeviceProfile
    from autocomp.schedule_vnni import has_vnni

    assert has_vnni(tvm.target.Target({"kind": "llvm", "mcpu": "znver4"}))
    assert not has_vnni(tvm.target.Target({"kind": "llvm", "mcpu": "haswell"}))
    assert not has_vnni(tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76"}))

    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)

    def with_cpu(mcpu):
        return DeviceProfile("t", "", "cpu", "local", {"kind": "llvm", "mcpu": mcpu, "num-cores": 2})

    kernels = build(lowered, with_cpu("znver4")).kernels
    first = next(v for k, v in kernels.items() if k.startswith("fused_conv2d_"))
    second = next(v for k, v in kernels.items() if k.startswith("fused_conv2d1_"))
    assert first == "scheduled (default tile)"  # int8 input (signed): not for vpdpbusd
    assert second == "scheduled (VNNI dot product)"
    assert "VNNI" not in " ".join(build(lowered, with_cpu("haswell")).kernels.values())

    host_built = build(lowered, host)
    uses_vnni = "scheduled (VNNI dot product)" in host_built.kernels.values()
    assert uses_vnni == ("avx512_vnni" in hostcpu.detect().features)
    session = LocalSession(host_built)
    for x in digits_task.eval_inputs[:16]:
        x = x[None].numpy()
        assert np.array_equal(session.run(x), unscheduled_outputs(lowered, x))


@pytest.mark.parametrize("mcpu, cpu_flag", [("haswell", "avx2"), ("skylake-avx512", "avx512bw")])
def test_x86_without_vnni_uses_the_exact_int16_pair_dot(digits_task, digits_ctx, mcpu, cpu_flag, tmp_path):
    """AVX2 / AVX-512BW CPUs without VNNI run int8 convs on vpmaddwd (int8 widened to int16, pairs of
    channels summed into int32 lanes), bit-exact; the int8-input first layer (1 channel) cannot pair."""
    from autocomp import hostcpu
    from autocomp.profiles import DeviceProfile

    if cpu_flag not in hostcpu.detect().features:
        pytest.skip(f"this CPU cannot run {mcpu} code (no {cpu_flag})")
    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    built = build(lowered, DeviceProfile("t", "", "cpu", "local", {"kind": "llvm", "mcpu": mcpu, "num-cores": 2}))
    second = next(v for k, v in built.kernels.items() if k.startswith("fused_conv2d1_"))
    assert second == "scheduled (int16 pair dot product (vpmaddwd))"
    assert next(v for k, v in built.kernels.items() if k.startswith("fused_conv2d_")) == "scheduled (default tile)"
    built.executable.export_library(str(tmp_path / "lib.so"))
    asm = subprocess.run(["objdump", "-d", str(tmp_path / "lib.so")], capture_output=True, text=True).stdout
    assert sum("vpmaddwd" in ln for ln in asm.splitlines()) > 10
    session = LocalSession(built)
    for x in digits_task.eval_inputs[:16]:
        x = x[None].numpy()
        assert np.array_equal(session.run(x), unscheduled_outputs(lowered, x))


def test_multi_register_tiles_vectorize_one_register_at_a_time():
    """A tile of 3 AVX2 registers (24 channels) vectorizes 8 lanes 3 times: a 24-lane vector made LLVM
    emit code 5x slower (FashionNet's 48-channel convs on haswell). The result stays exact."""
    import tvm
    from tvm import s_tir

    from autocomp.schedule import schedule_conv

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
