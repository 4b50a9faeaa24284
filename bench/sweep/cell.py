"""Run a group of cells: one configuration's seeds and budgets as one batched, checkpointed run.

The only place integer seeds become random streams (inside ``rlhf.train_checkpoints``).
"""

from __future__ import annotations

import hashlib
import math
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field

import rlhf

from .. import provenance
from .config import CellConfig
from .modules import import_modules


@dataclass(frozen=True)
class CellResult:
    """What a finished cell stores: metrics and history, or why it failed."""

    key: str
    status: str                      # "done" | "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0
    """The cell's share of its group's wall time."""
    made_by: dict[str, str] = field(default_factory=dict)
    """The worker's :meth:`Provenance.compatibility`: the coordinator refuses a result made by
    other code or kernels than its own (e.g. a remote Dask worker started without the pins)."""


@dataclass(frozen=True)
class CellGroup:
    """Cells that differ only in seed and budget: one ``train_checkpoints`` call runs them all
    (seeds batched, budgets as checkpoints of one run)."""

    cells: tuple[CellConfig, ...]
    imports: tuple[str, ...] = ()
    """The sweep's ``imports``: a worker imports them before it rebuilds the cells' task
    (:mod:`bench.sweep.modules`)."""

    @property
    def key(self) -> str:
        """A content hash of the member cells (Dask's task key: never computed twice)."""
        return hashlib.sha256(",".join(c.key for c in self.cells).encode()).hexdigest()[:16]

    def work(self) -> int:
        """A rough cost estimate, for ordering: seeds × largest budget × the task's states."""
        seeds = len({c.seed for c in self.cells})
        return seeds * max(c.budget for c in self.cells) * self.cells[0].make_task().mdp.num_states


def groups(cells: Iterable[CellConfig], max_cells: int = 200, imports: tuple[str, ...] = ()) -> list[CellGroup]:
    """``cells`` grouped by configuration without seed and budget, at most ``max_cells`` a group
    (an interrupted group loses at most that many). Largest :meth:`~CellGroup.work` first
    (longest-processing-time order: the workers then finish at about the same time; the
    sweep's largest groups last left one core idle for ~20% of the default sweep), ties in
    order of first appearance. ``imports``: the sweep's modules, for the workers."""
    by_config: dict[str, list[CellConfig]] = {}
    for cell in cells:
        rest = {k: v for k, v in cell.configuration().items() if k != "budget"}
        by_config.setdefault(repr(sorted(rest.items())), []).append(cell)
    split = [CellGroup(tuple(members[lo:lo + max_cells]), imports)
             for members in by_config.values() for lo in range(0, len(members), max_cells)]
    return sorted(split, key=CellGroup.work, reverse=True)


def run_group(group: CellGroup) -> list[CellResult]:
    """Train every cell of the group in one batched run, single-threaded (bit-identical on every
    executor, and to training each cell alone); never raises."""
    made_by = provenance.current(with_git=False).compatibility()
    started = time.perf_counter()
    first = group.cells[0]
    seeds = sorted({c.seed for c in group.cells})
    budgets = sorted({c.budget for c in group.cells})
    try:
        import_modules(group.imports)      # a task registered in the user's module (a no-op in the coordinator)
        by_budget = rlhf.train_checkpoints(first.make_task(), seeds, budgets, config=first.train)
    except Exception as exc:  # a failing group is a result, not the end of the sweep
        last = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        wall = (time.perf_counter() - started) / len(group.cells)
        return [CellResult(c.key, "failed", error=reason, wall_s=wall, made_by=made_by) for c in group.cells]
    wall = (time.perf_counter() - started) / len(group.cells)
    runs = {(budget, r.seed): r for budget, results in by_budget.items() for r in results}
    return [_cell_result(cell, runs[cell.budget, cell.seed], wall, made_by) for cell in group.cells]


def _cell_result(cell: CellConfig, run: rlhf.RunResult, wall: float, made_by: dict[str, str]) -> CellResult:
    bad = sorted(k for k, v in run.metrics.items() if isinstance(v, float) and math.isnan(v))
    if bad:
        return CellResult(cell.key, "failed", run.metrics, run.history,
                          error=f"NaN in metrics: {', '.join(bad)}", wall_s=wall, made_by=made_by)
    return CellResult(cell.key, "done", run.metrics, run.history, wall_s=wall, made_by=made_by)
