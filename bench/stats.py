"""Aggregate statistics across seeds (rliable-style): mean, bootstrap CI, IQM.

Every bootstrap draws from an explicit ``numpy.random.Generator`` seeded per
call, so reports are reproducible byte for byte.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261121
CONFIDENCE = 0.95
GROUP_KEYS = ["task", "size", "slip", "budget", "teacher", "start", "sampler"]


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


def summarize(cells: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration: seeds, failed cells, success rate, and per metric
    mean, CI low/high and IQM over the seeds whose cell finished."""
    rows = []
    for index, (keys, group) in enumerate(cells.groupby(GROUP_KEYS, sort=True, dropna=False)):
        done = group[group["status"] == "done"]
        row = dict(zip(GROUP_KEYS, keys))
        row["seeds"] = len(group)
        row["failed"] = int((group["status"] != "done").sum())
        rng = np.random.default_rng([BOOTSTRAP_SEED, index])
        for metric in ["converged"] + metrics:
            values = done[metric].dropna().to_numpy(dtype=float) if metric in done else np.array([])
            name = "success" if metric == "converged" else metric
            if len(values) == 0:
                continue
            low, high = bootstrap_ci(values, rng)
            row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = float(values.mean()), low, high
            row[f"{name}_iqm"] = iqm(values)
        rows.append(row)
    return pd.DataFrame(rows)
