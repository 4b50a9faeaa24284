"""Proxy rewards: what an over-optimisation path optimises instead of the truth (Gao et al., 2023).

* :func:`proxy_reward` / :func:`proxy_rewards`: the Bradley–Terry reward learned from a dataset of
  pairs, by the ``rlhf`` alignment method's own first stage (:func:`rlhf.policies.rlhf_method.fit_reward`:
  the task's reward model, full-batch Adam on sampled data, the exact maximum-likelihood fit on
  population data), so ``kl_regularized_policy(proxy_reward(task, data), β)`` is ``align(task, data,
  "rlhf", β).policy`` bit for bit. With ``ensemble=E`` (sampled data only), E members side by side, each
  on its own bootstrap resample of the pairs (B-Pref's and :func:`rlhf.train`'s bagging: member keys
  :func:`~rlhf.learning.ensemble.member_keys`, resamples :func:`~rlhf.learning.ensemble.bootstrap_weights`),
  aggregated as Coste et al. (2023) do:

  - ``mean``: the members' mean table (:class:`rlhf.Ensemble`'s);
  - ``min`` (worst-case optimisation): the elementwise minimum of the members' tables after each is
    centred under the reference: an ``[S, A]`` table loses ``Σ_a π_ref(a|s)·r_e(s, a)`` at each state, a
    state reward ``[S]`` its mean over states. Members are only identified up to such offsets (a
    string task's Bradley–Terry gradient never moves a position's mean, which keeps its random
    initial value), and uncentred the minimum would pick, per state, whichever member started
    lowest. The minimum is per step, so a trajectory's summed proxy is at most every member's
    (centred) return: ``Σ_t min_e r_e ≤ min_e Σ_t r_e``. On a string task (each position visited
    once, at a fixed step) per-state centring changes no member's preferences; on other MDPs it is a
    convention.

  Learned tables are float32 from sampled data (the learner's), float64 from population data.

* :func:`implicit_reward`: a direct-alignment policy's implicit reward ``β·log π(a|s)/π_ref(a|s)``
  (Rafailov et al., 2023), as a ``[S, A]`` table; for a time-indexed policy ``π̄`` is its steps averaged
  by its own state occupancy (:func:`rlhf.policies.evaluation.occupancy_average`), which on a string
  task is exactly step t's policy at position t. Exact (float64); ``−inf``/``+inf`` where π or π_ref
  excludes an action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..core.keys import Keys
from ..learning.ensemble import bootstrap_weights, member_keys
from ..learning.learner import LearnerConfig, RewardLearner
from .align import AlignOptions
from .data import PreferenceData, per_seed
from .evaluation import occupancy_average
from .reference import reference_policy
from .rlhf_method import INIT, fit_reward, stacked_pairs

AGGREGATES = ("mean", "min")
"""How an ensemble's members make one proxy (see the module docstring)."""
BOOTSTRAP = 4
"""The purpose (:meth:`rlhf.Keys.fold`) of the members' bootstrap resamples, as in :func:`rlhf.train`."""


def proxy_reward(task: Any, data: PreferenceData, seed: int = 0, ensemble: int = 1, aggregate: str = "mean",
                 reference: Any = None, **options: Any) -> torch.Tensor:
    """``r̂[S]`` or ``r̂[S, A]``: the proxy learned from ``data`` under seed ``seed`` (see the module
    docstring); element 0 of :func:`proxy_rewards` with one dataset."""
    return proxy_rewards(task, [data], [seed], ensemble, aggregate, reference, **options)[0]


def proxy_rewards(task: Any, data: PreferenceData | Sequence[PreferenceData], seeds: Sequence[int] = (0,),
                  ensemble: int = 1, aggregate: str = "mean", reference: Any = None, **options: Any) -> torch.Tensor:
    """``r̂[K, S]`` or ``[K, S, A]``: one proxy per seed, seed k learned from ``data[k]`` (or every seed
    from one dataset) as one batch; element k equals :func:`proxy_reward` of seed k alone, bit for bit.
    ``options``: :class:`rlhf.policies.align.AlignOptions` fields (``steps=``, ``lr=``, ``exact=``).
    ``reference`` (as :func:`rlhf.align` takes it) only centres the members of a ``min`` ensemble."""
    seeds, datasets = per_seed(data, seeds)
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise ValueError(f"ensemble must be an integer >= 1, got {ensemble!r}")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    opts = AlignOptions(**options)
    exact = all(d.is_population for d in datasets) if opts.exact is None else opts.exact
    keys = Keys.from_seeds(seeds, device=task.mdp.start.device)
    with torch.inference_mode(False):
        if ensemble == 1:
            model, _ = fit_reward(task, datasets, keys, opts, exact)
            return model.reward().detach().clone()
        if exact:
            raise ValueError("an ensemble's members fit bootstrap resamples of sampled pairs; population data has "
                             "one exact fit (pass exact=False to resample the population's pairs as data)")
        members = _fit_members(task, datasets, keys, ensemble, opts)            # [K, E, S(, A)]
    if aggregate == "mean":
        return members.mean(1)
    return centred(members, reference_policy(task, reference), per_state=members.dim() == 4).amin(1)


def _fit_members(task: Any, data: Sequence[PreferenceData], keys: Keys, size: int,
                 opts: AlignOptions) -> torch.Tensor:
    """``[K, E, S(, A)]``: E members per seed, member e of seed k on its bootstrap resample of seed k's pairs."""
    model = task.new_reward_model(member_keys(keys.fold(INIT), size))          # theta [K, E, F]
    first, second, prefer, answered = stacked_pairs(data)
    skips = not bool(answered.all())
    weights = bootstrap_weights(keys.fold(BOOTSTRAP), size, prefer.shape[-1])   # [K, E, P]
    learner = RewardLearner(model, LearnerConfig("adam", opts.lr, opts.steps, 0), may_skip=skips)
    learner.update(first, second, prefer, answered if skips else None, weights=weights)
    return model.reward().detach().clone()


def centred(tables: torch.Tensor, reference: torch.Tensor, per_state: bool = True) -> torch.Tensor:
    """Reward tables ``[..., S, A]`` less each state's expectation under ``reference[S, A]`` (``per_state``),
    or state rewards ``[..., S]`` less their mean over states (see the module docstring)."""
    if per_state:
        return tables - (tables.double() * reference).sum(-1, keepdim=True).to(tables.dtype)
    return tables - tables.mean(-1, keepdim=True)


def implicit_reward(task: Any, policy: torch.Tensor, reference: Any = None, beta: float = 1.0) -> torch.Tensor:
    """``r̂[S, A]`` float64: ``β·log π̄(a|s)/π_ref(a|s)`` (see the module docstring); ``policy`` ``[S, A]`` or
    time-indexed ``[H, S, A]``, ``reference`` as :func:`rlhf.align` takes it (None: uniform)."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    pi = torch.as_tensor(policy)
    if pi.dim() not in (2, 3):
        raise ValueError(f"policy must be [S, A] or [H, S, A], got {tuple(pi.shape)}")
    ref = reference_policy(task, reference)
    return beta * (torch.log(occupancy_average(task, pi)) - torch.log(ref))
