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

    def split(self) -> tuple[Trajectories, Trajectories]:
        """First and second half of the batch (the two sides of each pair)."""
        n = len(self) // 2
        return (Trajectories(self.states[:n], self.actions[:n]),
                Trajectories(self.states[n:], self.actions[n:]))


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
    executed action and the successor together for the whole batch: one
    uniform per trajectory and step, one search in a :class:`_StepTable`.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    table = _StepTable(mdp, policy)
    state = torch.multinomial(mdp.start, num, replacement=True, generator=generator)
    draws = torch.randint(_RESOLUTION, (length, num), generator=generator).unbind(0)
    states, outcomes = [state], []
    for t, draw in enumerate(draws):
        outcomes.append(table.draw(state, draw))
        if t + 1 < length:
            state = table.successor.index_select(0, outcomes[-1])
            states.append(state)
    return Trajectories(torch.stack(states, 1), table.action(torch.stack(outcomes, 1)))


_RESOLUTION = 1 << 32
"""Probabilities are sampled in steps of 2⁻³² (integer arithmetic: no rounding at row ends)."""


class _StepTable:
    """Every state's outcomes (executed action a, successor slot k) laid end to end.

    Row ``s`` of the flat, sorted integer CDF spans ``[s·2³², (s+1)·2³²]``, so
    one ``searchsorted`` of ``s·2³² + u`` (u uniform in ``[0, 2³²)``) samples
    from the row of each trajectory's own state. Zero-probability outcomes are
    never drawn: their CDF entry equals the one before, and the search takes
    the first entry above the draw.
    """

    def __init__(self, mdp: TabularMDP, policy: torch.Tensor) -> None:
        layout = _layout(mdp)
        joint = mdp.executed_policy(policy).double().unsqueeze(-1).mul(layout.probs).view(mdp.num_states, -1)
        cdf = joint.cumsum_(-1)
        cdf = torch.floor(cdf / cdf[:, -1:] * _RESOLUTION).to(torch.int64)      # last entry 2³² exactly
        self.cdf = cdf.add_(layout.row_start).view(-1)
        self.successor, self._action = layout.successor, layout.action

    def draw(self, states: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """Flat outcome indices for trajectories in ``states``, given integer draws
        ``uniform`` in ``[0, 2³²)`` (overwritten)."""
        return torch.searchsorted(self.cdf, uniform.add_(states, alpha=_RESOLUTION), right=True)

    def action(self, outcomes: torch.Tensor) -> torch.Tensor:
        """The executed action of each flat outcome index."""
        return self._action[outcomes]


@dataclass(frozen=True)
class _Layout:
    """An MDP's outcomes ``o = (s·A + a)·K + k`` in one flat, state-major order."""

    probs: torch.Tensor        # [S, A, K] float64 P(slot k | s, a)
    successor: torch.Tensor    # [S·A·K] successor state of each outcome
    action: torch.Tensor       # [S·A·K] action of each outcome
    row_start: torch.Tensor    # [S, 1] s·2³², where state s's row starts in the CDF


def _layout(mdp: TabularMDP) -> _Layout:
    """The MDP's layout, built on its first rollout (a loop calls rollout every round)."""
    return mdp.cached("rollout.layout", lambda: _build_layout(mdp))


def _build_layout(mdp: TabularMDP) -> _Layout:
    next_states, probs = mdp.next_states, mdp.probs                        # [A, S, K]
    A, S, K = next_states.shape
    return _Layout(
        probs=probs.transpose(0, 1).double(),
        successor=next_states.transpose(0, 1).reshape(-1),
        action=torch.arange(A).repeat_interleave(K).repeat(S),
        row_start=torch.arange(S).unsqueeze(-1) * _RESOLUTION,
    )
