"""Learned reward models: the two seeds' parametrisations, for a batch of seeds.

Both are linear in a flat parameter vector ``theta[..., F]`` (leading
dimensions: seeds) up to a constant: a segment's learned return is
``Σ_t theta[feature_t]`` plus a term that depends only on the segment length,
which cancels in every Bradley–Terry comparison of two equally long segments.
The learner exploits this (closed-form gradients). ``model[k]`` is seed k's
model, a view sharing ``theta``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from ..core.keys import Keys
from ..core.rollout import Trajectories


class _Batched:
    theta: torch.Tensor

    def __getitem__(self, index: int | slice | torch.Tensor):
        """The model of one seed (or a selection) of the batch, viewing the same parameters."""
        view = copy.copy(self)
        view.theta = self.theta[index]
        return view


class StateLogSoftmaxReward(_Batched):
    """``r(s) = log_softmax(θ)[s]``: the log of a learned target distribution over
    states (the gridworld seed; θ starts at 0, i.e. uniform). A segment's return
    is ``Σ_t θ[s_t] − T·logsumexp(θ)``."""

    def __init__(self, num_states: int, batch: Sequence[int] = (), device: torch.device | str | None = None) -> None:
        self.theta = torch.zeros(*batch, num_states, device=device)

    def reward(self) -> torch.Tensor:
        """[..., S] log target distribution."""
        return torch.log_softmax(self.theta, dim=-1)

    def distribution(self) -> torch.Tensor:
        """[..., S] the learned target distribution ``softmax(θ)``."""
        return torch.softmax(self.theta, dim=-1)

    def features(self, traj: Trajectories) -> torch.Tensor:
        """[..., B, T] index into ``theta`` of each step: the state."""
        return traj.states


class TableReward(_Batched):
    """``r(s, a) = θ[s, a]``: one free value per (position, token) (the string
    seed; θ starts as standard normal draws, one set per key)."""

    def __init__(self, num_states: int, num_actions: int, keys: Keys) -> None:
        self.theta = keys.normal(num_states * num_actions)
        self.num_actions = num_actions

    def reward(self) -> torch.Tensor:
        """[..., S, A] reward table (a view of ``theta``)."""
        return self.theta.view(*self.theta.shape[:-1], -1, self.num_actions)

    def features(self, traj: Trajectories) -> torch.Tensor:
        """[..., B, T] index into ``theta`` of each step: ``s·A + a``."""
        return traj.states * self.num_actions + traj.actions


RewardModel = StateLogSoftmaxReward | TableReward
