"""Weight sharing: k-means codebooks on the per-channel int8 grid (compress/codebook.py)."""

import pytest
import torch

from autocomp.compress.codebook import kmeans_codebook
from autocomp.compress.quantize import QuantizedLayer


@pytest.mark.parametrize("bits", [2, 4])
def test_a_codebook_has_2_to_the_bits_int8_values_and_indexes_every_weight(bits):
    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(0))
    codebook, idx, scale = kmeans_codebook(w, bits)
    assert codebook.dtype == torch.int8 and codebook.shape == (1 << bits,)
    assert torch.all(codebook[1:] >= codebook[:-1]) and idx.shape == w.shape
    assert int(idx.min()) >= 0 and int(idx.max()) < 1 << bits
    again = kmeans_codebook(w, bits)
    assert all(torch.equal(a, b) for a, b in zip((codebook, idx, scale), again))  # deterministic


@pytest.mark.parametrize("bits", [2, 4])
def test_a_codebook_fits_bell_shaped_weights_better_than_evenly_spaced_levels(bits):
    """The reason to share weights: with the same bits per weight, k-means levels follow the weights'
    distribution, evenly spaced ones (uniform quantization, w2 = {-1, 0, 1} x scale) do not."""
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(1))
    codebook, idx, scale = kmeans_codebook(w, bits)
    shared = codebook.float()[idx] * scale.reshape(-1, 1, 1, 1)
    qmax = (1 << (bits - 1)) - 1
    step = w.abs().reshape(64, -1).amax(1).reshape(-1, 1, 1, 1) / qmax
    uniform = torch.clamp(torch.round(w / step), -qmax, qmax) * step
    assert (shared - w).pow(2).mean() < 0.75 * (uniform - w).pow(2).mean()  # 0.62 at 4 bits, less at 2


def test_a_shared_layer_stores_packed_indices_plus_its_codebook(digits_task):
    conv = dict(digits_task.build_model().named_modules())["features.1.0"]
    q = QuantizedLayer(conv, "features.1.0", 2, 8, (0.0, 1.0), shared=True)
    assert q.weight.dtype == torch.uint8 and q.weight.numel() == conv.weight.numel() // 4
    assert q.codebook.dtype == torch.int8 and q.codebook.numel() == 4
    codebook, idx, _ = kmeans_codebook(conv.weight, 2)
    assert torch.equal(q.integer_weight(), codebook[idx])  # unpacked and looked up inside the graph
    assert q.describe().weight_dtype == "int8 codebook[4] int2x4"
    assert q.describe().compute == "uint8 x int8 -> int32"
