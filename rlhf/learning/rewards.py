"""Learned reward models: the protocol, and the two presets' parametrisations for a batch of seeds.

A reward model (:class:`RewardModel`) is linear in a flat parameter vector
``theta[..., F]`` (leading dimensions: seeds) up to a constant: a segment's
learned return is ``Σ_t theta[feature_t]`` plus a term that depends only on the
segment length, which cancels in every Bradley–Terry comparison of two equally
long segments. The learner exploits this (closed-form gradients). ``model[k]``
is seed k's model, a view sharing ``theta``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from ..core.keys import Keys
from ..core.rollout import Trajectories


@runtime_checkable
class LearnedReward(Protocol):
    """What planning, query rules and metrics read of a learned reward, one per seed of a batch:
    a :class:`RewardModel`, or an :class:`~rlhf.Ensemble` of them."""

    def reward(self) -> torch.Tensor:
        """``[..., S]`` (a state reward) or ``[..., S, A]``, leading dimensions seeds."""
        ...

    def features(self, traj: Trajectories) -> torch.Tensor:
        """``[..., B, T]`` int64: each step's index into the flat reward (and into ``theta``)."""
        ...

    def __getitem__(self, index: int | slice | torch.Tensor) -> LearnedReward:
        """Seed ``index``'s (or a selection of seeds') model, viewing the same parameters."""
        ...


@runtime_checkable
class RewardModel(LearnedReward, Protocol):
    """A learned reward the Bradley–Terry learner fits: linear in ``theta[..., F]`` up to a constant
    (see the module docstring), ``features`` indexing ``theta``. A task's ``new_reward_model`` makes one."""

    theta: torch.Tensor
    """``[..., F]`` the parameters, leading dimensions seeds (and ensemble members)."""

    def __getitem__(self, index: int | slice | torch.Tensor) -> RewardModel:
        """Seed ``index``'s (or a selection of seeds') model, a view sharing ``theta``."""
        ...


class _Batched:
    theta: torch.Tensor

    def __getitem__(self, index: int | slice | torch.Tensor):
        """The model of one seed (or a selection) of the batch, viewing the same parameters."""
        view = copy.copy(self)
        view.theta = self.theta[index]
        return view


class StateLogSoftmaxReward(_Batched):
    """``r(s) = log_softmax(θ)[s]``: the log of a learned target distribution over
    states (the gridworld preset's; θ starts at 0, i.e. uniform). A segment's return
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
    """``r(s, a) = θ[s, a]``: one free value per (state, action), e.g. per (position, token) (the
    string preset's; θ starts as standard normal draws, one set per key)."""

    def __init__(self, num_states: int, num_actions: int, keys: Keys) -> None:
        self.theta = keys.normal(num_states * num_actions)
        self.num_actions = num_actions

    def reward(self) -> torch.Tensor:
        """[..., S, A] reward table (a view of ``theta``)."""
        return self.theta.view(*self.theta.shape[:-1], -1, self.num_actions)

    def features(self, traj: Trajectories) -> torch.Tensor:
        """[..., B, T] index into ``theta`` of each step: ``s·A + a``."""
        return traj.states * self.num_actions + traj.actions

