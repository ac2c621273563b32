"""Lowering and compiling real plans: the compiled artifact must compute what the torch model does."""

import numpy as np
import pytest
import torch
from torch import nn

from autocomp.build.compile import build, export_library
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan, LayerPlan
from autocomp.device.profiles import load_profile


def stored_bytes(model):
    """Parameters plus the float buffers (BatchNorm statistics), which TVM embeds as constants."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers() if b.dtype.is_floating_point)


def _plan(ctx, kind):
    if kind == "mixed":
        bits = [(4, 8, 0.25), (8, 32, 0.0), (16, 8, 0.0)]
        return CompressionPlan(tuple(LayerPlan(n, w, a, p if n in ctx.prunable else 0.0)
                                     for n, (w, a, p) in zip(ctx.layers, bits)))
    w, a = {"fp32": (32, 32), "w8a8": (8, 8), "w4a8": (4, 8), "w16": (16, 32), "w16a16": (16, 16)}[kind]
    return CompressionPlan.uniform(ctx.layers, w, a)


@pytest.mark.parametrize("kind", ["fp32", "w8a8", "w4a8", "w16", "mixed"])
def test_compiled_outputs_match_torch(digits_task, digits_ctx, host, kind):
    plan = _plan(digits_ctx, kind)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    built = build(lowered, host)
    session = LocalSession(built)
    x = digits_task.eval_inputs
    with torch.no_grad():
        want = model(x).numpy()
    got = np.concatenate([session.run(x[i : i + 1].numpy()) for i in range(len(x))])
    err = np.abs(got - want).max(axis=1)
    # Integer arithmetic is exact on both sides; the float parts (rescale, bias) may be contracted
    # into FMAs by LLVM, which can move a value sitting within an ulp of a rounding tie by one
    # quantization step. Such a flip changes a logit by about one step of the next layer's input
    # times its weights (< 0.1 here); it is rare, and it must not change the predicted class.
    assert (err < 1e-4).mean() >= 0.95
    assert err.max() < 0.1
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.995


def test_parameters_keep_their_stored_dtypes(digits_task, digits_ctx, host):
    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    lowered = lower(model, digits_task.example_input)
    dtypes = {str(p.dtype) for p in lowered.params}
    assert "uint8" in dtypes  # packed int4 weights are not folded back to float
    assert build(lowered, host).param_bytes == stored_bytes(model)


def test_memory_figures_come_from_the_artifact(digits_task, digits_ctx, host):
    fp32 = build(lower(digits_ctx.model, digits_task.example_input), host)
    # the unfolded model: its BatchNorm statistics become constants linked into the library
    assert fp32.param_bytes == stored_bytes(digits_ctx.model)
    assert fp32.const_bytes == sum(b.numel() * 4 for n, b in digits_ctx.model.named_buffers() if "running" in n)
    # the arena holds at least the largest activation of the net: 16 channels x 8 x 8 fp32
    assert fp32.arena_bytes >= 16 * 8 * 8 * 4


def test_aarch64_cross_compile(digits_task, digits_ctx, tmp_path):
    import subprocess

    rpi4 = load_profile("rpi4")
    built = build(lower(digits_ctx.model, digits_task.example_input), rpi4)
    path = export_library(built, rpi4, tmp_path)
    assert path.suffix == ".so", "aarch64-linux-gnu-gcc is missing: 'make test' installs it"
    assert "ARM aarch64" in subprocess.run(["file", str(path)], capture_output=True, text=True).stdout


def test_integer_layers_compute_in_int8_with_int32_accumulation(digits_task, digits_ctx):
    plan = CompressionPlan.uniform(digits_ctx.layers, 4, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    text = lower(model, digits_task.example_input).mod.script()
    convs = [line for line in text.splitlines() if "R.nn.conv2d(" in line]
    assert len(convs) == 2 and all('out_dtype="int32"' in c for c in convs)
    assert 'R.astype(' in text and '"int8"' in text and '"uint8"' in text
    matmuls = [line for line in text.splitlines() if "R.matmul(" in line]
    assert matmuls and all('out_dtype="int32"' in m for m in matmuls)


def test_consecutive_integer_layers_pass_int8_tensors(digits_task, digits_ctx, host):
    """BatchNorm is folded, so rescale + bias + ReLU + the next quantize fuse into the conv's kernel."""
    from autocomp.build.compile import legalize

    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    fused = legalize(lower(model, digits_task.example_input).mod, host.tvm_target())
    kernels = [(str(b.value.args[0]), str(b.var.ty)) for blk in fused["main"].body.blocks for b in blk.bindings
               if getattr(b.value, "args", None) and "conv2d" in str(b.value.args[0])]
    assert len(kernels) == 2
    first_conv_out = kernels[0][1]
    assert 'dtype="uint8"' in first_conv_out  # feeds the second integer conv: int8 in memory, not float
    assert "relu" in kernels[0][0] and "round" in kernels[0][0]


@pytest.mark.parametrize("kind", ["fp32", "w8a8", "w4a8", "w16", "mixed"])
def test_every_precision_cross_compiles_for_aarch64(digits_task, digits_ctx, kind):
    rpi4 = load_profile("rpi4")
    model = compress(digits_ctx.model, _plan(digits_ctx, kind), digits_task.example_input, digits_task.calib_data,
                     digits_ctx.protected)
    built = build(lower(model, digits_task.example_input), rpi4)
    assert built.target["mtriple"] == "aarch64-linux-gnu"
    assert built.param_bytes == stored_bytes(model)


def test_fp16_compute_matches_the_simulation(digits_task, digits_ctx, host):
    """fp16 layers (fp16 weights, fp16 arithmetic, fp16 tensors between them). This x86 CPU has no fp16
    arithmetic, so LLVM widens each fp16 operation and rounds its result back to fp16: the same
    arithmetic as an fp16 unit, only slower, which is what this test is about."""
    plan = CompressionPlan(tuple(LayerPlan(n, w, 16) for n, w in zip(digits_ctx.layers, (16, 8, 4))))
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data,
                     digits_ctx.protected, fp16_compute=True)
    built = build(lower(model, digits_task.example_input), host)
    session = LocalSession(built)
    x = digits_task.eval_inputs
    with torch.no_grad():
        want = model(x).numpy()
    got = np.concatenate([session.run(x[i : i + 1].numpy()) for i in range(len(x))])
    # The device sums K products in fp16, the simulation in fp32 before rounding the sum to fp16: the
    # sums differ by up to ~sqrt(K) fp16 ulps (K = 144 and 256 here, ulp 2^-11 relative), per layer.
    # Bound: 2% of the largest logit; the predicted class may flip only for near-ties.
    err = np.abs(got - want).max()
    assert err <= 0.02 * np.abs(want).max(), err
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99


def test_rpi5_fp16_layers_run_on_neon_fp16_fma(digits_task, digits_ctx, tmp_path):
    import subprocess

    rpi5 = load_profile("rpi5")
    plan = CompressionPlan.uniform(digits_ctx.layers, 16, 16)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data,
                     digits_ctx.protected, fp16_compute=rpi5.fp16_compute())
    lowered = lower(model, digits_task.example_input)
    built = build(lowered, rpi5)
    weights = [p for p, name in zip(built.params, lowered.param_names) if name.endswith("weight")]
    assert weights and {str(w.dtype) for w in weights} == {"float16"}
    path = export_library(built, rpi5, tmp_path)
    asm = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(path)], capture_output=True, text=True).stdout
    fmla = [ln for ln in asm.splitlines() if "\tfmla\t" in ln]
    # the conv kernels multiply-add 8 fp16 lanes at a time (fmla vN.8h); no float32 FMA (.4s) is left
    assert sum(".8h" in ln for ln in fmla) > 50
    assert not any(".4s" in ln for ln in fmla)


def test_signed_dot_lowering_is_exact(digits_task, digits_ctx, host):
    """For SDOT targets, uint8 conv inputs become int8 (q - 128) and the conv adds 128 * sum(w) back:
    the same integers. Compiled here for x86 (generic int8 kernels) to check the rewrite itself."""
    plan = CompressionPlan.uniform(digits_ctx.layers, 8, 8)
    model = compress(digits_ctx.model, plan, digits_task.example_input, digits_task.calib_data, digits_ctx.protected)
    plain, shifted = (build(lower(model, digits_task.example_input, signed_dot=s), host) for s in (False, True))
    x = digits_task.eval_inputs[:64].numpy()
    a, b = LocalSession(plain), LocalSession(shifted)
    got = [(a.run(x[i : i + 1]), b.run(x[i : i + 1])) for i in range(len(x))]
    assert all(np.array_equal(p, q) for p, q in got)
    # and the rewrite is there: a signed conv input, a weight-sum correction
    text = lower(model, digits_task.example_input, signed_dot=True).mod.script()
    assert 'R.const(-128, "int16")' in text and "R.sum" in text


class RGBStem(nn.Module):
    """A 3-channel stem on signed (normalized) pixels, then a 16-channel conv: the shapes of ResNet."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 7, stride=2, padding=3)
        self.b = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.stem(x)))


def test_unsigned_dot_lowering_is_exact_and_gives_the_stem_vnni(host):
    """For VNNI targets, int8 conv inputs become uint8 (q + 128), 3 channels are padded to 4 with zero
    weights, and the conv subtracts 128 * sum(w): the same integers, and the stem gets VNNI kernels."""
    from autocomp.compress.quantize import quantize
    from autocomp.device.features import has_vnni

    torch.manual_seed(0)
    plan = CompressionPlan((LayerPlan("stem", 8, 8), LayerPlan("b", 8, 8)))
    model = quantize(RGBStem().eval(), plan, torch.randn(8, 3, 22, 18))
    x = torch.randn(1, 3, 22, 18)
    plain, shifted = (build(lower(model, x, unsigned_dot=u), host) for u in (False, True))
    assert np.array_equal(LocalSession(plain).run(x.numpy()), LocalSession(shifted).run(x.numpy()))
    text = lower(model, x, unsigned_dot=True).mod.script()
    assert 'R.const(128, "int16")' in text and "R.sum" in text and "(1, 4, 28, 24)" in text  # 3 -> 4 channels, padded
    if has_vnni(host.tvm_target()):
        assert list(shifted.kernels.values()).count("scheduled (VNNI dot product)") == 2, shifted.kernels
        assert list(plain.kernels.values()).count("scheduled (VNNI dot product)") == 1, plain.kernels


def test_rpi5_int8_convs_use_sdot(digits_task, digits_ctx, tmp_path):
    import subprocess

    from autocomp.candidate import Context

    rpi5 = load_profile("rpi5")
    ctx = Context(digits_task, rpi5, digits_ctx.model, digits_ctx.layers, digits_ctx.protected, digits_ctx.prunable, {})
    model = ctx.compress(CompressionPlan.uniform(digits_ctx.layers, 8, 8))
    built = ctx.build(ctx.lower(model))
    # the first conv has one input channel (no 4-channel groups): generic kernel; the others SDOT
    assert list(built.kernels.values()).count("scheduled (NEON SDOT dot product)") >= 1
    path = export_library(built, rpi5, tmp_path)
    asm = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(path)], capture_output=True, text=True).stdout
    assert sum("\tsdot\t" in ln for ln in asm.splitlines()) > 10


class Tokens(nn.Module):
    """Token-wise linear layers as in a transformer: signed input (after a LayerNorm-like shift), then ReLU."""

    def __init__(self, d: int = 256, hidden: int = 320):
        super().__init__()
        self.a = nn.Linear(d, hidden)
        self.b = nn.Linear(hidden, d)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("tokens", [13, 28])
def test_token_linears_become_dot_product_convs_with_the_same_integers(host, tokens):
    """With a dot product, an integer Linear over >= 8 rows and >= 1 M MACs is a 1x1 NHWC conv over the rows
    (13 rows: padded to 16 and sliced back); signed input shifted for VNNI, unsigned for SDOT, neither for
    AVX2's int16 pairs. Every variant computes the integers the plain matmul does, and the convs get the
    host's dot-product template (VNNI, or vpmaddwd without it)."""
    from autocomp.compress.quantize import quantize
    from autocomp.device.features import has_pair_dot, has_vnni

    torch.manual_seed(0)
    plan = CompressionPlan((LayerPlan("a", 8, 8), LayerPlan("b", 8, 8)))
    model = quantize(Tokens().eval(), plan, torch.randn(8, tokens, 256))
    x = torch.randn(1, tokens, 256)
    small = quantize(Tokens(32, 48).eval(), plan, torch.randn(8, tokens, 32))  # under DOT_MIN_MACS: matmuls
    assert "R.nn.conv2d" not in lower(small, torch.randn(1, tokens, 32), unsigned_dot=True).mod.script()
    want = LocalSession(build(lower(model, x), host)).run(x.numpy())
    with torch.no_grad():
        assert np.array_equal(want, model(x).numpy())  # the matmul path equals the simulation
    for dot in ({"unsigned_dot": True}, {"signed_dot": True}, {"pair_dot": True}):
        lowered = lower(model, x, **dot)
        text = lowered.mod.script()
        assert text.count("R.nn.conv2d") == 2 and "R.matmul" not in text
        assert ("R.nn.pad" in text) == (tokens == 13) and ("R.strided_slice" in text) == (tokens == 13)
        built = build(lowered, host)
        assert np.array_equal(LocalSession(built).run(x.numpy()), want), dot
        if "unsigned_dot" in dot and has_vnni(host.tvm_target()):
            assert list(built.kernels.values()).count("scheduled (VNNI dot product)") == 2, built.kernels
        if "pair_dot" in dot and has_pair_dot(host.tvm_target()):  # AVX2 / AVX-512BW without VNNI
            assert list(built.kernels.values()).count("scheduled (int16 pair dot product (vpmaddwd))") == 2, built.kernels
