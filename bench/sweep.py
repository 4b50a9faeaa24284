"""Run a sweep: skip what the store already has, run the rest, store each result, export CSV."""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

import rlhf

from . import executors
from .config import CellConfig, SweepConfig
from .store import Store

CSV_NAME = "cells.csv"
KEY_COLUMNS = ["task", "size", "slip", "budget", "teacher", "seed"]


@dataclass(frozen=True)
class Summary:
    total: int
    run: int
    skipped: int
    failed: int
    wall_s: float

    def line(self) -> str:
        return (f"cells: {self.total} total, {self.run} run, {self.skipped} skipped (already stored), "
                f"{self.failed} failed; wall {self.wall_s:.1f} s")


def run_sweep(config: SweepConfig, out: str | Path, executor: str = "serial", workers: int | None = None,
              address: str | None = None, retry_failed: bool = False, progress: bool = True) -> Summary:
    started = time.perf_counter()
    with Store(out) as store:
        store.set_meta(config=str(config.path), config_name=config.name, rlhf_version=rlhf.__version__,
                       python=platform.python_version(), machine=f"{platform.machine()} {platform.processor()}")
        done = store.finished_keys(include_failed=not retry_failed)
        todo = _unique([c for c in config.cells if c.key not in done])
        skipped = len(_unique(config.cells)) - len(todo)
        failed = 0
        results = _results(todo, executor, workers, address)
        try:
            with tqdm(total=len(todo), desc=f"{config.name} [{executor}]", unit="cell", disable=not progress,
                      dynamic_ncols=True) as bar:
                for cell, result in results:
                    store.put(cell, result)
                    failed += result.status == "failed"
                    bar.update(1)
                    bar.set_postfix(failed=failed, refresh=False)
        finally:     # on Ctrl-C too: the CSV then lists the cells finished so far
            export_csv(store, config.cells, Path(out) / CSV_NAME)
    return Summary(len(todo) + skipped, len(todo), skipped, failed, time.perf_counter() - started)


def _results(cells, executor, workers, address):
    if executor == "serial":
        return executors.run_serial(cells)
    if executor == "process":
        return executors.run_process(cells, workers or executors.default_workers())
    from .dask_executor import run_dask      # optional dependency
    return run_dask(cells, workers, address)


def _unique(cells) -> list[CellConfig]:
    seen, out = set(), []
    for c in cells:
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


def cells_frame(store: Store, cells=None) -> pd.DataFrame:
    """One row per stored cell (in the config's order when ``cells`` is given):
    config columns (``task, size, slip, budget, teacher, seed`` first), status,
    error, then the metrics. No wall times: the frame is identical across reruns."""
    rows = {r["key"]: r for r in store.rows()}
    keys = [c.key for c in _unique(cells)] if cells is not None else sorted(rows)
    records = []
    for key in keys:
        if key not in rows:
            continue
        r = rows[key]
        records.append({**r["config"], "status": r["status"], "error": r["error"], **r["metrics"]})
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    config_cols = KEY_COLUMNS + [f.name for f in dataclasses.fields(CellConfig) if f.name not in KEY_COLUMNS]
    metric_cols = sorted(c for c in frame.columns if c not in config_cols + ["status", "error"])
    return frame[config_cols + ["status", "error"] + metric_cols]


def export_csv(store: Store, cells, path: Path) -> None:
    """Write ``cells.csv`` atomically (a rename), so a reader never sees half a file."""
    tmp = path.with_suffix(".csv.tmp")
    cells_frame(store, cells).to_csv(tmp, index=False)
    tmp.replace(path)
