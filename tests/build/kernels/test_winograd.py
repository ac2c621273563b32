"""Winograd F(4x4, 3x3) for fp32 3x3 convs: same results as torch, the weight bytes each mode promises,
and only the convs it is meant for."""

import dataclasses

import numpy as np
import pytest
import torch

from autocomp.build.kernels import winograd
from autocomp.build.compile import build
from autocomp.lower import lower
from autocomp.measure.local import LocalSession


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


def test_the_transforms_are_winograd_f4x4_3x3():
    """The matrices themselves: A^T [(G g G^T) * (B^T d B)] A is the 'valid' 3x3 correlation."""
    a, b, g = winograd.matrices()
    rng = np.random.default_rng(0)
    d, k = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    got = a.T @ ((g @ k @ g.T) * (b.T @ d @ b)) @ a
    want = np.array([[np.sum(d[i:i + 3, j:j + 3] * k) for j in range(4)] for i in range(4)])
    assert np.allclose(got, want)
