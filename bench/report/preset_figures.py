"""The report's preset figures: the two teaching examples' own figures, redrawn from the runs.

The examples are the presets ``seed-gridworld`` and ``seed-strings`` (named after the seed
programs, not random seeds); their figure files keep the ``seed_`` names. For the gridworld
preset (random seed 0) among the stored cells: sample paths by round, training
curves and true vs learned reward heatmaps; for the string preset at the budgets of
``STRING_TABLE_BUDGETS``: the learned reward tables. The store keeps neither paths nor
learned rewards, so each figure replays its stored cell — which must reproduce the stored
metrics exactly, and needs the code and kernels that made the run (otherwise the figures are
left out, with a note saying why).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import rlhf

from .. import provenance
from ..errors import BenchError
from ..sweep.config import CellConfig, preset_cell
from . import figures
from .section import Figure, ReportInputs, SectionOutput

PATH_ROUNDS = (1, 2, 3, 5, 10, 20, 50, 100, 150, 200)
"""Rounds whose sample paths the gridworld figure shows."""
PATHS_SHOWN = 10
"""Sample paths per round in that figure."""
STRING_TABLE_BUDGETS = (10, 200)
RISING_LOSS_CORRELATION = 0.8
"""The training caption explains a rising loss by the teacher's entropy only when the two correlate
at least this much over rounds in the stored history."""


def section(inputs: ReportInputs) -> SectionOutput:
    """The figures of the preset configurations among the stored rows (random seed 0), by replaying
    the stored cell; or a note on why they are left out. Nothing on the page but the gallery."""
    rows = inputs.stored
    grid = rows.get(preset_cell("seed-gridworld").key)
    tables_cells = {b: preset_cell("seed-strings", budget=b) for b in STRING_TABLE_BUDGETS}
    tables_rows = {b: rows.get(c.key) for b, c in tables_cells.items()}
    if (grid is None and not any(tables_rows.values())) or not inputs.runs:
        return SectionOutput()
    here = provenance.current(with_git=False)
    differs = here.differences(inputs.runs[0].provenance)
    if differs:
        return SectionOutput(notes=[
            f"The seed figures are left out: drawing them replays the stored cells, which needs the code "
            f"and kernels that made the run ({', '.join(differs)} here)."])
    to = inputs.stage
    written: list[Figure] = []
    if grid is not None:
        cell = preset_cell("seed-gridworld")
        task = cell.make_task()
        paths: dict[int, torch.Tensor] = {}

        def keep_paths(record: rlhf.RoundRecord) -> None:
            if record.index + 1 in PATH_ROUNDS:
                paths[record.index + 1] = record.first.states[:PATHS_SHOWN].clone()

        result = _replay(cell, grid, keep_paths)
        assert isinstance(task, rlhf.GridWorld)
        run = _gridworld_run(task, cell)
        learned = result.reward.exp()
        written += [
            Figure(figures.gridworld_paths(task, paths, to / "seed_gridworld_paths.png"),
                   "seed-gridworld: sample paths by round", _paths_caption(task, run, paths)),
            Figure(figures.training_curves(grid["history"], to / "seed_gridworld_training.png"),
                   "seed-gridworld: training curves", _training_caption(run, grid["history"])),
            Figure(figures.reward_heatmaps(task, learned, to / "seed_gridworld_rewards.png"),
                   "seed-gridworld: true vs learned target distribution", _rewards_caption(task, run, learned))]
    if all(tables_rows.values()):
        strings = tables_cells[STRING_TABLE_BUDGETS[0]].make_task()
        assert isinstance(strings, rlhf.StringTask)
        tables = {f"{b} pairs": _replay(tables_cells[b], row).reward      # every row is there (checked above)
                  for b, row in tables_rows.items() if row is not None}
        greedy = {name: strings.decode(t) for name, t in tables.items()}
        caption = (f"The seed-strings preset (target {strings.target}, random seed 0): the learned reward of each "
                   f"(position, token) after {' and after '.join(tables)}, each table on its own colour scale (red "
                   "above 0, blue below; colour bar beside it). The greedy string takes the highest cell of each "
                   "column (outlined): " + "; ".join(f"{name}: {g} ({'=' if g == strings.target else '≠'} "
                                                     f"{strings.target})" for name, g in greedy.items()) + ".")
        written.append(Figure(figures.string_tables(strings, tables, to / "seed_strings_tables.png"),
                              "seed-strings: learned reward tables", caption))
    return SectionOutput(files=[f.path for f in written], figures=written)


def _gridworld_run(task: rlhf.GridWorld, cell: CellConfig) -> str:
    """The seed-gridworld run in words, for captions."""
    goal = ", ".join(f"({x}, {y})" for x, y in task.cell(task.goal_states).reshape(-1, 2).tolist())
    return (f"the seed-gridworld preset ({task.size}×{task.size}, goal {goal}, horizon {task.horizon}, teacher "
            f"{cell.teacher}), random seed {cell.seed}")


def _paths_caption(task: rlhf.GridWorld, run: str, paths: dict[int, torch.Tensor]) -> str:
    """What to look at in the sample-path figure: how many of the paths shown end on the goal, by round."""
    on_goal = {r: int(torch.isin(p[:, -1], task.goal_states).sum()) for r, p in sorted(paths.items())}
    shown = len(next(iter(paths.values()))) if paths else 0
    return (f"{run[:1].upper()}{run[1:]}: the first {shown} of each round's sampled trajectories at rounds "
            f"{', '.join(map(str, on_goal))}, drawn on the grid's cell coordinates with a little jitter so that "
            "overlapping paths stay visible; green: start, red: end, gold star: the goal. Look at where the red "
            "ends gather: paths ending on the goal, by round: "
            + ", ".join(f"{r}: {k} of {shown}" for r, k in on_goal.items()) + ".")


def _training_caption(run: str, history: dict[str, list[float]]) -> str:
    """What to look at in the training curves, and why the loss rises — stated only when the stored
    history shows it (the loss rising with the teacher's entropy)."""
    loss, entropy = np.asarray(history["loss"]), np.asarray(history["entropy"])
    quarter = max(len(loss) // 4, 1)
    text = (f"Per round of {run}: the expected true return of the policy planned on the learned reward (left), "
            "the Bradley–Terry loss of the round's last epoch on the round's pairs (middle; dotted: the teacher's "
            "entropy), and the teacher's mean preference entropy (right; dotted: ln 2, a coin flip).")
    r = float(np.corrcoef(loss, entropy)[0, 1]) if len(loss) > 2 and loss.std() > 0 and entropy.std() > 0 else 0.0
    rises = loss[-quarter:].mean() > loss[:quarter].mean() + 0.05
    if rises and r >= RISING_LOSS_CORRELATION:
        text += (f" The loss rises ({loss[:quarter].mean():.2f} on average over the first {quarter} rounds, "
                 f"{loss[-quarter:].mean():.2f} over the last {quarter}) although the policy improves: the pairs "
                 "are on-policy, so as the policy gets better both trajectories of a pair reach the goal, their "
                 "true returns draw level and the teacher's labels approach coin flips (entropy → ln 2). No reward "
                 "can predict a coin flip, so the loss tracks the teacher's entropy (correlation over rounds "
                 f"{r:.2f}; the dotted line) — it measures how hard the round's pairs are, not how good the reward is.")
    return text


def _rewards_caption(task: rlhf.GridWorld, run: str, learned: torch.Tensor) -> str:
    """What to look at in the reward heatmaps: how much of the learned distribution is on the goal."""
    on_goal = float(learned[task.goal_states].sum())
    return (f"{run[:1].upper()}{run[1:]}, after its last round: the true target distribution over cells (left) and "
            "the learned one "
            "(right; the softmax of the learned reward — the reward is its log, the seed's parametrisation), on "
            "the grid's cell coordinates with y up, one grey scale for both (colour bar: probability), each cell's "
            f"probability written in it, the goal outlined in gold. The learned distribution puts {on_goal:.1%} of "
            "its mass on the goal.")


def _replay(cell: CellConfig, stored: dict, on_round=None) -> rlhf.RunResult:
    """Train a stored cell again (for what the store does not keep: paths, the learned reward);
    it must reproduce the stored metrics exactly."""
    result = rlhf.train(cell.make_task(), seed=cell.seed, config=cell.train, on_round=on_round)
    same = all(stored["metrics"].get(k) == v or (math.isnan(v) and math.isnan(stored["metrics"].get(k, 0.0)))
               for k, v in result.metrics.items())
    if not same:
        raise BenchError(f"replaying cell {cell.key} ({cell.task}, seed {cell.seed}) did not reproduce its stored "
                         "metrics: the run is not deterministic here")
    return result
