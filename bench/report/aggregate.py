"""Ranking methods across tasks the way rliable does (Agarwal et al., 2021).

Where the report ranks methods (query rules, teachers, learners) over several tasks, a
ranking read off per-task means is fragile: a few tasks, a few seeds, and one lucky task
decide it. rliable's remedy, followed here:

- the *interquartile mean* (IQM) of every run's score pooled over tasks — the mean of the
  middle 50% of the (run, task) scores, robust to a few outlying runs, less noisy than the median;
- the *probability of improvement* P(X > Y) of a method X over a baseline Y: per task the
  chance that a run of X scores above a run of Y (Mann–Whitney, a tie counts ½), averaged over
  tasks — how often X wins, not by how much;

each with a *stratified* bootstrap CI over runs: each task's runs are resampled on their own
(:func:`bench.report.bootstrap.stratified_resample`, the report's one engine, its generator
seeded by what is aggregated through :func:`bench.report.stats.bootstrap_rng`). One
difference from rliable: a task's runs are resampled *paired* across methods (a seed's row keeps
every method's score of that seed), since every method here was run on the same seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import bootstrap
from .bootstrap import CONFIDENCE
from .stats import bootstrap_rng


@dataclass(frozen=True)
class Aggregate:
    """One method's aggregate over tasks."""

    method: str
    tasks: int
    runs: int
    """(run, task) scores pooled."""
    iqm: float
    iqm_low: float
    iqm_high: float
    improvement: float
    """P(this method's run scores better than the baseline's), averaged over tasks (½ for the baseline)."""
    improvement_low: float
    improvement_high: float


def interquartile_mean(strata: Sequence[np.ndarray]) -> np.ndarray:
    """IQM per method of resampled strata ``[R, n_k, M]`` pooled over tasks: ``[R, M]`` (the middle
    50% of the sorted scores, trimmed as :func:`bench.report.stats.iqm` and scipy's ``trim_mean``)."""
    pooled = np.sort(np.concatenate(list(strata), axis=1), axis=1)
    n = pooled.shape[1]
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return pooled[:, lo:hi].mean(axis=1)


def improvement_over(baseline: int):
    """The statistic P(method > method ``baseline``) of resampled strata ``[R, n_k, M]``: ``[R, M]``."""
    def statistic(strata: Sequence[np.ndarray]) -> np.ndarray:
        per_task = []
        for s in strata:
            x, y = s[:, :, None, :], s[:, None, :, baseline, None]          # [R, n, 1, M], [R, 1, n, 1]
            per_task.append(((x > y) + 0.5 * (x == y)).mean(axis=(1, 2)))
        return np.mean(per_task, axis=0)
    return statistic


def aggregate(strata: Sequence[np.ndarray], methods: Sequence[str], baseline: str, fields: dict,
              higher_is_better: bool = True) -> list[Aggregate]:
    """IQM and probability of improvement over ``baseline`` per method, with stratified-bootstrap
    CIs. ``strata``: per task ``[runs, methods]`` scores (each row one seed, the same seed for every
    method); ``fields`` names what is aggregated (it seeds the generator)."""
    sign = 1.0 if higher_is_better else -1.0
    data = [np.asarray(s, dtype=float) for s in strata]
    base = list(methods).index(baseline)
    rng = bootstrap_rng(fields | {"statistic": "rliable aggregate"})

    def both(resampled: list[np.ndarray]) -> np.ndarray:      # [R, 2, M]: IQM and P(improvement)
        return np.stack([interquartile_mean(resampled),
                         improvement_over(base)([sign * s for s in resampled])], axis=1)

    point = both([d[None] for d in data])[0]
    low, high = bootstrap.percentile_interval(bootstrap.stratified_resample(data, both, rng), CONFIDENCE)
    runs = sum(len(d) for d in data)
    return [Aggregate(str(m), len(data), runs, float(point[0, j]), float(low[0, j]), float(high[0, j]),
                      float(point[1, j]), float(low[1, j]), float(high[1, j])) for j, m in enumerate(methods)]


def table_rows(results: Sequence[Aggregate], baseline: str, score: str, fmt: str = ".2f") -> list[dict[str, str]]:
    """Rows for a Markdown table: method, tasks, runs, IQM [CI], P(improvement over baseline) [CI]."""
    rows = []
    for a in results:
        rows.append({"": a.method, "tasks": str(a.tasks), "runs": str(a.runs),
                     f"IQM {score} [{CONFIDENCE:.0%} CI]": f"{a.iqm:{fmt}} [{a.iqm_low:{fmt}}, {a.iqm_high:{fmt}}]",
                     f"P(better than {baseline}) [{CONFIDENCE:.0%} CI]":
                         "—" if a.method == baseline else
                         f"{a.improvement:.2f} [{a.improvement_low:.2f}, {a.improvement_high:.2f}]"})
    return rows
