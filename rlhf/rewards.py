"""Learned reward models: the two seeds' parametrisations.

Both are linear in a flat parameter vector ``theta`` up to a constant: a
segment's learned return is ``Σ_t theta[feature_t]`` plus a term that depends
only on the segment length, which cancels in every Bradley–Terry comparison of
two equally long segments. The learner exploits this (closed-form gradients).
"""

from __future__ import annotations

import torch

from .rollout import Trajectories


class StateLogSoftmaxReward:
    """``r(s) = log_softmax(θ)[s]``: the log of a learned target distribution over
    states (the gridworld seed; θ starts at 0, i.e. uniform). A segment's return
    is ``Σ_t θ[s_t] − T·logsumexp(θ)``."""

    def __init__(self, num_states: int) -> None:
        self.theta = torch.zeros(num_states)

    def reward(self) -> torch.Tensor:
        """[S] log target distribution."""
        return torch.log_softmax(self.theta, dim=-1)

    def distribution(self) -> torch.Tensor:
        """[S] the learned target distribution ``softmax(θ)``."""
        return torch.softmax(self.theta, dim=-1)

    def features(self, traj: Trajectories) -> torch.Tensor:
        """[B, T] index into ``theta`` of each step: the state."""
        return traj.states


class TableReward:
    """``r(s, a) = θ[s, a]``: one free value per (position, token) (the string
    seed; θ starts as standard normal draws)."""

    def __init__(self, num_states: int, num_actions: int, generator: torch.Generator) -> None:
        self.theta = torch.randn(num_states * num_actions, generator=generator)
        self.num_actions = num_actions

    def reward(self) -> torch.Tensor:
        """[S, A] reward table (a view of ``theta``)."""
        return self.theta.view(-1, self.num_actions)

    def features(self, traj: Trajectories) -> torch.Tensor:
        """[B, T] index into ``theta`` of each step: ``s·A + a``."""
        return traj.states * self.num_actions + traj.actions


RewardModel = StateLogSoftmaxReward | TableReward
