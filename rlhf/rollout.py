"""Batched rollouts: every trajectory of a batch advances in one tensor step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .mdp import TabularMDP


@dataclass(frozen=True)
class Trajectories:
    """A batch of fixed-length trajectories."""

    states: torch.Tensor
    """[B, T] int64, the state at step t (before acting)."""
    actions: torch.Tensor
    """[B, T] int64, the action executed at step t (after action noise)."""

    def __len__(self) -> int:
        return self.states.shape[0]

    def split(self) -> tuple["Trajectories", "Trajectories"]:
        """First and second half of the batch (the two sides of each pair)."""
        n = len(self) // 2
        return (Trajectories(self.states[:n], self.actions[:n]),
                Trajectories(self.states[n:], self.actions[n:]))


def _draw(cdf: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of a CDF ``[B, K]`` (one uniform per row)."""
    u = torch.rand(cdf.shape[0], 1, generator=generator)
    return torch.searchsorted(cdf, u).squeeze_(-1)


def _cdf(probs: torch.Tensor) -> torch.Tensor:
    """Row-wise CDF whose last entry is above 1, so rounding can never run past the end."""
    cdf = probs.cumsum(-1)
    cdf[..., -1] = 2.0
    return cdf


def step_rewards(reward: torch.Tensor, traj: Trajectories) -> torch.Tensor:
    """``[B, T]`` reward of each step: ``r[s_t]`` for a state reward, else ``r[s_t, a_t]``."""
    if reward.dim() == 1:
        return reward[traj.states]
    return reward[traj.states, traj.actions]


def rollout(
    mdp: TabularMDP,
    policy: torch.Tensor,
    num: int,
    length: int,
    generator: torch.Generator,
) -> Trajectories:
    """Roll out ``num`` trajectories of ``length`` steps from the start distribution.

    ``policy[s, a]`` is a stationary stochastic policy. Each step draws the
    chosen action, the action noise, and the successor for the whole batch.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    A = mdp.num_actions
    action_cdf = _cdf(policy)
    successor = _successor_sampler(mdp, generator)
    s = torch.multinomial(mdp.start, num, replacement=True, generator=generator)
    draws = torch.rand(length, num, 1, generator=generator).unbind(0)   # one per step and trajectory
    states, actions = [], []
    for u in draws:
        a = torch.searchsorted(action_cdf[s], u).squeeze_(-1)
        if mdp.action_noise:
            replaced = torch.rand(num, generator=generator) < mdp.action_noise
            a = torch.where(replaced, torch.randint(A, (num,), generator=generator), a)
        states.append(s)
        actions.append(a)
        s = successor(s, a)
    return Trajectories(torch.stack(states, 1), torch.stack(actions, 1))


def _successor_sampler(mdp: TabularMDP, g: torch.Generator):
    """``(s[B], a[B]) -> s'[B]``, chosen once per rollout (the loop body stays small).

    Successor CDFs are built here, once, not at every step."""
    if mdp.deterministic:
        successors = mdp.successors
        return lambda s, a: successors[s, a]
    if mdp.is_factored:
        move_cdf, moves = _cdf(mdp.move_probs), mdp.moves
        return lambda s, a: moves[_draw(move_cdf[a], g), s]
    next_cdf, next_states = _cdf(mdp.probs), mdp.next_states
    return lambda s, a: next_states[a, s, _draw(next_cdf[a, s], g)]
