"""TPE over the search space itself, not over the parameters every finished trial happens to share;
and, for a share of its samples, neighbours of the feasible front (neighbours.py).

Optuna's multivariate TPE models the parameters that all finished trials hold (their intersection).
An enqueued plan records only the values the sampler is offered (space.FIXED_PLAN): where fp32 layers
are not offered, the fp32 baseline records no bit widths, the intersection would lose them all, and TPE
would sample each bit width on its own. Given the space (`search_space`, set once the study's
exclusions are known), TPE models all of it jointly, from the trials that hold every parameter.
"""

from __future__ import annotations

from typing import Any

import optuna

from autocomp.study import neighbours


class SpaceTPESampler(optuna.samplers.TPESampler):
    search_space: dict[str, Any] | None = None  # parameter -> distribution (SearchSpace.distributions)
    neighbour_share: float = 0.5  # of sampled trials: a neighbour of the feasible front instead of TPE's
    layer_weights: dict[str, float] | None = None  # how often a neighbour's step lands on each layer

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        if self.search_space is None:
            return super().infer_relative_search_space(study, trial)
        return {name: dist for name, dist in sorted(self.search_space.items()) if not dist.single()}

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        """Half of the time a local move from a feasible front point (exploitation TPE does poorly with
        few observations of many categorical parameters), else TPE's sample (exploration)."""
        if search_space and "fixed_params" not in trial.system_attrs and self._rng.rng.rand() < self.neighbour_share:
            found = neighbours.propose(study, search_space, self._rng.rng, self.layer_weights)
            if found is not None:
                params, parent = found
                study._storage.set_trial_user_attr(trial._trial_id, neighbours.ORIGIN_ATTR, {"neighbour_of": parent})
                return params
        return super().sample_relative(study, trial, search_space)
