"""The built-in transformer task `fashion-rows` (issue 18): trained once and cached, deterministic, and its
trained model keeps its accuracy at w8a8 in the simulation and in the compiled artifact."""

import pytest
import torch

from autocomp.candidate import fp32_accuracy, prepare
from autocomp.compress.quantize import layer_precisions
from autocomp.measure import accuracy
from autocomp.measure.local import LocalSession
from autocomp.paths import cache_dir
from autocomp.plan import CompressionPlan
from autocomp.tasks import BUILTIN_TASKS, builtin, load_task


@pytest.fixture(scope="module")
def rows_ctx(host):
    if not (builtin.FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail("dataset-fashion-mnist is not installed; 'make test' installs it")
    return prepare(load_task("fashion-rows"), host)


def test_training_is_deterministic_on_one_thread():
    xtr, ytr, _, _ = builtin.load_fashion()
    x, y = builtin._normalise(xtr[:512]), torch.from_numpy(ytr[:512].astype("int64"))
    weights, threads = [], torch.get_num_threads()
    for _ in range(2):
        torch.manual_seed(builtin.SEED)
        model = builtin.train_classifier(builtin.FashionRowsNet(), x, y, 1, 3e-3, threads=1)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert torch.get_num_threads() == threads  # the caller's thread count is given back


def test_the_task_is_registered_trained_and_cached(rows_ctx):
    assert "fashion-rows" in BUILTIN_TASKS
    task = rows_ctx.task
    assert task.example_input.shape == (1, 1, 28, 28) and len(task.eval_inputs) == 1000
    assert list((cache_dir() / "models").glob("fashion-rows-*.pt"))
    assert fp32_accuracy(rows_ctx) >= 0.80


def test_w8a8_keeps_accuracy_and_the_artifact_agrees(rows_ctx):
    plan = CompressionPlan.uniform(rows_ctx.layers, 8, 8)
    compiled = rows_ctx.compile(plan)
    sim = accuracy.accuracy_torch(compiled.model, rows_ctx.task)
    art = accuracy.accuracy_compiled(LocalSession(compiled.built).run, rows_ctx.task)
    assert fp32_accuracy(rows_ctx) - sim <= 0.01
    assert abs(art - sim) <= 0.005  # the tolerance of tests/test_cli.py's evaluate contract
    compute = {p.name: p.compute for p in layer_precisions(compiled.model, rows_ctx.layers, rows_ctx.float_only)}
    linears = [n for n in compute if n.startswith("encoder.") and n.endswith(("in_proj", "out_proj", "linear1", "linear2"))]
    assert len(linears) == 8 and all(compute[n] == "int8 x int8 -> int32" for n in linears), compute
    floats = [n for n in compute if n.endswith(("self_attn", "norm1", "norm2"))]
    assert len(floats) == 6 and all(compute[n].startswith("float32") for n in floats), compute


def test_a_head_pruned_int8_plan_compiles_and_agrees(rows_ctx):
    """Half the heads of every attention module removed (in_proj's prune ratio), w8a8: the artifact computes
    what the simulation does."""
    import numpy as np

    from autocomp.plan import LayerPlan

    heads = [n for n in rows_ctx.prunable if n.endswith("self_attn.in_proj")]
    assert len(heads) == 2
    plan = CompressionPlan(tuple(LayerPlan(n, 8, 8, 0.5 if n in heads else 0.0) for n in rows_ctx.layers))
    compiled = rows_ctx.compile(plan)
    assert all(layer.self_attn.num_heads == 2 for layer in compiled.model.encoder.layers)
    x = rows_ctx.task.eval_inputs[:8]
    session = LocalSession(compiled.built)
    got = np.concatenate([session.run(x[i:i + 1].numpy()) for i in range(len(x))])
    with torch.no_grad():
        want = compiled.model(x).numpy()
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()
