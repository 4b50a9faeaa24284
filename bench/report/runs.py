"""Reading finished runs: a run directory's ``cells.csv`` as a table, and its store as a :class:`Run`.

The report reads both (the table for statistics, the store for provenance, histories and
replays); the gate reads the table. Both come here, so neither imports the other for it.
Runs made by different code or kernels are never pooled (:func:`same_provenance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import BenchError
from ..provenance import Provenance
from ..sweep.config import ALIGNMENT_TEXT, config_columns, text_columns
from ..sweep.engine import CSV_NAME
from ..sweep.store import Store


@dataclass(frozen=True)
class Run:
    """One run directory as the report reads it."""

    path: Path
    meta: dict[str, str]
    rows: dict[str, dict]
    """The store's rows by cell key."""
    provenance: Provenance
    """The provenance its cells share (the first cell's: a run is one code and kernel set)."""


def load_run(run_dir: Path) -> pd.DataFrame:
    """A run's ``cells.csv``: one row per cell, text columns as strings ("" where empty)."""
    path = Path(run_dir) / CSV_NAME
    if not path.is_file():
        raise BenchError(f"{run_dir}: no {CSV_NAME} (run 'python -m bench run --out {run_dir}' first)")
    text = [*text_columns(), *ALIGNMENT_TEXT, "status", "error"]
    frame = pd.read_csv(path, dtype={c: str for c in text})       # a column the run lacks is skipped
    missing = [c for c in config_columns() if c not in frame]
    if missing:       # an older rlhf-bench's run: its names may mean other things now (learner_model)
        raise BenchError(f"{path}: no {', '.join(missing)} column(s): the run was made by an older rlhf-bench; "
                         f"rerun it with this one ('python -m bench run --config CONFIG --out {run_dir} "
                         "--rerun-stale')")
    for column in (c for c in text if c in frame):
        frame[column] = frame[column].fillna("")
    return frame


def load_store(path: Path) -> Run:
    """A run's store: its meta, every stored row, and the provenance its cells share."""
    with Store.open_existing(path) as store:
        meta, rows = store.meta(), {r["key"]: r for r in store.rows()}
    if not rows:
        raise BenchError(f"{path}: the run has no stored cells")
    return Run(path, meta, rows, next(iter(rows.values()))["provenance"])


def same_provenance(runs: list[Run]) -> None:
    """Refuse to pool runs (or cells of one run) made by different code or kernels."""
    first = runs[0]
    for run in runs:
        for row in run.rows.values():
            differs = first.provenance.differences(row["provenance"])
            if differs:
                raise BenchError(f"{first.path} and {run.path} were made by different code or kernels "
                                 f"({', '.join(differs)}); rerun one of them so that both come from the same code")
