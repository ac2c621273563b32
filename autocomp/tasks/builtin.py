"""The bundled reference tasks, on data available offline, trained once and cached.

`fashion-mnist`, `fashion-mobilenet` and `fashion-rows` (a transformer) read Debian's
dataset-fashion-mnist package; `digits` uses scikit-learn's bundled 8x8 digits and trains in seconds,
for fast tests.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autocomp.errors import UserError
from autocomp.paths import cache_dir
from autocomp.tasks.base import Task

FASHION_DIR = Path(os.environ.get("AUTOCOMP_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
SEED = 0
_ARCH_VERSION = 3  # bump when a model definition or its training recipe changes


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FashionNet(nn.Module):
    """A VGG-style CNN for 1x28x28 inputs: 32-128 channels, 7 convs, ~100 MFLOP per image, so that even
    its scheduled fp32 latency (over 1 ms on 2 cores) stands well above timer noise."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 32),
            conv_bn_relu(32, 48),
            conv_bn_relu(48, 48),
            conv_bn_relu(48, 64, stride=2),
            conv_bn_relu(64, 64),
            conv_bn_relu(64, 128, stride=2),
            conv_bn_relu(128, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project; a residual add when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class FashionMobileNet(nn.Module):
    """A MobileNetV2-style net for 1x28x28 inputs: depthwise convs coupled to their expansions and
    residual adds coupling whole stages, the groups structured pruning must keep consistent."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 24),
            InvertedResidual(24, 24, 1),
            InvertedResidual(24, 32, 2),
            InvertedResidual(32, 32, 1),
            InvertedResidual(32, 64, 2),
            InvertedResidual(64, 64, 1),
            nn.Conv2d(64, 160, 1, bias=False), nn.BatchNorm2d(160), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(160, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class FashionRowsNet(nn.Module):
    """A transformer encoder for 1x28x28 inputs: the 28 image rows are 28 tokens of 28 pixels, embedded
    to d=64, two `nn.TransformerEncoderLayer`s (4 heads, GELU MLP of 128), mean-pooled. The model a user
    brings as a transformer: its Linears (embedding, packed q/k/v, output projection, MLP, head)
    quantize; attention's activation x activation matmuls, softmax and LayerNorm stay float."""

    def __init__(self, num_classes: int = 10, d: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(28, d)
        self.pos = nn.Parameter(torch.zeros(1, 28, d))
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.reshape(x.shape[0], 28, 28)) + self.pos
        return self.head(self.encoder(tokens).mean(dim=1))


class DigitsNet(nn.Module):
    """A tiny CNN for scikit-learn's 1x8x8 digits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_bn_relu(1, 16), conv_bn_relu(16, 32, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip), the format MNIST-style datasets ship in."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(directory: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise UserError(
            f"Fashion-MNIST not found in {directory} (missing {missing[0]}); install it with "
            "'apt-get install dataset-fashion-mnist' or set AUTOCOMP_FASHION_DIR"
        )
    xtr, ytr, xte, yte = (_read_idx(directory / n) for n in names)
    return xtr, ytr, xte, yte


def _normalise(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - 0.5) / 0.5).unsqueeze(1)


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float,
                     batch_size: int = 128, threads: int | None = None) -> nn.Module:
    """Adam with a one-cycle schedule; deterministic for a fixed seed and thread count. `threads` fixes
    the count while training (then the weights do not depend on the machine's cores)."""
    from autocomp.device.threads import torch_threads

    if not threads:
        return _train(model, x, y, epochs, lr, batch_size)
    with torch_threads(threads):
        return _train(model, x, y, epochs, lr, batch_size)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, batch_size: int) -> nn.Module:
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


def cached_model(key: str, make: type[nn.Module], train: callable) -> nn.Module:  # type: ignore[valid-type]
    """Train once per recipe, then load from the user cache; written atomically."""
    path = cache_dir() / "models" / f"{key}.pt"
    model = make()
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    torch.manual_seed(SEED)
    model = make()
    t0 = time.perf_counter()
    # stderr: a command's stdout may be JSON (`evaluate --json`, `front --json`)
    print(f"autocomp: training the reference model {key} once (cached in {path.parent}) ...", file=sys.stderr, flush=True)
    train(model)
    print(f"autocomp: trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model.eval()


def _recipe_key(name: str, *parts: object) -> str:
    text = "|".join(str(p) for p in (name, _ARCH_VERSION, SEED, torch.__version__.split("+")[0], *parts))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def fashion_mnist(eval_samples: int = 1000, calib_samples: int = 512, epochs: int = 2) -> Task:
    """Fashion-MNIST: train on 24k training images, calibrate on 512 others, evaluate on the test set."""
    return _fashion_task("fashion-mnist", FashionNet, eval_samples, calib_samples, epochs)


def fashion_mobilenet(eval_samples: int = 1000, calib_samples: int = 512, epochs: int = 2) -> Task:
    """Fashion-MNIST on FashionMobileNet: the same data and splits as `fashion-mnist`."""
    return _fashion_task("fashion-mobilenet", FashionMobileNet, eval_samples, calib_samples, epochs)


def fashion_rows(eval_samples: int = 1000, calib_samples: int = 512, epochs: int = 2) -> Task:
    """Fashion-MNIST on FashionRowsNet, a transformer: the same data and splits as `fashion-mnist`.
    Trained on one thread: its small matmuls gain little from a second one, and on a machine whose
    other core is busy two threads waited on each other (23 s on one thread, 228 s on two, seen once)."""
    return _fashion_task("fashion-rows", FashionRowsNet, eval_samples, calib_samples, epochs, threads=1)


def _fashion_task(name: str, make: type[nn.Module], eval_samples: int, calib_samples: int, epochs: int,
                  threads: int | None = None) -> Task:
    xtr, ytr, xte, yte = load_fashion()
    n_train = 24000
    x_train, y_train = _normalise(xtr[:n_train]), torch.from_numpy(ytr[:n_train].astype(np.int64))
    calib = _normalise(xtr[n_train : n_train + calib_samples])
    x_eval, y_eval = _normalise(xte[:eval_samples]), torch.from_numpy(yte[:eval_samples].astype(np.int64))
    key = _recipe_key(name, n_train, epochs, *([f"threads={threads}"] if threads else []))
    model = cached_model(key, make, lambda m: train_classifier(m, x_train, y_train, epochs, 3e-3, threads=threads))
    n_params = sum(p.numel() for p in model.parameters())
    return _task(name, key, make, calib, x_eval, y_eval,
                 f"Fashion-MNIST, {make.__name__} ({n_params} params), {eval_samples} test images",
                 recovery=_normalise(xtr[:10000]))  # training images: never calibration or evaluation ones


def digits(eval_samples: int = 300) -> Task:
    """scikit-learn's 8x8 digits: 1797 images; split train / calibration / evaluation."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy((data.images.astype(np.float32) / 16.0 - 0.5) / 0.5).unsqueeze(1)
    y = torch.from_numpy(data.target.astype(np.int64))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    x, y = x[order], y[order]
    n_eval, n_calib = eval_samples, 128
    x_eval, y_eval = x[:n_eval], y[:n_eval]
    calib = x[n_eval : n_eval + n_calib]
    x_train, y_train = x[n_eval + n_calib :], y[n_eval + n_calib :]
    key = _recipe_key("digits", len(x_train), 30)
    cached_model(key, DigitsNet, lambda m: train_classifier(m, x_train, y_train, 30, 1e-2, 64))
    return _task("digits", key, DigitsNet, calib, x_eval, y_eval,
                 f"scikit-learn digits 8x8, DigitsNet, {eval_samples} held-out images", recovery=x_train)


def _task(name: str, key: str, make: type[nn.Module], calib: torch.Tensor, x_eval: torch.Tensor,
          y_eval: torch.Tensor, description: str, recovery: torch.Tensor) -> Task:
    """A built-in task whose model is the cached, already trained one."""
    return Task(name=name, build_model=lambda: cached_model(key, make, lambda m: None),
                example_input=x_eval[:1].clone(), calib_data=calib, eval_inputs=x_eval, eval_targets=y_eval,
                description=description, recovery_inputs=recovery)
