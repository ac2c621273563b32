"""Issue 18, criterion 4's MobileNet half: the built-in `fashion-mobilenet` (MobileNetV2 blocks: 1x1 expand,
depthwise 3x3, 1x1 project, residual adds), trained here, keeps its accuracy at w8a8 in the simulation
and in the compiled artifact, with every conv computing in integers."""

import pytest

from autocomp.candidate import fp32_accuracy, prepare
from autocomp.compress.quantize import layer_precisions
from autocomp.measure import accuracy
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan
from autocomp.tasks import builtin, load_task


@pytest.fixture(scope="module")
def mobilenet_ctx(host):
    if not (builtin.FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail("dataset-fashion-mnist is not installed; 'make test' installs it")
    return prepare(load_task("fashion-mobilenet"), host)


def test_w8a8_keeps_accuracy_and_the_artifact_agrees(mobilenet_ctx):
    ctx = mobilenet_ctx
    assert fp32_accuracy(ctx) >= 0.80
    compiled = ctx.compile(CompressionPlan.uniform(ctx.layers, 8, 8))
    sim = accuracy.accuracy_torch(compiled.model, ctx.task)
    art = accuracy.accuracy_compiled(LocalSession(compiled.built).run, ctx.task)
    assert fp32_accuracy(ctx) - sim <= 0.01
    assert abs(art - sim) <= 0.005  # the tolerance of tests/test_cli.py's evaluate contract
    compute = {p.name: p.compute for p in layer_precisions(compiled.model, ctx.layers, ctx.float_only)}
    assert not ctx.float_only and len(compute) == len(ctx.layers) == 18
    assert all(c.endswith("x int8 -> int32") for c in compute.values()), compute
