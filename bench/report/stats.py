"""Aggregate statistics across seeds (rliable-style): mean, bootstrap CI, IQM.

Seeds are grouped by their configuration — every config field but the seed
(:func:`bench.config.group_columns`) — here, in the report and in the gate.
Every bootstrap draws from an explicit ``numpy.random.Generator`` seeded by
the configuration itself, so a configuration's intervals are the same whatever
else is reported beside it, and reports are reproducible byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..sweep.config import group_columns

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261121
CONFIDENCE = 0.95


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (sorted, trimmed 25% each side)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return float(x[lo:hi].mean()) if hi > lo else float(x.mean())


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over seeds (``CONFIDENCE`` two-sided)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 1:
        return float(x[0]), float(x[0])
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def plain(value: object) -> object:
    """numpy scalars to Python ones (for JSON and dataclass fields)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def config_id(fields: dict) -> str:
    """Canonical JSON of a configuration's fields: its identity across runs and baselines."""
    return json.dumps({k: plain(v) for k, v in fields.items()}, sort_keys=True)


def bootstrap_rng(fields: dict) -> np.random.Generator:
    """The bootstrap generator of a configuration (or any labelled group): seeded by its fields,
    so its intervals do not depend on what else is reported beside it."""
    seed = int(hashlib.sha256(config_id(fields).encode()).hexdigest()[:16], 16)
    return np.random.default_rng([BOOTSTRAP_SEED, seed])


def configurations(cells: pd.DataFrame, sort: bool = True) -> Iterator[tuple[dict, pd.DataFrame]]:
    """``(fields, rows)`` per configuration: the seeds that are replicates of each other."""
    columns = group_columns()
    for keys, rows in cells.groupby(columns, sort=sort, dropna=False):
        yield {c: plain(v) for c, v in zip(columns, keys, strict=True)}, rows


def success_values(rows: pd.DataFrame) -> np.ndarray:
    """Per seed 1.0 if its cell finished and converged, else 0.0: a failed cell is a failure,
    not a missing seed (one converged cell beside 19 failed ones is 5%, not 100%)."""
    done = (rows["status"] == "done").to_numpy()
    converged = rows["converged"].fillna(0.0).to_numpy(dtype=float) if "converged" in rows else np.zeros(len(rows))
    return np.where(done, converged, 0.0)


def summarize(cells: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration (every group column): seeds, failed cells, success rate,
    and per metric mean, CI low/high and IQM over the seeds whose cell finished."""
    rows = []
    for fields, group in configurations(cells):
        done = group[group["status"] == "done"]
        row: dict[str, object] = dict(fields)
        row["seeds"] = len(group)
        row["failed"] = int((group["status"] != "done").sum())
        rng = bootstrap_rng(fields)
        series = {"success": success_values(group)}
        series |= {m: done[m].dropna().to_numpy(dtype=float) for m in metrics if m in done}
        for name, values in series.items():
            if len(values) == 0:
                continue
            low, high = bootstrap_ci(values, rng)
            row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = float(values.mean()), low, high
            row[f"{name}_iqm"] = iqm(values)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else [*group_columns(), "seeds", "failed"])
