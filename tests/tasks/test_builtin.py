import gzip

import numpy as np
import pytest

from autocomp.errors import UserError
from autocomp.tasks import builtin


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", images)
    assert np.array_equal(builtin._read_idx(tmp_path / "x.gz"), images)


def test_missing_fashion_dataset_names_the_package(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        builtin.load_fashion(tmp_path)


def test_fashion_splits_never_evaluate_on_calibration_data():
    pytest.importorskip("torch")
    if not (builtin.FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail("dataset-fashion-mnist is not installed; 'make test' installs it")
    task = builtin.fashion_mnist(eval_samples=200)
    assert task.example_input.shape == (1, 1, 28, 28)
    assert task.calib_data.shape[1:] == (1, 28, 28) and len(task.eval_inputs) == 200
    calib = {x.numpy().tobytes() for x in task.calib_data}
    assert not any(x.numpy().tobytes() in calib for x in task.eval_inputs)
    model = task.build_model()
    assert task.metric(model(task.eval_inputs), task.eval_targets) > 0.85
