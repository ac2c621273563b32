"""PyTorch -> ONNX (QDQ): the compressed model as onnxruntime runs it.

It lives with the lowering (beside onnx_ops.py, its custom symbolics) because more than the export
stage needs it: the report's onnxruntime marks export the fp32 model too (measure/onnxruntime_marks.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ONNX_OPSET = 17


def export_onnx(model: Any, example_input: Any, path: Path) -> None:
    """Integer layers become QuantizeLinear / DequantizeLinear around float Conv / Gemm (QDQ)."""
    import torch

    from autocomp.lower import onnx_ops

    onnx_ops.register_onnx_symbolics(ONNX_OPSET)
    # Constant folding would unpack 4-/2-bit weights into int32 initializers (bigger than fp32):
    # keep them packed, with the unpacking in the graph, as in the TVM artifact.
    packed = any(getattr(m, "w_bits", 8) < 8 for m in model.modules())
    with torch.no_grad():
        torch.onnx.export(model, (example_input,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          do_constant_folding=not packed,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
