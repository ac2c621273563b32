"""CompressionPlan: what to do to each searchable layer, as plain data.

A plan is saved in trial attributes and manifests, so it carries `_type` and `_version` and loads only
what it knows (the torchao config shape, see shared/STYLE.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from autocomp.errors import UserError

W_BITS_ALLOWED = (2, 4, 8, 16, 32)
A_BITS_ALLOWED = (8, 16, 32)
SHARED_BITS_ALLOWED = (2, 4)  # index widths of a shared-weight codebook (whole indices per byte)
MAX_PRUNE = 0.75  # the widest ratio the search space offers; beyond it layers keep too few channels

# Distillation steps after pruning by default (`--finetune-steps`; compress/distill.py). On FashionNet,
# 2 cores: 150 steps of 16 take ~5 s and bring w8a8 with 25% of channels pruned from 0.761 to 0.888
# (fp32 0.900; 400 steps of 64: 0.890 in 40 s), so a candidate stays well inside 20 s.
DEFAULT_FINETUNE_STEPS = 150

_TYPE = "autocomp.CompressionPlan"
_KEYS = {"name", "w_bits", "a_bits", "prune"}
_VERSION = 1


@dataclass(frozen=True)
class LayerPlan:
    """Weight bits, activation (input) bits and the output-channel prune ratio of one layer.

    `shared`: weight sharing. The weights take 2^w_bits values, one int8 codebook per layer found by
    k-means on the per-channel int8 grid (compress/codebook.py), and are stored as packed w_bits-bit
    indices plus the codebook; uniform w_bits weights take evenly spaced values instead (w2: three)."""

    name: str
    w_bits: int = 32
    a_bits: int = 32
    prune: float = 0.0
    shared: bool = False

    def __post_init__(self) -> None:
        if self.w_bits not in W_BITS_ALLOWED:
            raise UserError(f"layer {self.name!r}: w_bits={self.w_bits} is not one of {W_BITS_ALLOWED}")
        if self.shared and self.w_bits not in SHARED_BITS_ALLOWED:
            raise UserError(f"layer {self.name!r}: shared weights need w_bits in {SHARED_BITS_ALLOWED} "
                            f"(the codebook's index width), got {self.w_bits}")
        if self.a_bits not in A_BITS_ALLOWED:
            raise UserError(f"layer {self.name!r}: a_bits={self.a_bits} is not one of {A_BITS_ALLOWED}")
        if not 0.0 <= self.prune <= MAX_PRUNE:
            raise UserError(f"layer {self.name!r}: prune={self.prune} is outside [0, {MAX_PRUNE}]")


@dataclass(frozen=True)
class CompressionPlan:
    """Ordered per-layer plans; layers not listed stay fp32 and unpruned."""

    layers: tuple[LayerPlan, ...] = field(default_factory=tuple)

    @classmethod
    def uniform(
        cls,
        names: Iterable[str],
        w_bits: int = 32,
        a_bits: int = 32,
        prune: float = 0.0,
        prunable: Iterable[str] = (),
        shared: bool = False,
    ) -> CompressionPlan:
        """The same settings on every layer; prune applies only to the prunable ones."""
        can_prune = set(prunable)
        return cls(
            tuple(
                LayerPlan(n, w_bits, a_bits, prune if n in can_prune else 0.0, shared) for n in names
            )
        )

    def layer(self, name: str) -> LayerPlan:
        for lp in self.layers:
            if lp.name == name:
                return lp
        return LayerPlan(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": _TYPE,
            "_version": _VERSION,
            "layers": [_layer_dict(lp) for lp in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Any) -> CompressionPlan:
        if not isinstance(data, dict) or data.get("_type") != _TYPE:
            raise UserError(f"not a compression plan: expected a JSON object with _type={_TYPE!r}")
        if data.get("_version") != _VERSION:
            raise UserError(
                f"compression plan version {data.get('_version')!r} is not supported "
                f"(this autocomp reads version {_VERSION})"
            )
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise UserError("malformed compression plan: 'layers' must be a list of layer objects")
        out = []
        for i, d in enumerate(layers):
            if not isinstance(d, dict) or not _KEYS <= set(d) <= _KEYS | {"shared"}:
                raise UserError(f"malformed compression plan: layer {i} must have the keys name, w_bits, a_bits, "
                                f"prune and optionally shared (got {sorted(d) if isinstance(d, dict) else type(d).__name__})")
            for key, types in (("name", (str,)), ("w_bits", (int,)), ("a_bits", (int,)), ("prune", (int, float))):
                if not isinstance(d[key], types) or isinstance(d[key], bool):
                    raise UserError(f"malformed compression plan: layer {i} ({d.get('name')!r}): {key} must be "
                                    f"{' or '.join(t.__name__ for t in types)}, got {type(d[key]).__name__} {d[key]!r}")
            if not isinstance(d.get("shared", False), bool):
                raise UserError(f"malformed compression plan: layer {i} ({d.get('name')!r}): shared must be true or "
                                f"false, got {d['shared']!r}")
            out.append(LayerPlan(d["name"], d["w_bits"], d["a_bits"], float(d["prune"]), d.get("shared", False)))
        return cls(tuple(out))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """A stable content hash: equal plans share compiled artifacts and measurements."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def summary(self) -> str:
        """A short human label, e.g. 'w8a8' or 'w4-32a8-32 p0.25-0.5'."""
        if not self.layers:
            return "fp32"
        ws = sorted({lp.w_bits for lp in self.layers if not lp.shared})
        as_ = sorted({lp.a_bits for lp in self.layers})
        ps = sorted({lp.prune for lp in self.layers if lp.prune > 0})
        ks = sorted({lp.w_bits for lp in self.layers if lp.shared})
        w = "" if not ws else (f"w{ws[0]}" if len(ws) == 1 else f"w{ws[0]}-{ws[-1]}")
        if ks:  # shared weights: "k2" (2-bit codebook indices), "w8k4" (some layers shared)
            w += f"k{ks[0]}" if len(ks) == 1 else f"k{ks[0]}-{ks[-1]}"
        a = f"a{as_[0]}" if len(as_) == 1 else f"a{as_[0]}-{as_[-1]}"
        text = "fp32" if w == "w32" and a == "a32" else f"{w}{a}"
        if ps:  # the ratios of the pruned layers; the others keep every channel
            text += f" p{ps[0]:g}" if len(ps) == 1 else f" p{ps[0]:g}-{ps[-1]:g}"
        return text


def _layer_dict(lp: LayerPlan) -> dict[str, Any]:
    """A layer as plan JSON: `shared` only where true, so plans without it keep their keys and hashes."""
    d: dict[str, Any] = {"name": lp.name, "w_bits": lp.w_bits, "a_bits": lp.a_bits, "prune": lp.prune}
    if lp.shared:
        d["shared"] = True
    return d


def weight_choice(lp: LayerPlan) -> int | str:
    """A layer's weights as one search choice: the bit width, or "k<bits>" for a shared-weight codebook."""
    return f"k{lp.w_bits}" if lp.shared else lp.w_bits


def parse_weight_choice(choice: int | str) -> tuple[int, bool]:
    """(w_bits, shared) of a weight choice (inverse of weight_choice)."""
    if isinstance(choice, str) and choice.startswith("k"):
        return int(choice[1:]), True
    return int(choice), False


def stored_bits(choice: int | str) -> int:
    """Bits stored per weight by a weight choice (a codebook's indices: its index width)."""
    return parse_weight_choice(choice)[0]
