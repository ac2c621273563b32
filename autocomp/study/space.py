"""The search space: which layers are searchable, their choices, and Plan <-> Optuna trial."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from autocomp.plan import CompressionPlan, LayerPlan, parse_weight_choice, weight_choice

if TYPE_CHECKING:
    import optuna

    from autocomp.device.profiles import DeviceProfile

# weight choices: bits, or "k<bits>" for shared weights (a k-means codebook, plan.LayerPlan); 16 joins
# them on targets with fp16 arithmetic (SearchSpace.for_profile)
W_CHOICES: tuple[int | str, ...] = (2, 4, 8, 32, "k2", "k4")
A_CHOICES = (8, 32)
PRUNE_CHOICES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)  # kept channels rounded to the target's multiple (prune.py)
FIXED_PLAN = "fixed_plan"  # user attribute of an enqueued trial: the plan it measures, whatever the sampler is offered


@dataclass(frozen=True)
class SearchSpace:
    """Per layer: weight bits and input-activation bits; per pruning-group root: a prune ratio.

    Layers coupled by the dependency graph (e.g. a depthwise conv behind its producer) follow their
    group's root and get no ratio of their own; the output layer is never pruned.
    """

    layers: tuple[str, ...]
    prunable: tuple[str, ...]
    w_choices: tuple[int | str, ...] = W_CHOICES
    a_choices: tuple[int, ...] = A_CHOICES
    prune_choices: tuple[float, ...] = PRUNE_CHOICES
    # per parameter ("w_bits:<layer>", ...): values not offered, as each alone breaks the accuracy budget
    # (sensitivity.py); stored with the study apart from the space itself, which is what resuming checks
    excluded: dict[str, list[Any]] = field(default_factory=dict)
    # per prunable layer: ratios that prune it as a smaller one does (prune.same_channels), not offered;
    # stored with the study apart from the space too (settings["redundant"]): a study resumes with its own
    redundant: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def for_profile(cls, layers: tuple[str, ...], prunable: tuple[str, ...], profile: DeviceProfile) -> SearchSpace:
        """The bit widths the device computes: int8 only where the profile lists it; weights below 8 bits
        (2 and 4 bits, shared 2- and 4-bit codebooks: unpacked to int8 on the device) only where it lists
        int4 too; 16 bits (fp16 weights and fp16 arithmetic) only where the target has fp16 arithmetic."""
        fp16 = profile.fp16_compute()
        int8 = "int8" in profile.precisions
        sub_byte = int8 and "int4" in profile.precisions
        w = tuple(b for b in W_CHOICES + (16,) if b == 32 or (b == 16 and fp16) or (b == 8 and int8)
                  or (b not in (8, 16, 32) and sub_byte))
        w = tuple(sorted((b for b in w if isinstance(b, int)))) + tuple(b for b in w if isinstance(b, str))
        a = tuple(b for b in (8, 16, 32) if b == 32 or (b == 16 and fp16) or (b == 8 and "int8" in profile.precisions))
        return cls(layers, prunable, w, a)

    @classmethod
    def for_context(cls, ctx: Any) -> SearchSpace:
        """`for_profile` for the context's model and device, less the redundant prune ratios at the
        target's channel multiple."""
        from autocomp.compress.prune import same_channels

        space = cls.for_profile(tuple(ctx.layers), tuple(ctx.prunable), ctx.profile)
        return replace(space, redundant=same_channels(ctx.model, space.prunable, space.prune_choices,
                                                      ctx.channel_multiple()))

    def choices(self, param: str, values: tuple[Any, ...]) -> list[Any]:
        kind, name = param.split(":", 1)
        gone = [*self.excluded.get(param, []), *(self.redundant.get(name, []) if kind == "prune" else [])]
        return [v for v in values if v not in gone]

    def distributions(self) -> dict[str, optuna.distributions.CategoricalDistribution]:
        """Every parameter `suggest` asks for, with the choices it offers (the sampler's search space)."""
        from optuna.distributions import CategoricalDistribution

        out = {}
        for name in self.layers:
            out[f"w_bits:{name}"] = CategoricalDistribution(self.choices(f"w_bits:{name}", self.w_choices))
            out[f"a_bits:{name}"] = CategoricalDistribution(self.choices(f"a_bits:{name}", self.a_choices))
            if name in self.prunable:
                out[f"prune:{name}"] = CategoricalDistribution(self.choices(f"prune:{name}", self.prune_choices))
        return out

    def suggest(self, trial: optuna.Trial) -> CompressionPlan:
        """The trial's plan: the one it was enqueued with (FIXED_PLAN), else the sampler's.

        An enqueued plan may hold values the sampler is not offered (fp32 layers in the fp32 baseline
        where int8 costs nothing, see sensitivity.excluded): those are not suggested, the others are
        (fixed by `params`), so the sampler still learns from the plan's offered choices."""
        fixed = trial.user_attrs.get(FIXED_PLAN)
        plan = CompressionPlan.from_dict(fixed) if fixed is not None else None
        values = {param: trial.suggest_categorical(param, dist.choices) for param, dist in self.distributions().items()
                  if plan is None or self.value(plan, param) in dist.choices}
        if plan is not None:
            return plan
        layers = []
        for name in self.layers:
            w_bits, shared = parse_weight_choice(values[f"w_bits:{name}"])
            layers.append(LayerPlan(name, w_bits, int(values[f"a_bits:{name}"]), float(values.get(f"prune:{name}", 0.0)),
                                    shared))
        return CompressionPlan(tuple(layers))

    @staticmethod
    def value(plan: CompressionPlan, param: str) -> Any:
        """`plan`'s value of a trial parameter ("w_bits:<layer>" (plan.weight_choice), "a_bits:<layer>",
        "prune:<layer>")."""
        kind, name = param.split(":", 1)
        lp = plan.layer(name)
        return {"w_bits": weight_choice(lp), "a_bits": lp.a_bits, "prune": lp.prune}[kind]

    def params(self, plan: CompressionPlan) -> dict[str, Any]:
        """Trial parameters of `plan` that the sampler is offered (enqueue_trial fixes them)."""
        dists = self.distributions()
        return {param: self.value(plan, param) for param, dist in dists.items()
                if self.value(plan, param) in dist.choices}

    def enqueue(self, study: optuna.Study, plan: CompressionPlan) -> None:
        """Queue `plan` to be measured next as it is, whether or not the sampler may propose it."""
        study.enqueue_trial(self.params(plan), user_attrs={FIXED_PLAN: plan.to_dict()})

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
        del d["excluded"], d["redundant"]
        return d
