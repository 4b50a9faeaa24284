"""Run a sweep: skip what the store already has, run the rest, store each result, export CSV.

A store holds one config's cells made by one code and kernel set. Resuming
into a store whose cells come from other code or kernels (stale) or from
another config (foreign) stops with one line naming what differs; with
``rerun_stale`` the stale cells are recomputed and the foreign ones deleted.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from .. import kernels, outputs, provenance
from ..errors import BenchError
from ..provenance import Provenance
from . import executors, modules
from .cell import CellResult, groups
from .config import OWN_COLUMNS, RANKING_COLUMNS, CellConfig, SweepConfig, config_columns
from .store import DB_NAME, SIDE_FILES, Store

CSV_NAME = "cells.csv"
CSV_TMP = f"{CSV_NAME}.tmp"
"""Where export_csv writes the table before renaming it over CSV_NAME."""
RUN_FILES = {DB_NAME, *SIDE_FILES, CSV_NAME, CSV_TMP}
"""Everything a run writes into its directory (``--out``)."""
RERUN_FLAG = "--rerun-stale"


@dataclass(frozen=True)
class Summary:
    total: int
    run: int
    skipped: int
    stale: int
    failed: int
    wall_s: float

    def line(self) -> str:
        stale = f" ({self.stale} of them stale)" if self.stale else ""
        return (f"cells: {self.total} total, {self.run} run{stale}, {self.skipped} skipped (already stored), "
                f"{self.failed} failed; wall {self.wall_s:.1f} s")


def run_sweep(config: SweepConfig, out: str | Path, executor: str = "serial", workers: int | None = None,
              address: str | None = None, retry_failed: bool = False, progress: bool = True,
              rerun_stale: bool = False, command: str = "") -> Summary:
    started = time.perf_counter()
    if executor == "serial":     # cells run in this very process
        kernels.require_pinned("--executor serial")
    here = provenance.current()
    cells = unique(config.cells)
    check_out(Path(out))
    with Store(out) as store:
        todo, stale = _plan(store, config, cells, here, retry_failed, rerun_stale)
        store.set_meta(config=str(config.path), config_name=config.name, command=command,
                       **{modules.META_KEY: json.dumps(list(config.imports))})
        failed = 0
        results = _results(todo, executor, workers, address, config.imports)
        try:
            with tqdm(total=len(todo), desc=f"{config.name} [{executor}]", unit="cell", disable=not progress,
                      dynamic_ncols=True) as bar:
                for cell, result in results:
                    result = _accept(result, here)
                    store.put(cell, result, here)
                    failed += result.status == "failed"
                    bar.update(1)
                    bar.set_postfix(failed=failed, refresh=False)
        finally:     # on Ctrl-C too: the workers stop now, and the CSV lists the cells finished so far
            try:
                results.close()      # an interrupt here, not in the executor, leaves it suspended: stop it now
            finally:
                export_csv(store, cells, Path(out) / CSV_NAME)
    return Summary(len(cells), len(todo), len(cells) - len(todo), stale, failed, time.perf_counter() - started)


def check_out(out: Path) -> None:
    """Refuse (BenchError, one line; nothing is written) an ``--out`` that is not a directory, or
    that holds anything but a run's own files: rlhf-bench writes only into a new or empty
    directory, or into one of its runs (its store, with the CSV and SQLite's files beside it).
    A ``cells.csv`` without a store beside it is someone else's."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BenchError(f"--out {out}: is a file, not a directory; choose a new or empty directory, or an "
                         "earlier run's")
    entries = {entry.name for entry in out.iterdir()}
    own = RUN_FILES if DB_NAME in entries else set()
    foreign = sorted(entries - own)
    if foreign:
        raise BenchError(f"--out {out}: holds files rlhf-bench did not write ({outputs.shown(foreign)}); "
                         "choose a new or empty directory, or an earlier run's")


def _plan(store: Store, config: SweepConfig, cells: list[CellConfig], here: Provenance, retry_failed: bool,
          rerun_stale: bool) -> tuple[list[CellConfig], int]:
    """The cells to run, and how many of them are stale; refuses (BenchError) to resume into a
    store of other code or another config unless ``rerun_stale``."""
    out = store.directory
    ways = f"use a fresh --out, or pass {RERUN_FLAG} to"
    if store.legacy:
        if not rerun_stale:
            raise BenchError(f"{out}: its results come from an older rlhf-bench that recorded no provenance; "
                             f"{ways} recompute them")
        store.reset()
    stored = store.stored()
    wanted = {c.key for c in cells}
    foreign = sorted(stored.keys() - wanted)
    if foreign:
        if not rerun_stale:
            made_by = store.meta().get("config", "another config")
            raise BenchError(f"{out}: holds {len(foreign)} cells that are not in {config.path} (made by {made_by}); "
                             f"{ways} delete them and run this config there")
        store.delete(foreign)
    stale = {k for k in stored.keys() & wanted if stored[k][1].compatibility() != here.compatibility()}
    if stale and not rerun_stale:
        differences = collections.Counter(", ".join(stored[k][1].differences(here)) for k in stale)
        what, _ = differences.most_common(1)[0]
        raise BenchError(f"{out}: {len(stale)} stored cells were made by other code or kernels ({what}); "
                         f"{ways} recompute them")
    redo = {k for k in stored.keys() & wanted if retry_failed and stored[k][0] == "failed"} | stale
    todo = [c for c in cells if c.key not in stored or c.key in redo]
    return todo, len(stale)


def _accept(result: CellResult, here: Provenance) -> CellResult:
    """The worker's result, or a failure when the worker ran other code or kernels. (A failure
    the executor reports itself, e.g. a worker that died, carries no provenance and stays as is.)"""
    if result.made_by == here.compatibility() or (result.status == "failed" and not result.made_by):
        return result
    made_by: dict[str, Any] = result.made_by      # the compatibility fields (all str) as keywords
    theirs = Provenance(**made_by) if made_by else None
    what = ", ".join(here.differences(theirs)) if theirs else "no provenance"
    return dataclasses.replace(result, status="failed", metrics={}, history={},
                               error=f"the worker differs from this process ({what}); start workers from this "
                                     f"checkout with the pinned kernels ({kernels.OPT_OUT} unset)")


def _results(cells: list[CellConfig], executor: str, workers: int | None, address: str | None,
             imports: tuple[str, ...] = ()) -> Generator[tuple[CellConfig, CellResult], None, None]:
    """Each cell's result, computed a group at a time (a configuration's seeds and budgets);
    ``imports``: the modules each worker imports first."""
    if executor == "process":          # its groups are split for its own workers (a schedule, never a result)
        pool = workers or executors.default_workers()
        return executors.run_process(groups(cells, imports=imports, workers=pool), pool)
    work = groups(cells, imports=imports, workers=workers)
    if executor == "serial":
        return executors.run_serial(work)
    from .dask_executor import run_dask  # optional dependency
    return run_dask(work, workers, address)


def unique(cells: Iterable[CellConfig]) -> list[CellConfig]:
    """Cells in order, each key once."""
    seen, out = set(), []
    for c in cells:
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


def cells_frame(store: Store, cells: Iterable[CellConfig] | None = None) -> pd.DataFrame:
    """One row per stored cell (in the config's order when ``cells`` is given):
    config columns (``task, size, slip, budget, teacher, seed`` first; an alignment cell's own
    fields after them, in a run that has such cells), status, error, then the metrics. No wall
    times or provenance: the frame is identical across reruns, executors and machines."""
    rows = {r["key"]: r for r in store.rows()}
    keys = [c.key for c in unique(cells)] if cells is not None else sorted(rows)
    records = [{**rows[k]["config"], "status": rows[k]["status"], "error": rows[k]["error"], **rows[k]["metrics"]}
               for k in keys if k in rows]
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    own = (*RANKING_COLUMNS, *OWN_COLUMNS)                           # fields only some cells have
    columns = [*config_columns(), *(c for c in own if c in frame)]
    metric_cols = sorted(c for c in frame.columns if c not in [*columns, "status", "error"])
    return frame[[*columns, "status", "error", *metric_cols]]


def export_csv(store: Store, cells: Iterable[CellConfig], path: Path) -> None:
    """Write ``cells.csv`` atomically (a rename), so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    cells_frame(store, cells).to_csv(tmp, index=False)
    tmp.replace(path)
