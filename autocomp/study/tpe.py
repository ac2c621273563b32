"""TPE over the search space itself, not over the parameters every finished trial happens to share.

Optuna's multivariate TPE models the parameters that all finished trials hold (their intersection).
An enqueued plan records only the values the sampler is offered (space.FIXED_PLAN): where fp32 layers
are not offered, the fp32 baseline records no bit widths, the intersection would lose them all, and TPE
would sample each bit width on its own. Given the space (`search_space`, set once the study's
exclusions are known), TPE models all of it jointly, from the trials that hold every parameter.
"""

from __future__ import annotations

from typing import Any

import optuna


class SpaceTPESampler(optuna.samplers.TPESampler):
    search_space: dict[str, Any] | None = None  # parameter -> distribution (SearchSpace.distributions)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        if self.search_space is None:
            return super().infer_relative_search_space(study, trial)
        return {name: dist for name, dist in sorted(self.search_space.items()) if not dist.single()}
