"""Knox et al.'s random feature gridworlds ("Models of human preference for learning reward
functions", 2022): a family of small deterministic MDPs, one per seed, for measuring how often
a learned reward's greedy policy is near-optimal.

A grid of height × width cells, 4 moves (up, right, down, left; into a wall stays put). Each
cell has a type: one **goal** (terminal, reward g), **sheep** (terminal, reward s < 0),
**roadblocks** (a step's −1 plus a penalty), **coins** (−1 plus +1) and empty cells (−1). The
reward of a step is that of the cell entered; from a terminal cell every action stays there
with reward 0 (absorbing). Starts are uniform over non-terminal cells.

From its seed the generator draws, uniformly: height ∈ {3, 6, 10, 15}, width ∈ {5, 6, 10},
g ∈ {0, 1, 5, 10, 50}, s ∈ {−5, −10, −50, −100}, the roadblock penalty ∈ {−2, −5, −10}, and
the shares of cells holding sheep ∈ {0, 0.1, 0.3}, roadblocks ∈ {0, 0.1, 0.5, 0.8} and coins
∈ {0, 0.1, 0.2}. The goal takes one uniformly drawn cell; of the others, ``round(share × cells)``
take each type in the order sheep, roadblocks, coins (a shuffle; a type gets what is left
when the shares add up to more than the grid), so the proportions are exact, not sampled.
Everything comes from ``rlhf.Keys`` of the seed: the same world on any machine.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..learning.learner import LearnerConfig
from ..training.config import TrainConfig
from .tabular import TabularTask

HEIGHTS, WIDTHS = (3, 6, 10, 15), (5, 6, 10)
GOAL_REWARDS = (0.0, 1.0, 5.0, 10.0, 50.0)
SHEEP_REWARDS = (-5.0, -10.0, -50.0, -100.0)
ROADBLOCK_PENALTIES = (-2.0, -5.0, -10.0)
SHEEP_SHARES, ROADBLOCK_SHARES, COIN_SHARES = (0.0, 0.1, 0.3), (0.0, 0.1, 0.5, 0.8), (0.0, 0.1, 0.2)
EMPTY, GOAL, SHEEP, ROADBLOCK, COIN = range(5)
_MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))      # up (y+1), right (x+1), down, left, as in GridWorld
T = TypeVar("T")

KNOX_DEFAULTS = TrainConfig(
    budget=3000, teacher="boltzmann:1", pairs_per_round=300, segment_length=3, query="uniform",
    learner=LearnerConfig(optimizer="adam", lr=0.05, epochs=50, batch_size=0),
)
"""Knox et al.'s setting: segments of 3 steps; pairs from random behaviour."""


class RandomGridWorld(TabularTask):
    """One random feature gridworld (see the module docstring): a :class:`~rlhf.TabularTask` (a free
    reward table; success is Knox et al.'s, the greedy policy is near-optimal) built by the generator."""

    name = "random-gridworld"
    defaults = KNOX_DEFAULTS

    def __init__(self, seed: int = 0, horizon: int | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = seed
        key = Keys.from_seeds([seed])[0]
        draws = iter(key.bits(16).tolist())

        def pick(options: tuple[T, ...]) -> T:
            return options[next(draws) % len(options)]

        self.height, self.width = pick(HEIGHTS), pick(WIDTHS)
        self.goal_reward, self.sheep_reward = pick(GOAL_REWARDS), pick(SHEEP_REWARDS)
        self.roadblock_penalty = pick(ROADBLOCK_PENALTIES)
        self.shares = {SHEEP: pick(SHEEP_SHARES), ROADBLOCK: pick(ROADBLOCK_SHARES), COIN: pick(COIN_SHARES)}
        cells = self.height * self.width
        self.horizon = 2 * (self.height + self.width) if horizon is None else horizon     # checked by TabularTask
        # cell types: the goal, then exact shares of the rest, in a keyed shuffle
        order = torch.argsort(key.fold(1).bits(cells), stable=True)
        self.cell_types = torch.full((cells,), EMPTY, dtype=torch.int64)
        self.cell_types[order[0]] = GOAL
        position = 1
        for kind in (SHEEP, ROADBLOCK, COIN):
            count = min(round(self.shares[kind] * cells), cells - position)
            self.cell_types[order[position:position + count]] = kind
            position += count
        value = torch.tensor([-1.0, self.goal_reward, self.sheep_reward, -1.0 + self.roadblock_penalty, 0.0])
        cell_reward = value[self.cell_types]
        terminal = (self.cell_types == GOAL) | (self.cell_types == SHEEP)

        s = torch.arange(cells)
        x, y = s // self.height, s % self.height             # s = x·height + y, as GridWorld's x·N + y
        successors = []
        for dx, dy in _MOVES:
            nx, ny = (x + dx).clamp(0, self.width - 1), (y + dy).clamp(0, self.height - 1)
            successors.append(torch.where(terminal, s, nx * self.height + ny))
        next_states = torch.stack(successors)                                  # [A, S]
        true_reward = torch.where(terminal.unsqueeze(-1), 0.0, cell_reward[next_states].T)   # [S, A]
        start = (~terminal).float() / (~terminal).sum()
        mdp = TabularMDP.from_sparse(next_states.unsqueeze(-1), torch.ones(*next_states.shape, 1), start)
        super().__init__(mdp, true_reward, self.horizon, name=self.name, label=f"world {seed}",
                         defaults=KNOX_DEFAULTS)
        self.terminal = terminal

    def __repr__(self) -> str:
        return (f"RandomGridWorld(seed={self.seed}: {self.height}x{self.width}, goal {self.goal_reward:g}, "
                f"sheep {self.shares[SHEEP]:g} at {self.sheep_reward:g}, roadblocks {self.shares[ROADBLOCK]:g} "
                f"at {self.roadblock_penalty:g}, coins {self.shares[COIN]:g}, horizon {self.horizon})")
