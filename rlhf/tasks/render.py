"""Text pictures of the built-in tasks for a person labelling pairs (the registry's ``render`` hooks).

Each picture is plain text that fits an 80 x 24 terminal beside the learned reward: the string
task's two strings aligned by position, the gridworld's two trajectories side by side, and
what the reward learned so far means (the greedy string, or a heatmap over the grid). The
labelling program (``python -m bench label``) shows them; nothing here draws or reads input.

Rankings (``python -m bench label --rank K``): K segments numbered ``[1]`` … ``[K]``, the strings one
above the other, the grids side by side (:func:`ranking_view` finds a pair hook's ranking drawing and
the most segments it fits in 80 x 24 beside the learned view: 6 strings, 4 grids).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


# ------------------------------------------------------------------ K segments (``label --rank K``)
RANKING_WIDTH = 46
"""Columns a ranking's drawing may take: an 80-column terminal less the learned view beside it (32:
the heatmap's 28-column caption and its padding) and the panel's padding (1 a side)."""
MAX_RANKED_STRINGS = 6
"""Strings a ranking shows at most (one row each)."""
MAX_RANKED_GRIDS = 4
"""Grids a ranking shows at most: four 10 x 10 grids side by side fit :data:`RANKING_WIDTH` (compact)."""


def _segment(segments: Trajectories, k: int) -> Trajectories:
    return Trajectories(segments.states[k], segments.actions[k])


def strings_ranking(task: StringTask, segments: Trajectories) -> str:
    """The K strings ``segments[K, T]`` one above the other, aligned by position, numbered ``[1]`` … ``[K]``
    (as :func:`strings_pair`)."""
    width = len(str(len(task.target) - 1)) + 1
    header = "".join(str(i).rjust(width) for i in range(segments.actions.shape[-1]))
    rows = [f"position {header}"]
    for k in range(segments.states.shape[0]):
        rows.append(f"   [{k + 1}]   " + "".join(task.vocab[int(a)].rjust(width) for a in segments.actions[k]))
    return "\n".join(rows)


def grid_ranking(task: GridWorld, segments: Trajectories, width: int = RANKING_WIDTH) -> str:
    """The K trajectories ``segments[K, T]`` side by side, numbered ``[1]`` … ``[K]``, drawn as
    :func:`grid_pair` draws two: cells a space apart where that fits ``width`` columns, else one
    character a cell."""
    K, n = segments.states.shape[0], task.size
    grids = [_grid_cells(task, _segment(segments, k)) for k in range(K)]
    sep = " " if K * (2 * n - 1) + 2 * (K - 1) <= width else ""
    cell_width = n + (n - 1) * len(sep)
    lines = ["  ".join(f"[{k + 1}]".ljust(cell_width) for k in range(K)).rstrip()]
    for y in range(n - 1, -1, -1):
        lines.append("  ".join(sep.join(grid[x][y] for x in range(n)) for grid in grids))
    return "\n".join(lines)


def ranking_view(pair: Callable[..., str]) -> tuple[Callable[[Any, Trajectories], str], int] | None:
    """``(draw, most)``: how a task whose ``render`` hook draws pairs with ``pair`` draws K segments
    ``[K, T]``, and the most it fits in 80 x 24; None where it has no ranking drawing."""
    if pair is strings_pair:
        return strings_ranking, MAX_RANKED_STRINGS
    if pair is grid_pair:
        return grid_ranking, MAX_RANKED_GRIDS
    return None
