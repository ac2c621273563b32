"""The shared conv-template pieces (kernels/conv.py): the fused epilogue inside a tile."""

import numpy as np
import torch
from torch import nn

from autocomp.build.compile import build, fuse
from autocomp.build.kernels.driver import schedule_and_pack
from autocomp.compress import compress
from autocomp.lower import lower
from autocomp.measure.local import LocalSession
from autocomp.plan import CompressionPlan


class SqueezeExcite(nn.Module):
    """MobileNetV3's block shape: the excitation's 1x1 conv runs on 1x1 pixels and its hard-sigmoid gate
    scales the whole feature map, which TVM fuses into that conv as a broadcasting epilogue."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 16, 3, padding=1)
        self.squeeze = nn.Conv2d(16, 8, 1)
        self.excite = nn.Conv2d(8, 16, 1)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        gate = nn.functional.hardsigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return self.head((x * gate).mean((2, 3)))


def _unrolled_copies(func) -> int:  # type: ignore[no-untyped-def]
    """The most copies of one statement that unrolling makes (product of nested unrolled extents)."""
    from tvm import tirx

    worst = 1

    def walk(stmt, copies: int) -> None:  # type: ignore[no-untyped-def]
        nonlocal worst
        if isinstance(stmt, tirx.For) and stmt.kind == tirx.ForKind.UNROLLED:
            copies *= int(stmt.extent)
            worst = max(worst, copies)
        if isinstance(stmt, tirx.SeqStmt):
            for s in stmt.seq:
                walk(s, copies)
        for part in ("block", "body", "init", "then_case", "else_case"):  # blocks live in s_tir: duck-typed
            child = getattr(stmt, part, None)
            if child is not None and not isinstance(child, tirx.Expr):
                walk(child, copies)

    walk(func.body, 1)
    return worst


def test_a_broadcasting_epilogue_is_not_unrolled_over_the_feature_map(host):
    """Unrolled, the gate's epilogue over a 32x32 map is 2048 copies of the requantize chain (LLVM took
    minutes on MobileNetV3 / EfficientNet); kept as loops it is as exact."""
    from tvm import tirx

    torch.manual_seed(0)
    model = SqueezeExcite().eval()
    x = torch.randn(1, 4, 32, 32)
    calib = torch.randn(8, 4, 32, 32)
    names = ["stem", "squeeze", "excite", "head"]
    q = compress(model, CompressionPlan.uniform(names, 8, 8), x, calib, ["head"])
    lowered = lower(q, x)
    fused, _ = fuse(lowered, host)
    scheduled, kernels, _ = schedule_and_pack(fused, host.tvm_target())
    gated = [n for n in kernels if "conv2d" in n and "multiply" in n and n.count("multiply") >= 2]
    assert gated, kernels  # the gate's multiply was fused into a conv kernel: the case under test
    for gv, func in scheduled.functions_items():
        if isinstance(func, tirx.PrimFunc) and gv.name_hint in kernels:
            assert _unrolled_copies(func) <= 256, (gv.name_hint, _unrolled_copies(func))
    got = LocalSession(build(lowered, host)).run(x.numpy())
    with torch.no_grad():
        want = q(x).numpy()
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()
