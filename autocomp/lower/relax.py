"""torch.export -> TVM Relax, keeping parameters as runtime inputs.

Parameters stay function inputs (not constants) so the compiler cannot fold a stored int8 / packed
int4 weight back into fp32: what the artifact carries is exactly what quantize.py stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from autocomp.errors import CandidateError
from autocomp.lower import relax_ops


@dataclass(frozen=True)
class LoweredModel:
    mod: Any  # tvm.IRModule with a "main" function (input, *params)
    params: tuple[np.ndarray, ...]
    param_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_dtype: str


def lower(model: nn.Module, example_input: torch.Tensor, signed_dot: bool = False,
          unsigned_dot: bool = False, pair_dot: bool = False) -> LoweredModel:
    """Import the model with a static input shape (the example input's).

    `signed_dot`: the target's int8 dot product is signed x signed (aarch64: SDOT, or int16 products, which
    need int8 data so two products fit an int16 lane), so uint8 conv inputs are re-centred to int8; `unsigned_dot`: it is unsigned x signed (x86 VNNI), so int8 conv inputs are
    re-centred to uint8 and 3-channel inputs padded to 4 (both exact; see relax_ops.relax_qconv2d);
    `pair_dot`: x86 without VNNI, whose int16 pair dot product takes int8 or uint8 data as it is (it only
    changes which integer Linears become convs: relax_ops.relax_qlinear).
    """
    import tvm  # noqa: F401  (registers the relax frontend)
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    model = model.eval()
    try:
        with torch.no_grad():
            exported = torch.export.export(model, (example_input,))
        mod = from_exported_program(exported, keep_params_as_input=True,
                                    custom_convert_map=relax_ops.relax_converters(signed_dot, unsigned_dot,
                                                                                           pair_dot))
    except Exception as exc:  # the importer raises AssertionError / KeyError for unsupported ops
        raise CandidateError(f"TVM Relax import failed: {type(exc).__name__}: {exc}") from exc
    mod, params = relax.frontend.detach_params(mod)
    arrays = tuple(p.numpy() for p in params.get("main", []))
    names = tuple(v.name for v in mod["main"].params[1:])
    return LoweredModel(mod, arrays, names, tuple(example_input.shape), str(example_input.dtype).replace("torch.", ""))
