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
    assert 0 < layer.a_scale < 1 and 0 <= layer.a_zero <= 255
    # post-ReLU input: the range starts at 0, so the zero point is 0
    assert layer.a_zero == 0
    assert layer_precisions(qmodel, ["features.0.0", "features.1.0"])[1].compute == "float32 (simulated int8/uint8)"


def test_fp32_plan_changes_nothing(digits_task, digits_ctx):
    plan = CompressionPlan.uniform(digits_ctx.layers)
    out = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    x = digits_task.eval_inputs[:32]
    assert torch.equal(out(x), digits_ctx.model(x))


def test_w8a8_keeps_accuracy_and_w4_shrinks_more(digits_task, digits_ctx):
    from autocomp.evaluate import accuracy_torch

    base = accuracy_torch(digits_ctx.model, digits_task)
    args = (digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    w8 = compress(digits_ctx.model, CompressionPlan.uniform(digits_ctx.layers, 8, 8), *args)
    assert accuracy_torch(w8, digits_task) >= base - 0.02

    def stored(m):
        return sum(p.numel() * p.element_size() for p in m.parameters())

    w4 = compress(digits_ctx.model, CompressionPlan.uniform(digits_ctx.layers, 4, 8), *args)
    assert stored(w4) < stored(w8) < stored(digits_ctx.model)
