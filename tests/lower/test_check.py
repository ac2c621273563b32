"""An op TVM's Relax importer rejects is one line naming the op, its layer and the user's line, before any
trial runs (issue 18, criterion 3)."""

import pytest
import torch
from torch import nn

from autocomp.compress import unfuse_attention
from autocomp.errors import UserError
from autocomp.lower.check import check_exportable, check_importable

from helpers import tiny_encoder


class Spectral(nn.Module):
    """A conv, then the magnitude of a real FFT along the width: TVM 0.27 has no converter for it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 5, 10)

    def forward(self, x):
        return self.fc(torch.fft.rfft(self.conv(x)).abs().flatten(1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.spectral = Spectral()

    def forward(self, x):
        return self.spectral(x)


class Strided(nn.Module):
    """`as_strided` with a storage offset: the importer has a converter, and it refuses these arguments."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.as_strided(x.flatten(1), (1, 32), (1, 2), 1))


def _check(model, name="user"):
    x = torch.randn(1, 1, 8, 8)
    check_importable(check_exportable(model.eval(), x, name), name)


def test_an_op_without_converter_names_op_layer_and_line(capfd):
    with pytest.raises(UserError) as info:
        _check(Net(), "spectral")
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("task spectral: TVM's Relax importer has no conversion for the torch op '_fft_r2c'")
    assert "in layer 'spectral' (Spectral)" in message
    assert f"{__file__}:24 (forward)" in message  # the rfft line
    assert "move it out of the model" in message
    assert capfd.readouterr().err == ""  # the importer's own noise stays hidden


def test_a_converter_that_refuses_its_arguments_says_why(capfd):
    with pytest.raises(UserError, match=r"cannot convert the torch op 'as_strided' \(AssertionError: as_strided "
                                        r"with non-zero storage_offset is not supported yet\) at .*test_check.py:44"):
        _check(Strided())
    assert capfd.readouterr().err == ""


def test_supported_models_pass():
    _check(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10)))
    _check(unfuse_attention(tiny_encoder()))
