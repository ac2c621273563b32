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


def test_pruning_heads_removes_the_least_important_ones_exactly():
    """Heads 1 and 3 carry no weight: pruning half the heads removes exactly them, and the output is unchanged."""
    torch.manual_seed(0)
    attn = Attention(nn.MultiheadAttention(16, 4, batch_first=True)).eval()
    with torch.no_grad():
        for h in (1, 3):
            for part in range(3):  # q, k, v rows of head h
                attn.in_proj.weight[part * 16 + h * 4: part * 16 + (h + 1) * 4] = 0
                attn.in_proj.bias[part * 16 + h * 4: part * 16 + (h + 1) * 4] = 0
            attn.out_proj.weight[:, h * 4:(h + 1) * 4] = 0
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        before = attn(x, x, x)[0]
        assert attn.prune_heads(0.5) == 2
        after = attn(x, x, x)[0]
    assert attn.num_heads == 2 and attn.in_proj.weight.shape == (24, 16) and attn.out_proj.weight.shape == (16, 8)
    assert torch.allclose(before, after, atol=1e-6)
    assert attn.prune_heads(0.9) == 1 and attn.num_heads == 1  # floor, and one head is always kept


def test_an_encoder_prunes_heads_and_mlp_units_in_one_plan():
    from autocomp.compress.prune import prunable_layers, prune

    model = unfuse_attention(tiny_encoder())
    x = torch.randn(1, 1, 8, 8)
    roots = prunable_layers(model, x, ["head"])
    assert {"encoder.layers.0.self_attn.in_proj", "encoder.layers.1.self_attn.in_proj"} <= set(roots)
    pruned = prune(model, x, {"encoder.layers.0.self_attn.in_proj": 0.5, "encoder.layers.0.linear1": 0.5}, ["head"])
    layer = pruned.encoder.layers[0]
    assert layer.self_attn.num_heads == 2 and layer.linear1.out_features == 32 and layer.linear2.in_features == 32
    assert pruned.encoder.layers[1].self_attn.num_heads == 4 and model.encoder.layers[0].self_attn.num_heads == 4
    assert pruned(x).shape == (1, 10)
