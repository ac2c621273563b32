"""Compression in PyTorch: prune, distill, fold, quantize; `compress()` applies a plan;
`unfuse_attention()` makes a model's attention projections layers a plan can name."""

from autocomp.compress.attention import unfuse_attention
from autocomp.compress.pipeline import compress

__all__ = ["compress", "unfuse_attention"]
