"""The models users bring, as tasks with random data: torchvision's CNN zoo, a DeiT-tiny-shaped ViT, a
Conv1d keyword-spotting net and a BERT-tiny-shaped `nn.TransformerEncoder`. For compile / agreement tests
and scripts/bench_zoo.py: latency and "compiled equals simulated", never accuracy (the weights are random
init, nothing comes from a hub).

torchvision 0.28.0 is the release that pairs with torch 2.13, but PyPI's wheel links its C++ ops
against CUDA builds of libtorch, so with the CPU torch the project pins, its ops library does not load,
and ``import torchvision`` then dies registering fake kernels for two ops that were never defined
(``torchvision::nms``, ``qnms``). The model definitions are plain Python and need none of those ops, so
`_torchvision()` defines the two schemas (no kernels: calling them still fails loudly) and imports it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autocomp.errors import UserError
from autocomp.tasks.base import Task

_SCHEMAS = {"nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}
_LIB: list[torch.library.Library] = []  # kept alive: dropping a Library removes its definitions


def _torchvision():  # type: ignore[no-untyped-def]
    """torchvision's models package, importable beside the CPU torch (see the module docstring)."""
    if "torchvision" not in sys.modules and not _LIB:
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("the model zoo needs torchvision 0.28.0 (the release for torch 2.13): "
                            "run 'pip install torchvision==0.28.0' or 'make setup'")
        ops = next(Path(spec.submodule_search_locations[0]).glob("_C*.so"), None)
        try:
            if ops is None:
                raise OSError("no _C library")
            torch.ops.load_library(str(ops))
        except OSError:  # what torchvision's own loader catches: it then goes on without its ops
            lib = torch.library.Library("torchvision", "FRAGMENT")  # schemas only, no kernels
            for schema in _SCHEMAS.values():
                lib.define(schema)
            _LIB.append(lib)
    import torchvision.models

    return torchvision.models


class KeywordSpotter(nn.Module):
    """A TC-ResNet-style keyword spotter: 40 MFCC channels x 98 frames, Conv1d over time, residual blocks
    with a strided 1x1 shortcut, global pooling, 12 keywords (the Speech Commands setup)."""

    def __init__(self, mfcc: int = 40, widths: tuple[int, ...] = (64, 96, 128), classes: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(mfcc, widths[0], 3, padding=1, bias=False), nn.BatchNorm1d(widths[0]),
                                  nn.ReLU())
        blocks, cin = [], widths[0]
        for w in widths[1:]:
            blocks.append(_Block1d(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class _Block1d(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(cin, cout, 9, stride=2, padding=4, bias=False), nn.BatchNorm1d(cout),
                                  nn.ReLU(), nn.Conv1d(cout, cout, 9, padding=4, bias=False), nn.BatchNorm1d(cout))
        self.short = nn.Sequential(nn.Conv1d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


class TinyEncoder(nn.Module):
    """BERT-tiny's encoder shape (2 layers, d=128, 2 heads, GELU MLP of 512) over 128 tokens, built from
    PyTorch's own `nn.TransformerEncoderLayer` as users write it; the input is the token embeddings (the
    lookup table stays outside the compiled model), mean-pooled into a 2-way head."""

    def __init__(self, d: int = 128, heads: int = 2, layers: int = 2, classes: int = 2) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: how to build it and its input (channels, spatial size) at full size."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # without the batch dimension, at the model's own resolution
    resizable: bool = True  # the spatial size may be reduced (the fast tests); ViT's patch grid may not


def _tv(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    return lambda: getattr(_torchvision(), name)(weights=None, **kwargs)


def _deit_tiny() -> nn.Module:
    # DeiT-tiny's shape: dim 192, 3 heads, 12 layers, MLP 768, patch 16, 224x224 (torchvision's ViT class)
    vit = _torchvision().VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3,
                                           hidden_dim=192, mlp_dim=768)
    nn.init.trunc_normal_(vit.heads.head.weight, std=0.02)  # torchvision zero-inits the head: outputs would all be 0
    return vit


ZOO: dict[str, ZooModel] = {m.name: m for m in (
    ZooModel("resnet18", _tv("resnet18"), (3, 224, 224)),
    ZooModel("mobilenet_v2", _tv("mobilenet_v2"), (3, 224, 224)),
    ZooModel("mobilenet_v3_small", _tv("mobilenet_v3_small"), (3, 224, 224)),
    ZooModel("efficientnet_b0", _tv("efficientnet_b0"), (3, 224, 224)),
    ZooModel("shufflenet_v2_x0_5", _tv("shufflenet_v2_x0_5"), (3, 224, 224)),
    ZooModel("regnet_x_400mf", _tv("regnet_x_400mf"), (3, 224, 224)),
    ZooModel("deit_tiny", _deit_tiny, (3, 224, 224), resizable=False),
    ZooModel("kws_conv1d", KeywordSpotter, (40, 98), resizable=False),
    ZooModel("bert_tiny_encoder", TinyEncoder, (128, 128), resizable=False),
)}


def zoo_task(name: str, size: int | None = None, calib: int = 16, evals: int = 8, seed: int = 0) -> Task:
    """A Task of zoo model `name` on random inputs (calibration, evaluation; targets all 0).

    `size` replaces a CNN's 224x224 by size x size (same graph, less compute: the fast tests). Random
    weights make "accuracy" meaningless: compare compiled and simulated outputs, and time it."""
    if name not in ZOO:
        raise UserError(f"unknown zoo model {name!r}; choose from {', '.join(ZOO)}")
    spec = ZOO[name]
    shape = spec.input_shape
    if size is not None and spec.resizable:
        shape = (shape[0], size, size)
    torch.manual_seed(seed)
    model = spec.build().eval()
    _settle_batchnorm(model, shape, seed)
    gen = torch.Generator().manual_seed(seed)
    calib_x = torch.randn(calib, *shape, generator=gen)
    eval_x = torch.randn(evals, *shape, generator=gen)
    return Task(name=f"zoo-{name}", build_model=lambda: model, example_input=eval_x[:1], calib_data=calib_x,
                eval_inputs=eval_x, eval_targets=torch.zeros(evals, dtype=torch.long),
                description=f"{name} (random weights, {'x'.join(map(str, shape))} input): latency and agreement only")


def _settle_batchnorm(model: nn.Module, shape: tuple[int, ...], seed: int) -> None:
    """Give BatchNorm the running statistics of random inputs, as training would: with the init's (0, 1)
    statistics, activations of a deep random net grow by orders of magnitude and int8 ranges become
    meaningless for an agreement test."""
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(16, *shape, generator=gen)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(x)
    model.eval()
