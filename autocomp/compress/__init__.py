"""Compression in PyTorch: prune, quantize, (later) distill; `compress()` applies a plan."""

from autocomp.compress.pipeline import compress

__all__ = ["compress"]
