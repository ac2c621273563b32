"""TPE over the search space itself, not over the parameters every finished trial happens to share;
and, for a share of its samples, neighbours of the feasible front (neighbours.py).

Optuna's multivariate TPE models the parameters that all finished trials hold (their intersection).
An enqueued plan records only the values the sampler is offered (space.FIXED_PLAN): where fp32 layers
are not offered, the fp32 baseline records no bit widths, the intersection would lose them all, and TPE
would sample each bit width on its own. Given the space (`search_space`, set once the study's
exclusions are known), TPE models all of it jointly, from the trials that hold every parameter.

Which of the two proposes a trial is drawn by Thompson sampling over their feasible rates in this study
(`record`): a fixed half let TPE's samples, nearly all screened out under a one-point budget, take half
of the trials however badly they did. A tenth of the trials stay TPE's (`explore`): neighbours alone
never leave the front's surroundings.
"""

from __future__ import annotations

from typing import Any

import optuna

from autocomp.study import neighbours

PROPOSERS = ("neighbour", "tpe")


def record(study: optuna.Study) -> dict[str, tuple[int, int]]:
    """Per proposer: (feasible, finished) among this study's sampled trials. A screened-out trial
    (pruned) counts as not feasible; enqueued plans and failed trials (a killed worker) do not count."""
    from autocomp.study.pareto import feasible

    out = {name: [0, 0] for name in PROPOSERS}
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in study.get_trials(deepcopy=False, states=states):
        if "fixed_params" in t.system_attrs:
            continue
        counts = out["neighbour" if neighbours.ORIGIN_ATTR in t.user_attrs else "tpe"]
        counts[0] += int(t.state == optuna.trial.TrialState.COMPLETE and feasible(t))
        counts[1] += 1
    return {name: (ok, n) for name, (ok, n) in out.items()}


class SpaceTPESampler(optuna.samplers.TPESampler):
    search_space: dict[str, Any] | None = None  # parameter -> distribution (SearchSpace.distributions)
    neighbour_share: float | None = None  # fixed share of neighbours; None: drawn by their record (`record`)
    explore: float = 0.1  # the least share of TPE's own samples when the share is drawn
    layer_weights: dict[str, float] | None = None  # how often a neighbour's step lands on each layer
    drops: dict[str, dict[str, float]] | None = None  # the sensitivity profile: prices a neighbour's step

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        if self.search_space is None:
            return super().infer_relative_search_space(study, trial)
        return {name: dist for name, dist in sorted(self.search_space.items()) if not dist.single()}

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        """A local move from a feasible front point (exploitation TPE does poorly with few observations
        of many categorical parameters) or TPE's sample (exploration), whichever `_neighbour_next` says."""
        if search_space and "fixed_params" not in trial.system_attrs and self._neighbour_next(study):
            found = neighbours.propose(study, search_space, self._rng.rng, self.layer_weights, self.drops)
            if found is not None:
                params, parent = found
                study._storage.set_trial_user_attr(trial._trial_id, neighbours.ORIGIN_ATTR, {"neighbour_of": parent})
                return params
        return super().sample_relative(study, trial, search_space)

    def _neighbour_next(self, study: optuna.Study) -> bool:
        rng = self._rng.rng
        if self.neighbour_share is not None:
            return bool(rng.rand() < self.neighbour_share)
        if rng.rand() < self.explore:
            return False
        (n_ok, n), (t_ok, t) = (record(study)[name] for name in PROPOSERS)
        return bool(rng.beta(1 + n_ok, 1 + n - n_ok) >= rng.beta(1 + t_ok, 1 + t - t_ok))
