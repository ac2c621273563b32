"""Compression in PyTorch: prune, distill, fold, quantize; `compress()` applies a plan."""

from autocomp.compress.pipeline import compress

__all__ = ["compress"]
