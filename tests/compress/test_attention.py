"""PyTorch's attention, unfused: the same outputs, and projections a plan can quantize (issue 18)."""

import pytest
import torch
from torch import nn

from autocomp.compress import compress, unfuse_attention
from autocomp.compress.attention import Attention
from autocomp.compress.layers import float_layers, searchable_layers
from autocomp.compress.quantize import layer_precisions
from autocomp.plan import CompressionPlan

from helpers import tiny_encoder


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_unfused_encoder_computes_what_pytorch_does(batch_first, norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    unfused = unfuse_attention(encoder)
    x = torch.randn(3, 5, 16) if batch_first else torch.randn(5, 3, 16)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[1, 3:] = True
    with torch.no_grad():
        for kwargs in ({}, {"src_key_padding_mask": padding}, {"mask": nn.Transformer.generate_square_subsequent_mask(5)}):
            assert torch.allclose(unfused(x, **kwargs), encoder(x, **kwargs), atol=1e-5)
    assert isinstance(unfused.layers[0].self_attn, Attention)
    assert isinstance(encoder.layers[0].self_attn, nn.MultiheadAttention)  # the original is untouched


def test_encoder_linears_compute_in_int8_and_attention_stays_float():
    model = unfuse_attention(tiny_encoder())
    x = torch.randn(1, 1, 8, 8)
    only_float = float_layers(model, x)
    layers = [n for n in searchable_layers(model) if n not in only_float]
    assert "encoder.layers.0.self_attn.in_proj" in layers and "encoder.layers.1.linear2" in layers
    # PyTorch's fused encoder fast path used to receive the int8 weights here
    quantized = compress(model, CompressionPlan.uniform(layers, 8, 8), x, torch.randn(64, 1, 8, 8), ("head",))
    with torch.no_grad():
        assert torch.isfinite(quantized(x)).all()
    compute = {p.name: p.compute for p in layer_precisions(quantized, layers, only_float)}
    assert all(compute[n].endswith("-> int32") for n in layers)
    assert compute["encoder.layers.0.self_attn"].startswith("float32 (attention")
    assert compute["encoder.layers.1.norm2"].startswith("float32 (LayerNorm")


def test_attention_that_cannot_be_unfused_stays_float_and_is_not_searchable():
    class CrossDims(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 2, kdim=8, vdim=8, batch_first=True)
            self.head = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.attn(x, x[..., :8], x[..., :8])[0].mean(1))

    model = unfuse_attention(CrossDims().eval())
    only_float = float_layers(model, torch.randn(1, 5, 16))
    assert "separate q/k/v" in only_float["attn"]
    assert "not run as a module" in only_float["attn.out_proj"]  # MHA reads out_proj.weight itself
    assert [n for n in searchable_layers(model) if n not in only_float] == ["head"]


def test_a_subclassed_encoder_layer_keeps_its_fused_path_and_its_linears_stay_float():
    class MyLayer(nn.TransformerEncoderLayer):
        pass

    model = nn.Sequential(MyLayer(16, 2, 32, dropout=0.0, batch_first=True), nn.Flatten(), nn.Linear(80, 4)).eval()
    unfused = unfuse_attention(model)
    only_float = float_layers(unfused, torch.randn(1, 5, 16))
    assert "fused eval path" in only_float["0.linear1"]
    assert [n for n in searchable_layers(unfused) if n not in only_float] == ["2"]
