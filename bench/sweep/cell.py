"""Run a group of cells: one configuration's seeds and budgets as one batched, checkpointed run.

The only place integer seeds become random streams (inside ``rlhf.train_checkpoints``, or
``rlhf.align_batch`` for an alignment group: :mod:`bench.sweep.aligning`; an over-optimisation
group's proxies: :mod:`bench.sweep.overoptimising`).
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
from .aligning import align_group
from .config import CellConfig
from .modules import import_modules
from .overoptimising import path_group


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

    def work(self, seeds: int | None = None) -> float:
        """Estimated seconds this group takes on one core, with its seeds or ``seeds`` of them: what
        :func:`groups` orders and splits groups by (only ratios between groups matter).

        A round costs a part whatever the seeds (its optimiser steps' dispatch; :func:`groups` keeps
        it from being repeated by parts too small) and, per seed: the steps of its pairs (rollout,
        labels; an active query rule's whole pool), the learner's epochs over the features × pairs it
        fits (every pair so far with ``fit = "all"``), the H backups over the S·A·K successor entries
        that planning and evaluation make, and, for the regret learner, such a plan in every
        optimiser step. Rounds as :func:`rlhf.train_checkpoints` runs them: a run to the largest
        budget that is a multiple of ``pairs_per_round``, a run of its own for any other budget.
        The coefficients are a fit (within a factor of about 2 on every group timed) to 42 groups of
        the ecosystem, default, queries and preference-model sweeps on the 2-core machine; horizon
        and features dominate the largest (Taxi: H = 200, 3006 state-action features)."""
        from rlhf.learning.queries import QUERY_RULES

        first = self.cells[0]
        train = first.train
        task = first.make_task()
        mdp = task.mdp
        n = len({c.seed for c in self.cells}) if seeds is None else seeds
        entries = task.horizon * mdp.num_states * mdp.num_actions * mdp.next_states.shape[-1]
        features = task.true_reward.numel()
        length = train.segment_length or task.horizon
        pool = 1 if QUERY_RULES[train.query].samples else train.oversample
        members, epochs, batch = train.ensemble, train.learner.epochs, train.learner.batch_size
        per = train.pairs_per_round
        budgets = sorted({c.budget for c in self.cells})
        shared = [b for b in budgets if per and b % per == 0]
        runs = [(shared[-1] // per, per)] if shared else []
        runs += [(-(-b // per), per) if per else (1, b) for b in budgets if b not in shared]
        fixed = per_seed = 0.0
        for rounds, pairs in runs:
            for index in range(1, rounds + 1):
                fitted = pairs * index if train.fit == "all" else pairs
                steps = epochs * (-(-fitted // batch) if batch else 1) * members
                fixed += 0.3e-3 + 4e-6 * steps
                per_seed += (40e-6 + 45e-9 * pairs * length * pool + 0.4e-9 * epochs * features * fitted * members
                             + 10e-9 * entries + (45e-9 * steps * entries if train.learner_model == "regret" else 0))
        return fixed + n * per_seed


def groups(cells: Iterable[CellConfig], max_cells: int = 200, imports: tuple[str, ...] = (),
           workers: int | None = None, min_part_s: float = 2.0) -> list[CellGroup]:
    """``cells`` grouped by configuration without seed and budget, at most ``max_cells`` a group
    (an interrupted group loses at most that many). Largest :meth:`~CellGroup.work` first
    (longest-processing-time order: the workers then finish at about the same time; the
    sweep's largest groups last left one core idle for ~20% of the default sweep), ties in
    order of first appearance. ``imports``: the sweep's modules, for the workers.

    A group larger than a quarter of each worker's share of the sweep (``workers``: by default
    this machine's cores) is split into parts of its seeds, each with all its budgets, so that no
    part is the sweep's long tail (the ecosystem's Taxi groups were 2 × 34% of it: a worker slowed
    by other load while on one finished long after the other). Taxi's 20 seeds in 3 parts also took
    about 30% less CPU than one batch of 20 (19–20 s against 28 s, one core; 2 parts of 10 gained
    nothing). Results do not change: a seed's run does not depend on which seeds share its batch
    (the ecosystem's and default sweep's ``cells.csv`` are byte-identical). A part is never under
    ``min_part_s`` estimated seconds nor mostly the rounds' fixed part (which every part repeats),
    and an alignment or over-optimisation group is never split."""
    by_config: dict[str, list[CellConfig]] = {}
    for cell in cells:
        rest = {k: v for k, v in cell.configuration().items() if k != "budget"}
        by_config.setdefault(repr(sorted(rest.items())), []).append(cell)
    whole = [CellGroup(tuple(members[lo:lo + max_cells]), imports)
             for members in by_config.values() for lo in range(0, len(members), max_cells)]
    costs = [group.work() for group in whole]
    target = max(sum(costs) / (4 * (workers or provenance.usable_cores())), min_part_s)
    out: list[tuple[float, CellGroup]] = []
    for group, cost in zip(whole, costs, strict=True):
        seeds = sorted({c.seed for c in group.cells})
        parts, fixed = 1, 0.0
        if cost > target and len(seeds) > 1 and not (group.cells[0].method or group.cells[0].proxy):
            fixed = group.work(seeds=0)
            # enough parts to bring each under the target; each of a seed or more, and mostly its seeds' work
            parts = min(math.ceil(cost / target), len(seeds), int((cost - fixed) / max(fixed, 1e-9)))
        if parts < 2:
            out.append((cost, group))
            continue
        per_seed = (cost - fixed) / len(seeds)
        for part in range(parts):
            mine = set(seeds[len(seeds) * part // parts:len(seeds) * (part + 1) // parts])
            out.append((fixed + len(mine) * per_seed,
                        CellGroup(tuple(c for c in group.cells if c.seed in mine), imports)))
    return [group for _, group in sorted(out, key=lambda item: item[0], reverse=True)]


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
        runs: dict[tuple[int, int], tuple[dict, dict]]      # (budget, seed) -> (metrics, history)
        if first.method:                   # a policy fitted to preference data (no history)
            runs = {at: (metrics, {}) for at, metrics in align_group(first, seeds, budgets).items()}
        elif first.proxy:                  # optimisation paths away from the reference (history: the paths)
            runs = path_group(first, seeds, budgets)
        else:
            by_budget = rlhf.train_checkpoints(first.make_task(), seeds, budgets, config=first.train)
            runs = {(budget, r.seed): (r.metrics, r.history) for budget, results in by_budget.items() for r in results}
    except Exception as exc:  # a failing group is a result, not the end of the sweep
        last = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        wall = (time.perf_counter() - started) / len(group.cells)
        return [CellResult(c.key, "failed", error=reason, wall_s=wall, made_by=made_by) for c in group.cells]
    wall = (time.perf_counter() - started) / len(group.cells)
    return [_cell_result(cell, *runs[cell.budget, cell.seed], wall, made_by) for cell in group.cells]


def _cell_result(cell: CellConfig, metrics: dict, history: dict, wall: float, made_by: dict[str, str]) -> CellResult:
    bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and math.isnan(v))
    if bad:
        return CellResult(cell.key, "failed", metrics, history,
                          error=f"NaN in metrics: {', '.join(bad)}", wall_s=wall, made_by=made_by)
    return CellResult(cell.key, "done", metrics, history, wall_s=wall, made_by=made_by)
