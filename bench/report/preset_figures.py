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
from pathlib import Path

import torch

import rlhf

from .. import provenance
from ..errors import BenchError
from ..sweep.config import CellConfig, preset_cell
from . import figures
from .section import ReportInputs, SectionOutput

PATH_ROUNDS = (1, 2, 3, 5, 10, 20, 50, 100, 150, 200)
"""Rounds whose sample paths the gridworld figure shows."""
PATHS_SHOWN = 10
"""Sample paths per round in that figure."""
STRING_TABLE_BUDGETS = (10, 200)


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
    written: list[Path] = []
    if grid is not None:
        cell = preset_cell("seed-gridworld")
        task = cell.make_task()
        paths: dict[int, torch.Tensor] = {}

        def keep_paths(record: rlhf.RoundRecord) -> None:
            if record.index + 1 in PATH_ROUNDS:
                paths[record.index + 1] = record.first.states[:PATHS_SHOWN].clone()

        result = _replay(cell, grid, keep_paths)
        assert isinstance(task, rlhf.GridWorld)
        written += [figures.gridworld_paths(task, paths, to / "seed_gridworld_paths.png"),
                    figures.training_curves(grid["history"], to / "seed_gridworld_training.png"),
                    figures.reward_heatmaps(task, result.reward.exp(), to / "seed_gridworld_rewards.png")]
    if all(tables_rows.values()):
        strings = tables_cells[STRING_TABLE_BUDGETS[0]].make_task()
        assert isinstance(strings, rlhf.StringTask)
        tables = {f"{b} pairs": _replay(tables_cells[b], row).reward      # every row is there (checked above)
                  for b, row in tables_rows.items() if row is not None}
        written.append(figures.string_tables(strings, tables, to / "seed_strings_tables.png"))
    return SectionOutput(files=written, figures=written)


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
