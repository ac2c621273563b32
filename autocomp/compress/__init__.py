"""Compression in PyTorch: prune, distill, fold, quantize; `compress()` applies a plan;
`unfuse_attention()` makes a model's attention projections layers a plan can name;
`isolate_shuffles()` lets Torch-Pruning prune around ShuffleNet's channel shuffles."""

from autocomp.compress.attention import unfuse_attention
from autocomp.compress.pipeline import compress
from autocomp.compress.shuffle import isolate_shuffles

__all__ = ["compress", "isolate_shuffles", "unfuse_attention"]
