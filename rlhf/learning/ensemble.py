"""Reward ensembles: E models fitted side by side, each on a bootstrap resample (bagging).

As in B-Pref (Lee et al., 2021) and ``imitation``'s ``RewardEnsemble``, every
member sees its own resample, drawn with replacement, of each round's pairs;
planning and the metrics use the members' mean reward. The members are one
parameter tensor ``theta[..., E, F]`` (the seeds' batch, then members), and a
resample is a vector of multiplicities (:func:`bootstrap_weights`), so the
learner fits all members at once on their seed's pairs, without copying them.
"""

from __future__ import annotations

import copy
import functools

import torch

from ..core.keys import Keys
from ..core.rollout import Trajectories
from .rewards import RewardModel


def member_mean(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The mean over ``dim`` (ensemble members), summed member by member in order: the
    same arithmetic for every element, wherever it sits in a batch."""
    return functools.reduce(torch.add, x.unbind(dim)) / x.shape[dim]


class Ensemble:
    """The mean of a reward model's members: ``members.theta[..., E, F]``, member dimension last
    but one. A :class:`~rlhf.learning.rewards.LearnedReward`, with what the loop and the tasks'
    metrics read of a model: ``reward``, ``distribution`` (state rewards), ``features`` and ``[k]``
    (seed k's ensemble)."""

    def __init__(self, members: RewardModel) -> None:
        self.members = members

    @property
    def size(self) -> int:
        return self.members.theta.shape[-2]

    def reward(self) -> torch.Tensor:
        """The members' mean reward, ``[..., S]`` or ``[..., S, A]``."""
        return member_mean(self.members.reward(), self.members.theta.dim() - 2)

    def distribution(self) -> torch.Tensor:
        """``softmax`` of the mean (log-distribution) reward: for state rewards that are log
        distributions (the gridworld's), the members' normalised geometric mean."""
        return torch.softmax(self.reward(), dim=-1)

    def features(self, traj: Trajectories) -> torch.Tensor:
        return self.members.features(traj)

    def __getitem__(self, index: int | slice | torch.Tensor) -> Ensemble:
        view = copy.copy(self)
        view.members = self.members[index]
        return view


def member_keys(keys: Keys, size: int) -> Keys:
    """``[*keys.shape, size]`` keys, member e's ``keys.fold(e)``: independent initialisations."""
    return Keys(torch.stack([keys.fold(e).key for e in range(size)], dim=-1))


def bootstrap_indices(keys: Keys, size: int, n: int) -> torch.Tensor:
    """``[*keys.shape, size, n]`` int64: member e's resample of n pairs, drawn uniformly with
    replacement under ``keys.fold(e)`` (exact: ⌊bits · n / 2³²⌋ of 32-bit draws)."""
    draws = torch.stack([keys.fold(e).bits(n) for e in range(size)], dim=-2)
    return (draws * n) >> 32


def bootstrap_weights(keys: Keys, size: int, n: int) -> torch.Tensor:
    """``[*keys.shape, size, n]`` float32: how many times member e's resample (:func:`bootstrap_indices`)
    holds pair i; each row sums to n. The learner weights the pairs by it rather than copying them."""
    chosen = bootstrap_indices(keys, size, n)
    ones = torch.ones(1, device=chosen.device).expand(chosen.shape)
    return torch.zeros(chosen.shape, device=chosen.device).scatter_add_(-1, chosen, ones)
