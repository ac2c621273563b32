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


def test_u8_x_s8_pair_sums_are_exact_up_to_the_weight_bound_they_require():
    """vpmaddubsw + vpmaddwd (AVX2, weights the kernel unpacks itself) equals an exact int32 sum at its
    worst case, data 255 and weights +-64; one step past the bound a pair saturates at 2^15, which is why
    the template asks the unpacking block for its bound (and why this test can fail)."""
    import tvm
    from tvm import s_tir, te

    from autocomp.build.kernels.intrin.pmaddubsw import MAX_ABS_WEIGHT, register
    from autocomp.device import hostcpu

    if "avx2" not in hostcpu.detect().features:
        pytest.skip("this CPU cannot run AVX2 code")
    a = te.placeholder((4, 4), "uint8", name="a")
    b = te.placeholder((8, 4), "int8", name="b")
    k = te.reduce_axis((0, 4), name="k")
    c = te.compute((4, 8), lambda n, i: te.sum(a[n, k].astype("int32") * b[i, k].astype("int32"), axis=k), name="c")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    blk = sch.get_sblock("c")
    sch.reverse_compute_at(sch.cache_write(blk, 0, "local"), sch.get_loops(blk)[0])
    sch.decompose_reduction(blk, sch.get_loops(blk)[1])
    sch.tensorize(sch.get_loops(blk)[1], register())
    f = tvm.compile(sch.mod, target=tvm.target.Target({"kind": "llvm", "mcpu": "haswell"}))
    rng = np.random.default_rng(0)
    for w, exact in ((-MAX_ABS_WEIGHT, True), (MAX_ABS_WEIGHT, True), (None, True), (-MAX_ABS_WEIGHT - 1, False)):
        x = np.full((4, 4), 255, np.uint8)
        x[1:] = rng.integers(0, 256, (3, 4))
        wt = rng.integers(-MAX_ABS_WEIGHT, MAX_ABS_WEIGHT + 1, (8, 4)).astype(np.int8) if w is None \
            else np.full((8, 4), w, np.int8)
        out = tvm.runtime.tensor(np.zeros((4, 8), np.int32))
        f(tvm.runtime.tensor(x), tvm.runtime.tensor(wt), out)
        assert np.array_equal(out.numpy(), x.astype(np.int64) @ wt.T.astype(np.int64)) == exact, w


def test_small_weight_dot_is_taken_only_with_a_stated_bound_within_its_own():
    """The u8 x s8 kind applies to a conv only when its weights are known to be within +-64 (sub-byte
    weights, or a codebook that small); plain int8 weights, or a codebook past 64, keep vpmaddwd."""
    import tvm
    from tvm import te

    from autocomp.build.kernels.dot import PAIR_AVX2, U8S8_AVX2, applicable_kind

    data = te.placeholder((1, 6, 6, 8), "uint8", name="data")
    weight = te.placeholder((16, 3, 3, 8), "int8", name="weight")
    ry, rx, rc = (te.reduce_axis((0, n), name=s) for n, s in ((3, "ry"), (3, "rx"), (8, "rc")))
    conv = te.compute((1, 4, 4, 16), lambda n, y, x, f: te.sum(
        data[n, y + ry, x + rx, rc].astype("int32") * weight[f, ry, rx, rc].astype("int32"), axis=[ry, rx, rc]),
        name="conv2d_nhwc")
    func = te.create_prim_func([data, weight, conv])
    haswell = tvm.target.Target({"kind": "llvm", "mcpu": "haswell"})
    assert applicable_kind(func, haswell) is PAIR_AVX2
    assert applicable_kind(func, haswell, max_abs=8) is U8S8_AVX2
    assert applicable_kind(func, haswell, max_abs=64) is U8S8_AVX2
    assert applicable_kind(func, haswell, max_abs=65) is PAIR_AVX2
