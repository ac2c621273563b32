"""A user's transformer compiles for the host and computes what the torch model does (issue 18)."""

import numpy as np
import pytest
import torch

from autocomp.build.compile import build
from autocomp.compress import compress, unfuse_attention
from autocomp.compress.layers import float_layers, searchable_layers
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan

from helpers import tiny_encoder


@pytest.mark.parametrize("bits", [(32, 32), (8, 8), (8, 32)])
def test_compiled_transformer_matches_torch(host, bits):
    model = unfuse_attention(tiny_encoder())
    x = torch.randn(64, 1, 8, 8)
    only_float = float_layers(model, x[:1])
    layers = [n for n in searchable_layers(model) if n not in only_float]
    plan = CompressionPlan.uniform(layers, *bits)
    compressed = compress(model, plan, x[:1], torch.randn(128, 1, 8, 8), ("head",))
    # fp32: TVM's ConvertLayout died with std::bad_alloc on the attention's squeeze(axis=-2)
    session = LocalSession(build(lower(compressed, x[:1]), host))
    with torch.no_grad():
        want = compressed(x).numpy()
    got = np.concatenate([session.run(x[i : i + 1].numpy()) for i in range(len(x))])
    err = np.abs(got - want).max(axis=1)
    # the tolerance of tests/lower/test_relax.py's agreement test
    assert (err < 1e-4).mean() >= 0.95
    assert err.max() < 0.1
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.995
