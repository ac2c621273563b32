"""4-bit conv weights unpacked inside their conv kernel (passes/packed_int4.py, kernels/dot.py)."""

import re

import numpy as np
import pytest

from autocomp.build.compile import build
from autocomp.build.passes.packed_int4 import nibble_pack
from autocomp.build.passes.prepack import Packing
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from helpers import unscheduled_outputs


def test_nibble_pack_puts_lane_j_and_lane_j_plus_half_in_one_byte():
    rng = np.random.default_rng(0)
    w = rng.integers(-8, 8, size=(32, 3, 3, 8), dtype=np.int8)  # OHWI
    packed = nibble_pack(w, 16, 4, ohwi=True)
    assert packed.shape == (2, 2, 3, 3, 32) and packed.dtype == np.uint8 and packed.nbytes == w.nbytes // 2
    lanes = Packing(0, "dot", 16, 4, True).pack(w).reshape(2, 2, 3, 3, 64)
    assert np.array_equal((packed & 15).astype(np.int16) - 8, lanes[..., :32])
    assert np.array_equal((packed >> 4).astype(np.int16) - 8, lanes[..., 32:])


@pytest.mark.parametrize("mcpu, cpu_flag, how", [
    ("znver4", "avx512_vnni", "VNNI dot product"),
    ("haswell", "avx2", "u8 x s8 pair sums (vpmaddubsw + vpmaddwd)"),
])
def test_w4_convs_unpack_their_weights_in_the_kernel_exactly(digits_task, digits_ctx, mcpu, cpu_flag, how):
    """w4a8: every conv the dot template takes reads its weights two per byte and unpacks them itself
    (no unpack kernel of its own), the stored bytes do not grow, and the outputs are TVM's default
    build's, bit for bit."""
    from autocomp.device import hostcpu
    from autocomp.device.profiles import DeviceProfile

    if cpu_flag not in hostcpu.detect().features:
        pytest.skip(f"this CPU cannot run {mcpu} code (no {cpu_flag})")
    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input, unsigned_dot=cpu_flag == "avx512_vnni")
    built = build(lowered, DeviceProfile("t", "", "cpu", "local", {"kind": "llvm", "mcpu": mcpu, "num-cores": 2}))
    in_kernel = {k: v for k, v in built.kernels.items() if "_int4_" in k}
    assert in_kernel and set(in_kernel.values()) == {f"scheduled ({how})"}, built.kernels
    # digits: the 1-channel first conv (no dot product) and the classifier keep their unpack kernels
    assert sum("floor_divide" in k for k in built.kernels) == len(digits_ctx.layers) - len(in_kernel) == 2
    assert built.param_bytes <= sum(p.nbytes for p in lowered.params) + built.const_bytes
    session = LocalSession(built)
    for x in digits_task.eval_inputs[:16]:
        x = x[None].numpy()
        assert np.array_equal(session.run(x), unscheduled_outputs(lowered, x))


def test_the_unpack_kernel_stays_where_no_dot_template_takes_the_conv(digits_task, digits_ctx):
    """A target without a dot product (plain x86-64) keeps the per-call unpack kernel: still exact."""
    from autocomp.device.profiles import DeviceProfile

    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    built = build(lowered, DeviceProfile("t", "", "cpu", "local", {"kind": "llvm", "mcpu": "x86-64", "num-cores": 2}))
    assert not any("_int4_" in k for k in built.kernels)
    x = digits_task.eval_inputs[:1].numpy()
    assert np.array_equal(LocalSession(built).run(x), unscheduled_outputs(lowered, x))


def test_2_bit_and_shared_weights_unpack_in_the_kernel_exactly(digits_task):
    """Uniform 2-bit weights and shared weights (codebook indices, compress/codebook.py) are packed at
    their own width for the dot template, a codebook looked up inside the kernel: no unpack or lookup
    kernel of their own for those convs, no more bytes stored, and TVM's default build's outputs. One
    model, one build: a conv each for k2, w2 and k4, and shared stem / classifier looked up per call."""
    import torch

    from autocomp.device import hostcpu
    from autocomp.device.profiles import DeviceProfile
    from autocomp.plan import LayerPlan

    if "avx512_vnni" not in hostcpu.detect().features:
        pytest.skip("this CPU cannot run znver4 code (no avx512_vnni)")
    torch.manual_seed(0)
    conv = lambda i, o: torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.ReLU())  # noqa: E731
    net = torch.nn.Sequential(conv(1, 16), conv(16, 32), conv(32, 32), conv(32, 32), torch.nn.Flatten(),
                              torch.nn.Linear(32 * 64, 10)).eval()
    kinds = {"0.0": (4, True), "1.0": (2, True), "2.0": (2, False), "3.0": (4, True), "5": (4, True)}
    plan = CompressionPlan(tuple(LayerPlan(n, w, 8, 0.0, shared) for n, (w, shared) in kinds.items()))
    model = compress(net, plan, digits_task.example_input, digits_task.calib_data, ("5",))
    lowered = lower(model, digits_task.example_input, unsigned_dot=True)
    built = build(lowered, DeviceProfile("t", "", "cpu", "local", {"kind": "llvm", "mcpu": "znver4", "num-cores": 2}))
    in_kernel = sorted(m.group(0) for m in (re.search(r"_int\d_16x4(_cb\w+)?$", k) for k in built.kernels) if m)
    assert [k.split("_cb")[0] for k in in_kernel] == ["_int2_16x4", "_int2_16x4", "_int4_16x4"], built.kernels
    assert sum("_cb" in k for k in in_kernel) == 2  # the shared ones: a kernel per codebook, its values constants
    assert {built.kernels[k] for k in built.kernels if "_int2_" in k or "_int4_" in k} == {"scheduled (VNNI dot product)"}
    assert sum("gather" in k for k in built.kernels) == 2  # stem and classifier: looked up per call
    assert built.param_bytes <= sum(p.nbytes for p in lowered.params) + built.const_bytes
    session = LocalSession(built)
    for x in digits_task.eval_inputs[:16]:
        x = x[None].numpy()
        assert np.array_equal(session.run(x), unscheduled_outputs(lowered, x))


def test_index_pack_puts_four_2_bit_lanes_in_one_byte():
    from autocomp.build.passes.packed_int4 import index_pack

    rng = np.random.default_rng(0)
    idx = rng.integers(0, 4, size=(32, 3, 3, 8))  # OHWI
    packed = index_pack(idx, 16, 4, ohwi=True, bits=2)
    assert packed.shape == (2, 2, 3, 3, 16) and packed.nbytes == idx.size // 4
    lanes = Packing(0, "dot", 16, 4, True).pack(idx).reshape(2, 2, 3, 3, 64)
    for m in range(4):
        assert np.array_equal((packed >> (2 * m)) & 3, lanes[..., 16 * m: 16 * (m + 1)])
