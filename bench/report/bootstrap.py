"""The bootstrap engine: percentile intervals of any statistic, over resampled seeds or worlds.

Every interval in the report comes from here. rliable's ``get_interval_estimates`` is the
model — the statistic is a function, the engine resamples and reads off the percentiles —
with one difference: the resamples come from an explicit ``numpy.random.Generator`` the
caller passes (rliable draws from numpy's global state, so its intervals depend on whatever
ran before). The report seeds one generator per configuration
(:func:`bench.report.stats.bootstrap_rng`), so a configuration's interval is the same
whatever else is reported beside it.

A statistic is vectorised over resamples: it maps resampled data ``[R, n, ...]`` (``R``
resamples of the ``n`` units along axis 1 — seeds, or worlds — each unit's row kept whole, so
columns of a unit stay paired) to one value per resample, ``[R, ...]``. Point estimates are
the caller's: the plain statistic of the data (for a column mean, numpy's summation order of a
column differs in the last bit from a reduction over axis 1, and the committed numbers are the
former).

A *stratified* bootstrap (:func:`stratified_resample`, rliable's for scores across tasks)
resamples the units of each stratum (a task's seeds) separately, with one generator, stratum
after stratum, so every resample keeps each task's number of runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95

Statistic = Callable[[np.ndarray], np.ndarray]
"""Resampled data ``[R, n, ...]`` → the statistic of each resample ``[R, ...]``."""
StratifiedStatistic = Callable[[list[np.ndarray]], np.ndarray]
"""Resampled strata (one ``[R, n_k, ...]`` per stratum) → the statistic of each resample ``[R, ...]``."""


def mean(resampled: np.ndarray) -> np.ndarray:
    """The mean over the units of each resample: ``[R, n, ...]`` → ``[R, ...]``."""
    return resampled.mean(axis=1)


def lower_median(resampled: np.ndarray) -> np.ndarray:
    """The lower median over the units of each resample (an observed value, never an average
    of two: a swept budget stays a swept budget, ``inf`` stays ``inf``): ``[R, n]`` → ``[R]``."""
    return np.sort(resampled, axis=1)[:, (resampled.shape[1] - 1) // 2]


def resample(data: np.ndarray, statistic: Statistic, rng: np.random.Generator,
             resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """``statistic`` of ``resamples`` bootstrap resamples of the units (rows) of ``data``
    ``[n, ...]``: ``[resamples, ...]``. Draws one ``[resamples, n]`` block of indices from
    ``rng`` (none when ``n`` is 1: every resample is the data itself)."""
    indices = rng.integers(0, len(data), size=(resamples, len(data)))
    return statistic(data[indices])


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE,
                        discrete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided percentile interval of bootstrap ``draws`` ``[R, ...]`` (per trailing
    index). ``discrete``: the ends are draws themselves (the lower end rounds down, the upper
    end up), for statistics that take a few values such as a swept budget or ``inf``;
    otherwise numpy's linear interpolation."""
    alpha = (1 - confidence) / 2
    if discrete:
        return np.quantile(draws, alpha, axis=0, method="lower"), np.quantile(draws, 1 - alpha, axis=0, method="higher")
    return np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0)


def interval(data: np.ndarray, statistic: Statistic, rng: np.random.Generator, discrete: bool = False,
             confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile-bootstrap interval of a scalar ``statistic`` of ``data`` ``[n, ...]``."""
    low, high = percentile_interval(resample(data, statistic, rng), confidence, discrete)
    return float(low), float(high)


def stratified_resample(strata: Sequence[np.ndarray], statistic: StratifiedStatistic, rng: np.random.Generator,
                        resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """``statistic`` of ``resamples`` stratified bootstrap resamples: each stratum ``[n_k, ...]``
    (one task's runs, each row one unit such as a seed, its columns kept paired) is resampled
    on its own — one ``[resamples, n_k]`` block of indices per stratum, drawn from ``rng`` in
    the strata's order — and ``statistic`` gets the list of ``[resamples, n_k, ...]``."""
    return statistic([np.asarray(s)[rng.integers(0, len(s), size=(resamples, len(s)))] for s in strata])
