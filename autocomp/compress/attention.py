"""PyTorch's attention modules, rewritten so that their projections are ordinary nn.Linear layers.

Why: `nn.MultiheadAttention` keeps its q/k/v projection as one packed `in_proj_weight` Parameter and
reads `out_proj.weight` directly (its `out_proj` module is never called), and in eval mode
`nn.TransformerEncoderLayer` hands all of its weights to the fused `torch._transformer_encoder_layer_fwd`.
A compressed layer replaced by a QuantizedLayer is then either never used or fed to a fused kernel
that cannot take int8 weights. `unfuse_attention` gives every such projection its own Linear module,
called as a module (so calibration hooks see its input and quantization replaces it like any other
Linear), and turns the fused fast paths off. Same arithmetic, same parameter names apart from
`self_attn.in_proj_weight` / `in_proj_bias`, which become `self_attn.in_proj.weight` / `.bias`.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with a packed q/k/v `in_proj` Linear and an `out_proj` Linear.

    Takes and returns what `nn.MultiheadAttention.forward` does (the averaged attention weights only
    when asked). The score and context matmuls multiply two activations: they stay float.
    """

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        e = mha.embed_dim
        self.num_heads, self.batch_first, self.dropout = mha.num_heads, mha.batch_first, mha.dropout
        self.in_proj = nn.Linear(e, 3 * e, bias=mha.in_proj_bias is not None)
        with torch.no_grad():
            self.in_proj.weight.copy_(mha.in_proj_weight)
            if mha.in_proj_bias is not None:
                self.in_proj.bias.copy_(mha.in_proj_bias)
        self.out_proj = mha.out_proj

    def prune_heads(self, ratio: float) -> int:
        """Remove floor(ratio x heads) whole heads (at least one kept), the least important first, by the L2
        norm of their q / k / v rows of `in_proj` and their columns of `out_proj`; returns how many.

        Why here and not in Torch-Pruning: its graph sees `in_proj`'s outputs through reshapes into heads
        and cannot couple them (prune.py keeps `in_proj` out of it); a head is exactly a slice of those
        rows and columns, so removing one is exact for the heads that remain."""
        heads = self.num_heads
        drop = min(int(ratio * heads + 1e-9), heads - 1)
        if drop <= 0:
            return 0
        e = self.in_proj.out_features // 3
        head_dim = e // heads
        w = self.in_proj.weight.detach().reshape(3, heads, head_dim, -1)
        cols = self.out_proj.weight.detach().reshape(-1, heads, head_dim)
        score = w.pow(2).sum(dim=(0, 2, 3)) + cols.pow(2).sum(dim=(0, 2))
        keep = sorted(score.argsort(descending=True)[: heads - drop].tolist())
        rows = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in keep])
        qkv_rows = torch.cat([rows + i * e for i in range(3)])
        in_proj = nn.Linear(self.in_proj.in_features, len(qkv_rows), bias=self.in_proj.bias is not None)
        out_proj = nn.Linear(len(rows), self.out_proj.out_features, bias=self.out_proj.bias is not None)
        with torch.no_grad():
            in_proj.weight.copy_(self.in_proj.weight[qkv_rows])
            out_proj.weight.copy_(self.out_proj.weight[:, rows])
            if in_proj.bias is not None:
                in_proj.bias.copy_(self.in_proj.bias[qkv_rows])
            if out_proj.bias is not None:
                out_proj.bias.copy_(self.out_proj.bias)
        self.in_proj, self.out_proj, self.num_heads = in_proj, out_proj, heads - drop
        return drop

    def _project(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> list[torch.Tensor]:
        """q, k, v. Self-attention runs the packed projection once; otherwise each input is projected
        by the whole of it and keeps its own third (3x the work, but one quantized layer serves all)."""
        if query is key and key is value:
            return list(self.in_proj(query).chunk(3, dim=-1))
        return [self.in_proj(t).chunk(3, dim=-1)[i] for i, t in enumerate((query, key, value))]

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            same_kv = key is value
            same_q = query is key
            query = query.transpose(0, 1)
            key = query if same_q else key.transpose(0, 1)
            value = key if same_kv else value.transpose(0, 1)
        q, k, v = self._project(query, key, value)
        n, lq, width = q.shape
        heads, head_dim = self.num_heads, width // self.num_heads
        q, k, v = (t.reshape(n, t.shape[1], heads, head_dim).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
        scores = scores + _additive_mask(attn_mask, key_padding_mask, is_causal, n, heads, lq, k.shape[2], scores)
        weights = scores.softmax(dim=-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = self.out_proj((weights @ v).transpose(1, 2).reshape(n, lq, width))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_attn_weights else weights


def _additive_mask(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None, is_causal: bool,
                   n: int, heads: int, lq: int, lk: int, like: torch.Tensor) -> torch.Tensor | float:
    """The masks as one float term added to the scores (-inf where a bool mask is True)."""
    def as_float(mask: torch.Tensor) -> torch.Tensor:
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=like.dtype).masked_fill(mask, float("-inf"))
        return mask.to(like.dtype)

    total: torch.Tensor | float = 0.0
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(lq, lk, dtype=torch.bool).triu(1)
    if attn_mask is not None:
        m = as_float(attn_mask)
        total = total + (m.reshape(n, heads, lq, lk) if m.dim() == 3 else m)
    if key_padding_mask is not None:
        total = total + as_float(key_padding_mask).reshape(n, 1, 1, lk)
    return total


class UnfusedEncoderLayer(nn.TransformerEncoderLayer):
    """`nn.TransformerEncoderLayer` without its fused eval-mode fast path: always the module-by-module
    forward (what the layer computes in training mode), so every Linear runs as its own module."""

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
        return self.norm2(x + self._ff_block(x))


def can_unfuse(mha: nn.MultiheadAttention) -> str | None:
    """None when `Attention` can replace `mha`, else why not (these keep PyTorch's own float module)."""
    if not mha._qkv_same_embed_dim:
        return "separate q/k/v projection weights (kdim / vdim != embed_dim)"
    if mha.bias_k is not None or mha.add_zero_attn:
        return "add_bias_kv / add_zero_attn"
    return None


def unfuse_attention(model: nn.Module) -> nn.Module:
    """A copy of `model` (the model itself when it has no attention module) in which every
    `nn.MultiheadAttention` that `can_unfuse` is an `Attention`, every `nn.TransformerEncoderLayer`
    an `UnfusedEncoderLayer` and no `nn.TransformerEncoder` converts to nested tensors. A subclass of
    the encoder layer is left as it is, attention included (layers.float_layers keeps it float)."""
    kinds = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)
    if not any(isinstance(m, kinds) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    kept: list[str] = []  # subclassed encoder layers: their own code may rely on the fused path's attributes
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.TransformerEncoderLayer):
            if type(module) is nn.TransformerEncoderLayer:
                module.__class__ = UnfusedEncoderLayer
            else:
                kept.append(f"{name}.")
        elif isinstance(module, nn.TransformerEncoder):
            module.use_nested_tensor = False
        elif (isinstance(module, nn.MultiheadAttention) and can_unfuse(module) is None
              and not any(name.startswith(k) for k in kept)):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, Attention(module).train(module.training))
    return model
