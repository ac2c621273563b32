"""A layer's variants share the forward up to it and give exactly what each whole model gives; models
that cannot be split that way say so (None), and the sensitivity step runs them whole."""

import copy

import pytest
import torch
from torch import nn

import autocomp.measure.layer_variants as lv
from autocomp.measure.accuracy import torch_outputs


def _whole(base, layer, module, x):
    model = copy.deepcopy(base)
    parent, _, attr = layer.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)
    return torch_outputs(model.eval(), x)


def _scaled(module, factor):
    m = copy.deepcopy(module)
    with torch.no_grad():
        m.weight.mul_(factor)
    return m


class InPlace(nn.Module):
    """In-place ops before the layer (ReLU(inplace=True)) and after it, on its output and on its input."""

    def __init__(self, on_input=False):
        super().__init__()
        self.a, self.relu, self.b, self.c = nn.Linear(8, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.Linear(8, 3)
        self.on_input = on_input

    def forward(self, x):
        h = self.relu(self.a(x))
        y = self.b(h)
        if self.on_input:
            h.add_(y)  # the shared part's value, changed after the layer read it
            return self.c(h) + y
        y.mul_(2.0)
        return self.c(y + h)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.a(x)
        return self.b(h) if h.sum() > 0 else self.b(-h)  # control flow on values: fx cannot trace it


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(self.a(self.a(x)))


def test_variants_equal_the_whole_models_with_in_place_ops_on_either_side():
    torch.manual_seed(0)
    base, x = InPlace().eval(), torch.randn(300, 8)  # two batches of accuracy.EVAL_BATCH
    variants = {"same": base.b, "x2": _scaled(base.b, 2.0), "x-1": _scaled(base.b, -1.0)}
    got = lv.variant_outputs(base, "b", variants, x)
    assert got is not None and list(got) == list(variants)
    for key, module in variants.items():
        assert torch.equal(got[key], _whole(base, "b", module, x)), key
    assert not torch.equal(got["same"], got["x2"])  # the variants really differ
    assert base.b is variants["same"]  # the base model keeps its own layer


@pytest.mark.parametrize("model, layer", [(Branchy(), "b"), (Twice(), "a"), (InPlace(on_input=True), "b")])
def test_a_model_that_cannot_be_split_gives_none(model, layer):
    assert lv.variant_outputs(model.eval(), layer, {"x": _scaled(getattr(model, layer), 2.0)}, torch.randn(4, 8)) is None


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x0_5", "bert_tiny_encoder"])
def test_the_sensitivity_jobs_are_exact_on_the_zoo(name, host, monkeypatch):
    """Squeeze-excitation and residual adds, channel split and shuffle, attention: each layer's quantized
    choices (real QuantizedLayers) through the shared forward equal the whole models' outputs bit for bit.
    nn.TransformerEncoder branches on its input (`src.is_nested`), which fx cannot trace: the encoder's
    layers run whole, the head after it shares the forward."""
    from autocomp.candidate import prepare
    from autocomp.compress.pipeline import float_input_ranges
    from autocomp.plan import LayerPlan
    from autocomp.study import sensitivity_pool as pool
    from autocomp.tasks.zoo import zoo_task

    used = []
    real = lv.variant_outputs

    def counted(*args):
        out = real(*args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(lv, "variant_outputs", counted)
    task = zoo_task(name, size=32)
    ctx = prepare(task, host)
    ranges = float_input_ranges(ctx.model, list(ctx.layers), task.example_input, task.calib_data, ctx.protected)
    shared = pool.Shared(ctx.model, task.example_input, task.calib_data, ctx.protected, False, ctx.channel_multiple(),
                         ranges, None, task.eval_inputs, tuple(ctx.layers))
    layers = ctx.layers
    for layer in dict.fromkeys([layers[0], layers[len(layers) // 2], layers[-1]]):
        choices = (("w8a8", LayerPlan(layer, 8, 8)), ("w4a32", LayerPlan(layer, 4, 32)),
                   ("k2a8", LayerPlan(layer, 2, 8, 0.0, True)))
        got = pool.layer_outputs(shared, pool.LayerJob(layer, choices))
        for key, lp in choices:
            assert torch.equal(got[key], torch_outputs(pool._one_layer(shared, lp), task.eval_inputs)), (layer, key)
    assert used and (all(used) if name != "bert_tiny_encoder" else used == [False, False, True]), used
