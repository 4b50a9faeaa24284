"""Aggregate statistics across seeds (rliable-style): mean, CI, IQM.

Seeds are grouped by their configuration — every config field but the seed
(:func:`bench.sweep.config.group_columns`) — here, in the report and in the gate.
A rate of per-seed successes (success, near-optimal) gets a Wilson score interval
(:func:`proportion_interval`: honest at a handful of seeds); any other mean a percentile
bootstrap (:mod:`bench.report.bootstrap`), which the report marks as unreliable below
:data:`MIN_RELIABLE_SEEDS` seeds. Every bootstrap draws from an explicit
``numpy.random.Generator`` seeded by the configuration and the statistic itself, so an
interval is the same whatever else is reported beside it, and reports are reproducible
byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..sweep.config import group_columns, grouping_columns
from . import bootstrap

BOOTSTRAP_SEED = 20261121
BINARY_SERIES = ("success", "near_optimal", "goal_hit", "exact_match")
"""Per-seed outcomes that are 0 or 1: their mean is a proportion (:func:`proportion_interval`)."""
MIN_RELIABLE_SEEDS = 10
"""Below this many seeds a percentile-bootstrap interval is marked as unreliable: resampling n
values can only show the spread among those n (3 equal values give a zero-width interval), and
its coverage falls well short of the nominal level at small n."""


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (sorted, trimmed 25% each side)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return float(x[lo:hi].mean()) if hi > lo else float(x.mean())


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


def varying_fields(configs: list[dict]) -> frozenset[str]:
    """The fields whose value differs between some of these configurations of the same task
    (a field that differs only between tasks, such as the learner, names the task, not a variant)."""
    varying: set[str] = set()
    for task in {c["task"] for c in configs}:
        same_task = [c for c in configs if c["task"] == task]
        varying |= {k for k in same_task[0] if len({config_id({k: c.get(k)}) for c in same_task}) > 1}
    return frozenset(varying)


def configurations(cells: pd.DataFrame, sort: bool = True) -> Iterator[tuple[dict, pd.DataFrame]]:
    """``(fields, rows)`` per configuration: the seeds that are replicates of each other (an
    alignment run's configuration includes its method, β and reference)."""
    columns = grouping_columns(cells)
    for keys, rows in cells.groupby(columns, sort=sort, dropna=False):
        yield {c: plain(v) for c, v in zip(columns, keys, strict=True)}, rows


def success_values(rows: pd.DataFrame) -> np.ndarray:
    """Per seed 1.0 if its cell finished and converged, else 0.0: a failed cell is a failure,
    not a missing seed (one converged cell beside 19 failed ones is 5%, not 100%)."""
    done = (rows["status"] == "done").to_numpy()
    converged = rows["converged"].fillna(0.0).to_numpy(dtype=float) if "converged" in rows else np.zeros(len(rows))
    return np.where(done, converged, 0.0)


def proportion_interval(values: np.ndarray, confidence: float = bootstrap.CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of the rate of 1s among ``values`` (per-seed outcomes, 0 or 1).

    Why not the percentile bootstrap: resampling n outcomes that are all 1 (or all 0) only ever
    gives 1 (0), so 3 successes of 3 seeds read ``1.00 [1.00, 1.00]`` — certainty from three
    tries. A rate of independent 0/1 outcomes is a binomial proportion, and Wilson's interval
    (the set of rates p whose score test does not reject the count) keeps close to its nominal
    coverage down to a few trials and at rates of 0 or 1 (Brown, Cai & DasGupta, 2001, who
    recommend it for small n): 3 of 3 gives [0.44, 1.00], 20 of 20 [0.84, 1.00], 0 of 20
    [0.00, 0.16]. It needs no resampling, so it is the same on every machine and run.
    """
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    z = statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = float(np.mean(values))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))   # exact 0 and 1 at p = 0 and 1


def is_binary(name: str, values: np.ndarray) -> bool:
    """Whether a series is a rate of per-seed 0/1 outcomes (one of :data:`BINARY_SERIES`, all 0 or 1)."""
    return name in BINARY_SERIES and bool(np.isin(values, (0.0, 1.0)).all())


def mean_interval(name: str, values: np.ndarray, fields: dict) -> tuple[float, float]:
    """The CI of a series' mean over seeds: Wilson for a binary series (:func:`proportion_interval`),
    otherwise the percentile bootstrap with the generator of (``fields``, ``name``)."""
    if is_binary(name, values):
        return proportion_interval(values)
    return bootstrap.interval(values, bootstrap.mean, bootstrap_rng(fields | {"statistic": name}))


def summarize(cells: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per configuration (every group column): seeds, failed cells, success rate,
    and per metric mean, CI low/high (:func:`mean_interval`) and IQM over the seeds whose cell
    finished."""
    rows = []
    for fields, group in configurations(cells):
        done = group[group["status"] == "done"]
        row: dict[str, object] = dict(fields)
        row["seeds"] = len(group)
        row["failed"] = int((group["status"] != "done").sum())
        series = {"success": success_values(group)}
        series |= {m: done[m].dropna().to_numpy(dtype=float) for m in metrics if m in done}
        for name, values in series.items():
            if len(values) == 0:
                continue
            low, high = mean_interval(name, values, fields)
            row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = float(values.mean()), low, high
            row[f"{name}_iqm"] = iqm(values)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else [*group_columns(), "seeds", "failed"])


def budget_reaching_target(success: np.ndarray, budgets: np.ndarray, target: float) -> np.ndarray:
    """The *budget at which mean success reaches the target*: per row of ``success``
    ``[..., budgets]`` (success rates over seeds at each swept budget, ascending), the first
    budget whose rate is ≥ ``target``; ``inf`` when none is (not within the sweep). Not to be
    confused with :func:`bench.report.ecosystem.median_first_near_optimal`, a per-seed statistic."""
    reached = success >= target - 1e-12
    return np.where(reached.any(-1), np.asarray(budgets, dtype=float)[reached.argmax(-1)], np.inf)


def values_text(column: pd.Series) -> str:
    """The values a configuration field takes, for prose: ``"5"``, or ``"5/10"`` when they differ."""
    return "/".join(f"{v:g}" if isinstance(v, int | float) else str(v) for v in sorted(column.unique()))


def budget_text(budget: float, top: int) -> str:
    """A budget statistic as the tables show it: ``"300"``, or ``"> 3000"`` when not within the
    sweep (``inf``; ``top`` is the largest swept budget)."""
    return f"> {top}" if np.isinf(budget) else f"{budget:.0f}"


LEARNER_FIELDS = (("learner_model", "learner"), ("fit", "fit"))
"""The configuration fields that say which learner a table measures, and their names in prose."""


def learner_text(rows: pd.DataFrame) -> str:
    """Which learner and which fit ``rows`` (cells or summary rows) use, for the line under a
    table: ``"learner: partial, fit: round"`` (``"partial/regret"`` where they differ), read off the
    rows, never assumed; ``""`` when the rows record neither."""
    known = {column: rows[column].dropna()[lambda v: v != ""] for column, _ in LEARNER_FIELDS if column in rows}
    return ", ".join(f"{label}: {values_text(known[column])}" for column, label in LEARNER_FIELDS
                     if column in known and len(known[column]))


def learner_note(rows: pd.DataFrame) -> list[str]:
    """The Markdown line (and its blank line) under a table: ``["*learner: partial, fit: round*", ""]``."""
    text = learner_text(rows)
    return [f"*{text}*", ""] if text else []
