"""The simulation's integer layers sum in float32 where that is exact and in float64 where it is not:
either way the same numbers as an exact integer sum, which the compiled int8 kernels compute."""

import torch
import torch.nn.functional as F

from autocomp.compress.qops import FLOAT32_EXACT, exact_dtype, qconv2d, qlinear


def _exact(acc, bias_q, scale, shape):
    """An integer accumulator (exact in float64 below 2^53) plus the bias, rescaled as the kernels do."""
    return (acc + bias_q.double().reshape(shape)).to(torch.float32) * scale.reshape(shape)


def test_the_accumulator_type_follows_the_bound():
    w = torch.full((4, 64, 3, 3), 127.0)  # 576 taps of 127 x 255 activations: past 2^24
    assert 576 * 127 * 255 >= FLOAT32_EXACT and exact_dtype(w, False, None) == torch.float64
    assert exact_dtype(w, True, None) == torch.float32  # signed activations: at most 127
    assert exact_dtype(w[:, :32], False, None) == torch.float32
    bias = torch.tensor([0, 0, 0, 2**24], dtype=torch.int32)
    assert exact_dtype(w[:, :1], False, bias) == torch.float64  # the bias counts too


def test_qconv2d_equals_the_exact_integer_sum_on_both_sides_of_the_bound():
    g = torch.Generator().manual_seed(0)
    for channels, w_max in ((8, 127), (64, 127), (64, 31)):
        wq = torch.randint(-w_max, w_max + 1, (16, channels, 3, 3), generator=g).float()
        wq[0] = w_max  # one channel at the worst case: float64 where 9 x channels x 127 x 255 >= 2^24
        xq_int = torch.randint(0, 256, (2, channels, 12, 12), generator=g)
        xq_int[:, :, 4:8, 4:8] = 255
        bias_q = torch.randint(-(2**20), 2**20, (16,), dtype=torch.int32, generator=g)
        w_scale, a_scale = torch.rand(16, generator=g) * 1e-2, 0.05
        out = qconv2d(xq_int.float() * a_scale, wq, w_scale, bias_q, a_scale, False, [1, 1], [1, 1], [1, 1], 1)
        acc = F.conv2d(xq_int.double(), wq.double(), None, 1, 1)
        assert torch.equal(out, _exact(acc, bias_q, torch.tensor(a_scale, dtype=torch.float32) * w_scale, (1, -1, 1, 1)))


def test_qlinear_equals_the_exact_integer_sum():
    g = torch.Generator().manual_seed(1)
    for features in (16, 4096):  # 4096 x 127 x 255 is past 2^24, and float32 sums it wrong (below)
        wq = torch.randint(-127, 128, (8, features), generator=g).float()
        wq[0] = 127
        xq_int = torch.randint(0, 256, (3, features), generator=g)
        xq_int[0] = 255
        w_scale = torch.rand(8, generator=g) * 1e-2
        out = qlinear(xq_int.float() * 0.1, wq, w_scale, None, 0.1, False)
        acc = (xq_int.to(torch.int64) @ wq.to(torch.int64).t()).double()
        if features > 16:  # the case the float64 path is for: float32 alone gets it wrong
            assert not torch.equal((xq_int.float() @ wq.t()).double(), acc)
        assert torch.equal(out, _exact(acc, torch.zeros(8), torch.tensor(0.1, dtype=torch.float32) * w_scale, (1, -1)))
