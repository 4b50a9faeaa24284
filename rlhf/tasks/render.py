"""Text pictures of the built-in tasks for a person labelling pairs (the registry's ``render`` hooks).

Each picture is plain text that fits an 80 x 24 terminal beside the learned reward: the string
task's two strings aligned by position, the gridworld's two trajectories side by side, and
what the reward learned so far means (the greedy string, or a heatmap over the grid). The
labelling program (``python -m bench label``) shows them; nothing here draws or reads input.
"""

from __future__ import annotations

import torch

from ..core.rollout import Trajectories
from .gridworld import GridWorld
from .strings import StringTask

SHADES = "░▒▓█"
"""Heatmap shades, lowest to highest."""


def strings_pair(task: StringTask, first: Trajectories, second: Trajectories) -> str:
    """The two strings one above the other, aligned by position. Positions count from 0, as
    everywhere else: the task's states, the seed's reward table ``(i, token)`` and the report's
    ``seed_strings_tables.png`` (``pos 0`` …), like the gridworld's coordinates."""
    width = len(str(len(task.target) - 1)) + 1

    def row(traj: Trajectories) -> str:
        return "".join(task.vocab[int(a)].rjust(width) for a in traj.actions)

    header = "".join(str(i).rjust(width) for i in range(len(first.actions)))
    return f"position {header}\n   [1]   {row(first)}\n   [2]   {row(second)}"


def strings_learned(task: StringTask, reward: torch.Tensor) -> str:
    """The greedy string of a learned ``[L, V]`` table, and the target."""
    return f"learned string:\n{task.decode(reward)}   (target {task.target})"


def grid_pair(task: GridWorld, first: Trajectories, second: Trajectories) -> str:
    """The two trajectories on the grid, side by side: ``S`` start, ``1``…``9`` the later steps
    (a cell shows its last visit; the start always shows ``S``), ``G`` the goal, ``·`` other
    cells; y grows upwards."""
    grids = [_grid_cells(task, traj) for traj in (first, second)]
    n = task.size
    lines = ["[1]".ljust(2 * n + 1) + "[2]"]
    for y in range(n - 1, -1, -1):
        lines.append("  ".join(" ".join(grid[x][y] for x in range(n)) for grid in grids))
    return "\n".join(lines)


def _grid_cells(task: GridWorld, traj: Trajectories) -> list[list[str]]:
    n = task.size
    cells = [["·"] * n for _ in range(n)]
    for s in task.goal_states.tolist():
        cells[s // n][s % n] = "G"
    states = traj.states.tolist()
    for t, s in enumerate(states[1:], start=1):
        cells[s // n][s % n] = str(min(t, 9))
    cells[states[0] // n][states[0] % n] = "S"             # the start stays visible when revisited
    return cells


def grid_heatmap(task: GridWorld, reward: torch.Tensor) -> str:
    """A learned state reward as shades (darkest = lowest), top row y = N − 1."""
    grid = task.as_grid(reward.reshape(-1)[: task.size ** 2].float())
    low, high = float(grid.min()), float(grid.max())
    scale = (len(SHADES) - 1) / (high - low) if high > low else 0.0
    rows = []
    for y in range(task.size - 1, -1, -1):
        rows.append("".join(SHADES[round((float(v) - low) * scale)] * 2 for v in grid[y]))
    return "\n".join(rows)


def grid_learned(task: GridWorld, reward: torch.Tensor) -> str:
    """The learned state reward as a heatmap, with its caption."""
    return "learned reward (dark = low):\n" + grid_heatmap(task, reward)
