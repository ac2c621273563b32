"""Lowering a compressed PyTorch model to a TVM Relax IRModule."""

from autocomp.lower.relax import LoweredModel, lower

__all__ = ["LoweredModel", "lower"]
