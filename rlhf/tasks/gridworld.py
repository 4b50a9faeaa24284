"""The gridworld task of the first teaching example (the ``seed-gridworld`` preset).

An N×N grid; state ``s = x·N + y`` for cell (x, y). Actions 0..4 are up
(y+1), right (x+1), down (y−1), left (x−1), stay; moves into a wall stay put.
With ``slip`` the move goes to each perpendicular neighbour with probability
slip/2 (stay never slips). The true reward is ``log(target + 1e-6)`` with the
target uniform over the goal cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.truths import TaskTruths
from ..learning.learner import LearnerConfig
from ..learning.rewards import StateLogSoftmaxReward
from ..metrics import epic_distance, near_optimal, normalized_regret, scaled_return_of_reward, total_variation
from ..training.config import TrainConfig

ACTIONS = ("up", "right", "down", "left", "stay")
_PERPENDICULAR = ((3, 1), (0, 2), (3, 1), (0, 2), (4, 4))   # slip targets of each action
REWARD_EPS = 1e-6
CONVERGED_MAX_REGRET = 0.1
"""``converged`` = the learned reward's argmax is a goal and planning on it loses
at most this fraction of the truth's advantage over a random policy."""

PRESET_DEFAULTS = TrainConfig(
    budget=20_000, teacher="boltzmann:1", pairs_per_round=100, query="on-policy",
    learner=LearnerConfig(optimizer="adam", lr=1e-2, epochs=50, batch_size=0),
)


class GridWorld:
    """N×N gridworld with slip; start cells uniform, target uniform over goal cells."""

    name = "gridworld"
    defaults = PRESET_DEFAULTS

    def __init__(
        self,
        size: int = 5,
        slip: float = 0.0,
        start: Sequence[Sequence[int]] | None = None,
        goal: Sequence[Sequence[int]] | None = None,
        horizon: int = 30,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        if not 0.0 <= slip < 1.0:
            raise ValueError(f"slip must be in [0, 1), got {slip!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
        self.size, self.slip, self.horizon = size, float(slip), horizon
        goal_cells = [(size - 1, size - 1)] if goal is None else [tuple(c) for c in goal]
        if not goal_cells:
            raise ValueError("goal must name at least one cell, got []")
        self.goal_states = torch.tensor([self._state("goal", c) for c in goal_cells])
        S = size * size
        target = torch.zeros(S)
        target[self.goal_states] = 1.0 / len(set(goal_cells))
        self.target = target
        self.true_reward = torch.log(target + REWARD_EPS)

        if start is None:   # the example's default: every non-goal cell
            start_mask = torch.ones(S, dtype=torch.bool)
            start_mask[self.goal_states] = False
        else:
            start_mask = torch.zeros(S, dtype=torch.bool)
            start_mask[[self._state("start", c) for c in start]] = True
            if not start_mask.any():
                raise ValueError("start must name at least one cell, got []")
        start_dist = start_mask.float() / start_mask.sum()
        self.mdp = TabularMDP.from_moves(grid_moves(size), slip_move_probs(slip), start_dist)
        self.truths = TaskTruths.of(self)

    def _state(self, field: str, cell: Sequence[int]) -> int:
        try:
            x, y = (int(v) for v in cell)
        except (TypeError, ValueError):
            raise ValueError(f"{field} cells must be (x, y) pairs, got {cell!r}") from None
        if not (0 <= x < self.size and 0 <= y < self.size):
            raise ValueError(f"{field} cell {tuple(cell)!r} is outside the {self.size}x{self.size} grid")
        return x * self.size + y

    def __repr__(self) -> str:
        return f"GridWorld(size={self.size}, slip={self.slip}, horizon={self.horizon})"

    # ------------------------------------------------------------ protocol
    def new_reward_model(self, keys: Keys) -> StateLogSoftmaxReward:
        return StateLogSoftmaxReward(self.mdp.num_states, keys.shape, keys.device)

    def reward_range(self) -> tuple[float, float]:
        return math.log(REWARD_EPS), float(self.true_reward.max())

    def convergence_metrics(self, reward_model: StateLogSoftmaxReward, config: TrainConfig) -> dict[str, float]:
        with torch.no_grad():
            learned = reward_model.reward()
            goal_hit = bool(torch.isin(learned.argmax(), self.goal_states))
            policy_regret = normalized_regret(self.mdp, learned, self.true_reward, self.horizon,
                                              config.discount, config.temperature, truths=self.truths)
            scaled, near = near_optimal(scaled_return_of_reward(self.mdp, learned, self.true_reward, self.horizon,
                                                                config.discount, truths=self.truths))
            return {
                "converged": float(goal_hit and policy_regret <= CONVERGED_MAX_REGRET),
                "goal_hit": float(goal_hit),
                "tv": total_variation(reward_model.distribution(), self.target),
                "regret": policy_regret,             # the metric (column "regret"), not the preference model
                "epic": epic_distance(learned, self.true_reward),
                "scaled_return": scaled,
                "near_optimal": near,
            }

    # -------------------------------------------------------------- helpers
    def as_grid(self, values: torch.Tensor) -> torch.Tensor:
        """``[S]`` state values as an ``[N, N]`` image indexed ``[y, x]`` (row 0 = y 0)."""
        return values.reshape(self.size, self.size).T

    def cell(self, state: torch.Tensor) -> torch.Tensor:
        """``[..., 2]`` (x, y) of state indices."""
        return torch.stack([state // self.size, state % self.size], dim=-1)


def grid_moves(size: int) -> torch.Tensor:
    """``[5, S]`` successor of each move in each cell, by index arithmetic (O(S))."""
    s = torch.arange(size * size)
    x, y = s // size, s % size
    up = x * size + (y + 1).clamp_(max=size - 1)
    right = (x + 1).clamp_(max=size - 1) * size + y
    down = x * size + (y - 1).clamp_(min=0)
    left = (x - 1).clamp_(min=0) * size + y
    return torch.stack([up, right, down, left, s])


def slip_move_probs(slip: float) -> torch.Tensor:
    """``[5, 5]`` P(move | action): the intended move w.p. 1 − slip, each perpendicular w.p. slip/2."""
    probs = (1.0 - slip) * torch.eye(len(ACTIONS))
    for action, (left, right) in enumerate(_PERPENDICULAR):
        probs[action, left] += slip / 2
        probs[action, right] += slip / 2
    return probs
