"""The dot-product conv template: VNNI exactly where the CPU has it, the exact int16 pair dot elsewhere on x86."""

import subprocess

import numpy as np
import pytest

from autocomp.build.compile import build
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from helpers import unscheduled_outputs


def test_vnni_is_used_exactly_where_the_cpu_has_it(digits_task, digits_ctx, host):
    """uint8 x int8 convs with C % 4 == 0 and O % 16 == 0 use vpdpbusd on AVX-512 VNNI CPUs, bit-exact;
    other CPUs (and the int8-input first layer) keep the generic template."""
    import tvm

    from autocomp.device import hostcpu
    from autocomp.device.profiles import DeviceProfile
    from autocomp.device.features import has_vnni

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
    from autocomp.device import hostcpu
    from autocomp.device.profiles import DeviceProfile

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
