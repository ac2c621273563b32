"""The search space: which layers are searchable, their choices, and Plan <-> Optuna trial."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from autocomp.plan import CompressionPlan, LayerPlan

if TYPE_CHECKING:
    import optuna

    from autocomp.device.profiles import DeviceProfile

W_CHOICES = (4, 8, 32)  # 16 joins them on targets with fp16 arithmetic (SearchSpace.for_profile)
A_CHOICES = (8, 32)
PRUNE_CHOICES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)  # kept channels rounded to the target's multiple (prune.py)


@dataclass(frozen=True)
class SearchSpace:
    """Per layer: weight bits and input-activation bits; per pruning-group root: a prune ratio.

    Layers coupled by the dependency graph (e.g. a depthwise conv behind its producer) follow their
    group's root and get no ratio of their own; the output layer is never pruned.
    """

    layers: tuple[str, ...]
    prunable: tuple[str, ...]
    w_choices: tuple[int, ...] = W_CHOICES
    a_choices: tuple[int, ...] = A_CHOICES
    prune_choices: tuple[float, ...] = PRUNE_CHOICES
    # per parameter ("w_bits:<layer>", ...): values not offered, as each alone breaks the accuracy budget
    # (sensitivity.py); stored with the study apart from the space itself, which is what resuming checks
    excluded: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def for_profile(cls, layers: tuple[str, ...], prunable: tuple[str, ...], profile: DeviceProfile) -> SearchSpace:
        """The bit widths the device computes: int4 / int8 only where the profile lists them, and 16
        bits (fp16 weights and fp16 arithmetic) only where the target has fp16 arithmetic."""
        fp16 = profile.fp16_compute()
        w = tuple(b for b in (4, 8, 16, 32) if b == 32 or (b == 16 and fp16) or f"int{b}" in profile.precisions)
        a = tuple(b for b in (8, 16, 32) if b == 32 or (b == 16 and fp16) or (b == 8 and "int8" in profile.precisions))
        return cls(layers, prunable, w, a)

    def choices(self, param: str, values: tuple[Any, ...]) -> list[Any]:
        gone = self.excluded.get(param, [])
        return [v for v in values if v not in gone]

    def suggest(self, trial: optuna.Trial) -> CompressionPlan:
        layers = []
        for name in self.layers:
            w = trial.suggest_categorical(f"w_bits:{name}", self.choices(f"w_bits:{name}", self.w_choices))
            a = trial.suggest_categorical(f"a_bits:{name}", self.choices(f"a_bits:{name}", self.a_choices))
            p = (trial.suggest_categorical(f"prune:{name}", self.choices(f"prune:{name}", self.prune_choices))
                 if name in self.prunable else 0.0)
            layers.append(LayerPlan(name, int(w), int(a), float(p)))
        return CompressionPlan(tuple(layers))

    def params(self, plan: CompressionPlan) -> dict[str, Any]:
        """Trial parameters that make `suggest` return `plan` (for enqueue_trial)."""
        out: dict[str, Any] = {}
        for name in self.layers:
            lp = plan.layer(name)
            out[f"w_bits:{name}"] = lp.w_bits
            out[f"a_bits:{name}"] = lp.a_bits
            if name in self.prunable:
                out[f"prune:{name}"] = lp.prune
        return out

    def baselines(self) -> list[tuple[str, CompressionPlan]]:
        """The obvious uniform choices, evaluated first so the front is never worse than them."""
        u = CompressionPlan.uniform
        out = [("fp32", u(self.layers))]
        if 16 in self.w_choices and 16 in self.a_choices:
            out.append(("fp16", u(self.layers, 16, 16)))
        if 8 in self.w_choices and 8 in self.a_choices:
            out.append(("w8a8", u(self.layers, 8, 8)))
            if 0.25 in self.prune_choices and self.prunable:
                out.append(("w8a8 p0.25", u(self.layers, 8, 8, 0.25, self.prunable)))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["excluded"]
        return d
