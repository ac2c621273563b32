"""llvm-mca estimates of the ARM kernels' hot loops: real cross-compiled libraries, real llvm-mca-19."""

import pytest

from autocomp.build.compile import export_library
from autocomp.candidate import Context
from autocomp.device.profiles import load_profile
from autocomp.measure import mca
from autocomp.plan import CompressionPlan

OBJDUMP = """
0000000000001000 <k_compute_>:
    1000:\tmov\tx1, #0x0
    1004:\tldr\tq0, [x2], #16
    1008:\tfmla\tv1.4s, v0.4s, v2.4s
    100c:\tfmla\tv3.4s, v0.4s, v2.s[1]
    1010:\tsubs\tx1, x1, #0x1
    1014:\tb.ne\t1004 <k_compute_+0x4>  // b.any
    1018:\tsdot\tv4.4s, v5.16b, v6.16b
    101c:\tsmlal\tv7.8h, v8.8b, v9.8b
    1020:\tcbnz\tx3, 1000 <k_compute_>
    1024:\tret
"""


def test_the_innermost_loop_and_its_mac_lanes_are_read_from_the_listing():
    code = mca.parse_objdump(OBJDUMP)["k_compute_"]
    loops = mca.innermost_loops("k_compute_", code)
    assert [len(loop.body) for loop in loops] == [5]  # 1004..1014; the outer loop (1000..1020) contains it
    loop = mca.hot_loop("k_compute_", code)
    assert loop is not None and loop.mac_lanes == 8  # two fmla .4s (by vector and by element)
    assert "b.ne" not in loop.asm() and loop.asm().count("fmla") == 2
    lanes = {i.mnemonic: i.mac_lanes() for i in code}
    assert lanes["sdot"] == 16 and lanes["smlal"] == 8 and lanes["ldr"] == 0


def test_annotated_address_operands_reach_llvm_mca_as_immediates():
    """objdump writes `adrp x8, 7f000 <__FRAME_END__+0x16b10>`; llvm-mca rejects the annotation (a
    MobileNet int8 kernel's loop failed on it), so it becomes `#0x7f000`; branches keep their target."""
    listing = ("0000000000001000 <k_compute_>:\n"
               "    1000:\tadrp\tx8, 7f000 <__FRAME_END__+0x16b10>\n"
               "    1004:\tfmla\tv1.4s, v0.4s, v2.4s\n"
               "    1008:\tb.ne\t1000 <k_compute_>  // b.any\n")
    code = mca.parse_objdump(listing)["k_compute_"]
    assert code[0].text == "adrp x8, #0x7f000" and code[2].branch_target() == 0x1000
    loop = mca.hot_loop("k_compute_", code)
    assert mca.run_mca(loop.asm(), "cortex-a72", loop.mac_lanes).cycles_per_iteration > 0


def test_the_model_sum_skips_uncalled_kernels_and_refuses_uncountable_ones():
    loop = mca.hot_loop("k_compute_", mca.parse_objdump(OBJDUMP)["k_compute_"])
    result = mca.McaResult(cycles_per_iteration=2.0, block_rthroughput=2.0, mac_lanes=loop.mac_lanes)
    called = mca.KernelEstimate("k", loop, result, macs=80.0, calls=3)  # 80 / 8 lanes x 2 cycles = 20 a call
    uncalled = mca.KernelEstimate("dead", loop, None, macs=float("nan"), calls=0, error="unreadable")
    assert mca.model_ms([called, uncalled], clock_hz=1e3) == pytest.approx(60.0)  # 60 cycles at 1 kHz
    with pytest.raises(RuntimeError, match="no llvm-mca estimate for kernel dead: unreadable"):
        mca.model_ms([called, mca.KernelEstimate("dead", loop, None, float("nan"), 1, "unreadable")], 1e3)


def test_the_peaks_are_the_models_own():
    assert mca.available() is None, mca.available()
    assert mca.peak("cortex-a72", "fp32 fmla .4s", 16) == pytest.approx(4.0, rel=0.02)  # one Q-form FMLA a cycle
    assert mca.peak("neoverse-n1", "fp32 fmla .4s", 16) == pytest.approx(8.0, rel=0.02)  # two FP pipes
    assert mca.peak("neoverse-n1", "int8 sdot .4s", 16) == pytest.approx(32.0, rel=0.02)
    with pytest.raises(RuntimeError, match="dotprod"):
        mca.peak("cortex-a72", "int8 sdot .4s")  # the A72 has no SDOT


@pytest.mark.parametrize("device,bits,mcpu,instruction", [("rpi4", 32, "cortex-a72", "fmla"),
                                                          ("rpi5", 8, "neoverse-n1", "sdot")])
def test_a_compiled_conv_kernels_hot_loop_is_estimated_below_the_peak(digits_task, digits_ctx, tmp_path, device, bits,
                                                                      mcpu, instruction):
    profile = load_profile(device)
    ctx = Context(digits_task, profile, digits_ctx.model, digits_ctx.layers, digits_ctx.protected, digits_ctx.prunable, {})
    built = ctx.build(ctx.lower(ctx.compress(CompressionPlan.uniform(digits_ctx.layers, bits, bits))))
    funcs = mca.functions(export_library(built, profile, tmp_path))
    convs = {n: mca.hot_loop(n, code) for n, code in funcs.items() if "conv2d" in n and n.endswith("_compute_")}
    loops = [loop for loop in convs.values() if loop is not None and instruction in loop.asm()]
    assert loops, sorted(convs)
    peak = mca.peak(mcpu, "fp32 fmla .4s" if bits == 32 else "int8 sdot .4s", 16)
    for loop in loops:
        r = mca.run_mca(loop.asm(), mcpu, loop.mac_lanes)
        assert r.cycles_per_iteration >= r.block_rthroughput * 0.99  # steady state: not faster than issue allows
        assert 0 < r.macs_per_cycle <= peak * 1.01
