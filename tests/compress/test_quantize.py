import pytest
import torch

from autocomp.compress import compress
from autocomp.compress.quantize import QuantizedLayer, layer_precisions, pack_bits, quantize, unpack_bits
from autocomp.plan import CompressionPlan


@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("n", [1, 7, 64, 1001])
def test_pack_unpack_round_trip(bits, n):
    qmax = (1 << (bits - 1)) - 1
    q = torch.randint(-qmax, qmax + 1, (n,))
    packed = pack_bits(q, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-n // (8 // bits))
    assert torch.equal(unpack_bits(packed, bits, n).to(q.dtype), q)


@pytest.mark.parametrize("w_bits, dtype, bytes_per_weight", [(8, torch.int8, 1), (4, torch.uint8, 0.5), (16, torch.float16, 2)])
def test_weights_are_stored_at_their_bit_width(digits_task, w_bits, dtype, bytes_per_weight):
    model = digits_task.build_model()
    conv = dict(model.named_modules())["features.1.0"]
    q = QuantizedLayer(conv, "features.1.0", w_bits, 32, None)
    assert q.weight.dtype == dtype
    assert q.weight.numel() * q.weight.element_size() == conv.weight.numel() * bytes_per_weight
    # dequantized weights are within half a quantization step of the originals
    w = conv.weight.detach()
    if w_bits == 16:
        assert torch.allclose(q.dequantized_weight(), w, atol=1e-3)
    else:
        step = q.weight_scale.reshape(-1)
        err = (q.dequantized_weight() - w).abs().reshape(w.shape[0], -1).amax(dim=1)
        assert torch.all(err <= step / 2 + 1e-7)


def test_activation_quantization_uses_calibration_range(digits_task):
    model = digits_task.build_model()
    plan = CompressionPlan.uniform(["features.1.0"], 8, 8)
    qmodel = quantize(model, plan, digits_task.calib_data)
    layer = dict(qmodel.named_modules())["features.1.0"]
    assert isinstance(layer, QuantizedLayer)
    assert 0 < layer.a_scale < 1
    assert not layer.a_signed  # a post-ReLU input is never negative: uint8
    first = QuantizedLayer(dict(model.named_modules())["features.0.0"], "features.0.0", 8, 8, (-1.0, 1.0))
    assert first.a_signed and first.a_scale == 1 / 127  # a normalised image input: int8
    p = layer_precisions(qmodel, ["features.0.0", "features.1.0"])
    assert (p[0].weight_dtype, p[0].compute) == ("float32", "float32")
    assert (p[1].weight_dtype, p[1].activation_dtype, p[1].compute) == ("int8", "uint8", "uint8 x int8 -> int32")


def test_precision_labels_say_what_is_simulated(digits_task):
    conv = dict(digits_task.build_model().named_modules())["features.1.0"]
    assert QuantizedLayer(conv, "c", 4, 32, None).describe().compute == "float32"  # weight-only
    assert QuantizedLayer(conv, "c", 4, 8, (0, 1)).describe().weight_dtype == "int4x2"
    assert "simulated" in QuantizedLayer(conv, "c", 32, 8, (0, 1)).describe().compute
    assert "simulated" in QuantizedLayer(conv, "c", 16, 16, (0, 1)).describe().compute  # no fp16 arithmetic
    assert QuantizedLayer(conv, "c", 16, 32, None).describe().compute == "float32"  # fp16 storage only


def test_fp16_layers_compute_in_fp16_where_the_target_can(digits_task):
    conv = dict(digits_task.build_model().named_modules())["features.1.0"]
    for w_bits, wd in ((16, "float16"), (8, "int8"), (4, "int4x2")):
        p = QuantizedLayer(conv, "c", w_bits, 16, None, fp16_compute=True).describe()
        assert (p.weight_dtype, p.activation_dtype, p.compute) == (wd, "float16", "float16")
    layer = QuantizedLayer(conv, "c", 16, 16, None, fp16_compute=True)
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        got, ref = layer(x), conv(x)
    # the output is an fp16 value (widened to fp32), within fp16 rounding of the fp32 layer
    assert torch.equal(got, got.half().float())
    assert (got - ref).abs().max() <= 2e-3 * ref.abs().max()


def test_fp32_plan_only_folds_batchnorm(digits_task, digits_ctx):
    plan = CompressionPlan.uniform(digits_ctx.layers)
    out = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in out.modules())
    x = digits_task.eval_inputs[:32]
    assert torch.allclose(out(x), digits_ctx.model(x), atol=1e-5)


def test_w8a8_keeps_accuracy_and_w4_shrinks_more(digits_task, digits_ctx):
    from autocomp.measure.accuracy import accuracy_torch

    base = accuracy_torch(digits_ctx.model, digits_task)
    args = (digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    w8 = compress(digits_ctx.model, CompressionPlan.uniform(digits_ctx.layers, 8, 8), *args)
    assert accuracy_torch(w8, digits_task) >= base - 0.02

    def stored(m):
        return sum(p.numel() * p.element_size() for p in m.parameters())

    w4 = compress(digits_ctx.model, CompressionPlan.uniform(digits_ctx.layers, 4, 8), *args)
    assert stored(w4) < stored(w8) < stored(digits_ctx.model)


def test_ranges_measured_once_serve_every_unpruned_plan(digits_task):
    """The sensitivity step quantizes one model many ways: the float model's input ranges, measured
    once, give exactly the model that calibrating each plan gives; a pruned plan calibrates its own."""
    from autocomp.compress.pipeline import float_input_ranges

    model = digits_task.build_model()
    x, calib = digits_task.example_input, digits_task.calib_data
    names = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    ranges = float_input_ranges(model, names, x, calib, ())
    assert set(ranges) == set(names)
    plan = CompressionPlan.uniform(names, 8, 8)
    once, each = compress(model, plan, x, calib, (), ranges=ranges), compress(model, plan, x, calib, ())
    assert torch.equal(once(digits_task.eval_inputs), each(digits_task.eval_inputs))
    wrong = {n: (0.0, 1e-3) for n in names}  # ignored: pruning changes what a layer's input holds
    pruned = CompressionPlan.uniform(names, 8, 8, 0.25, [names[0]])
    assert torch.equal(compress(model, pruned, x, calib, (), ranges=wrong)(digits_task.eval_inputs),
                       compress(model, pruned, x, calib, ())(digits_task.eval_inputs))
    assert not torch.equal(compress(model, plan, x, calib, (), ranges=wrong)(digits_task.eval_inputs),
                           each(digits_task.eval_inputs))
