"""Winograd F(4x4, 3x3) for fp32 3x3 convs: same results as torch, the weight bytes each mode promises,
and only the convs it is meant for."""

import dataclasses

import numpy as np
import pytest
import torch
from tvm import relax

from autocomp import winograd
from autocomp.build import build
from autocomp.lower import lower
from autocomp.measure.runner import LocalSession


class _Net(torch.nn.Module):
    """Odd image sizes (tiles cut by the border), asymmetric padding, a residual, a conv with no
    epilogue at all, and channel counts a pruned model has (24 in, 40 out: narrower vectors)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(24, 32, 3, padding=1)
        self.c2 = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.c3 = torch.nn.Conv2d(32, 40, 3, padding=(0, 1), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x))
        return self.c3(torch.relu(self.c2(y) + y))


@pytest.fixture(scope="module")
def net_and_input():
    torch.manual_seed(0)
    return _Net().eval(), torch.randn(2, 24, 30, 27)


def _winograd_kernels(built) -> int:
    return sum("winograd" in how for how in built.kernels.values())


@pytest.mark.parametrize("mode, convs", [("off", 0), ("auto", 3), ("stored", 3)])
def test_every_mode_computes_what_torch_does(net_and_input, host, mode, convs):
    net, x = net_and_input
    built = build(lower(net, x), dataclasses.replace(host, winograd=mode))
    assert _winograd_kernels(built) == convs, built.kernels
    how = {"auto": "weights transformed per call", "stored": "weights stored transformed"}.get(mode)
    assert all(how in v for v in built.kernels.values() if "winograd F" in v)
    assert all(how.startswith("scheduled") for name, how in built.kernels.items() if "winograd_f" in name)
    want = net(x).detach().numpy()
    got = LocalSession(built).run(x.numpy())
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_only_stored_mode_changes_the_weight_bytes(net_and_input, host):
    """`auto` transforms the weights inside the kernel (same artifact bytes); `stored` keeps 36 instead
    of 9 values per channel pair, and the memory figures must say so."""
    net, x = net_and_input
    lowered = lower(net, x)
    nbytes = {m: build(lowered, dataclasses.replace(host, winograd=m)).param_bytes for m in ("off", "auto", "stored")}
    pairs = 24 * 32 + 32 * 32 + 32 * 40
    assert nbytes["auto"] == nbytes["off"]
    assert nbytes["stored"] == nbytes["off"] + (36 - 9) * pairs * 4


def test_auto_keeps_the_direct_template_where_the_per_call_transform_does_not_pay():
    def conv(h, w):
        return winograd.WinogradConv(n=1, h=h, w=w, ci=64, co=64, pad=(1, 1, 1, 1), vf=32)

    assert conv(28, 28).tiles == 49 and winograd.chosen(conv(28, 28), "auto") == "runtime"
    assert conv(14, 14).tiles == 16 and winograd.chosen(conv(14, 14), "auto") is None
    assert winograd.chosen(conv(14, 14), "stored") == "stored"
    assert winograd.chosen(conv(7, 7), "stored") is None  # 4 tiles: 4x the weight reads cost more
    assert winograd.chosen(conv(56, 56), "off") is None


def _conv_call(dtype: str, stride: int = 1, kernel: int = 3, groups: int = 1, co: int = 32):
    x = relax.Var("x", relax.TensorType([1, 14, 14, 32], dtype))
    w = relax.Var("w", relax.TensorType([co, kernel, kernel, 32 // groups], dtype))
    bb = relax.BlockBuilder()
    with bb.function("main", [x, w]):
        call = bb.normalize(relax.op.nn.conv2d(x, w, strides=stride, padding=1, groups=groups,
                                               data_layout="NHWC", kernel_layout="OHWI"))
        bb.emit_func_output(call)
    return call


def test_only_fp32_3x3_stride_1_dense_convs_are_eligible():
    assert winograd.eligible(_conv_call("float32"), lanes=8).vf == 16
    assert winograd.eligible(_conv_call("float32", co=24), lanes=16).vf == 8  # pruned: 8-lane vectors
    assert winograd.eligible(_conv_call("float32", co=6), lanes=16) is None
    assert winograd.eligible(_conv_call("int8"), lanes=8) is None
    assert winograd.eligible(_conv_call("float16"), lanes=8) is None
    assert winograd.eligible(_conv_call("float32", stride=2), lanes=8) is None
    assert winograd.eligible(_conv_call("float32", kernel=1), lanes=8) is None
    assert winograd.eligible(_conv_call("float32", groups=32), lanes=8) is None


def test_the_transforms_are_winograd_f4x4_3x3():
    """The matrices themselves: A^T [(G g G^T) * (B^T d B)] A is the 'valid' 3x3 correlation."""
    a, b, g = winograd.matrices()
    rng = np.random.default_rng(0)
    d, k = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    got = a.T @ ((g @ k @ g.T) * (b.T @ d @ b)) @ a
    want = np.array([[np.sum(d[i:i + 3, j:j + 3] * k) for j in range(4)] for i in range(4)])
    assert np.allclose(got, want)
