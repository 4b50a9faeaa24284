"""Gao, Schulman and Hilton's (2023) functional forms for over-optimisation, fitted with bootstrap
intervals over seeds.

With ``d = √KL(π ‖ π_ref)`` and the gold reward measured from the reference's (``gain = gold(d) −
gold(0)``), Gao et al. fit::

    best-of-n   R_bon(d) = d·(α − β·d)        = α·d − β·d²
    RL          R_RL(d)  = d·(α − β·log d)    = α·d − β·d·log d      (d·log d → 0 at d = 0)

Both are linear in (α, β), so the least-squares fit is closed form: the 2×2 normal equations
``(XᵀX)·(α, β) = Xᵀy`` with the columns ``X = [d, −d²]`` or ``[d, −d·log d]``, pooled over every point
of every seed. Peaks (where the derivative is 0, a maximum when β > 0)::

    bon   d* = α / (2β),          R* = α² / (4β)
    RL    d* = exp(α/β − 1),      R* = β·d*            (α − β·log d* = β there)

With β ≤ 0 the form never turns down: ``d* = R* = inf``.

Intervals: a percentile bootstrap over seeds (:mod:`bench.report.bootstrap`: seeds resampled with
replacement, each seed's curve kept whole). The pooled fit only needs each seed's ``XᵀX`` and ``Xᵀy``,
so a resample's fit is the solve of the sums of its seeds' statistics, with no refitting of points.
The generator is the caller's (the report's :func:`bench.report.stats.bootstrap_rng`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import bootstrap

FORMS = ("bon", "rl")
"""``bon``: ``d·(α − β·d)``; ``rl``: ``d·(α − β·log d)``."""


def design(form: str, d: np.ndarray) -> np.ndarray:
    """``X[n, 2]``: the columns multiplying (α, β) in ``form`` at distances ``d[n] >= 0``."""
    d = np.asarray(d, dtype=float)
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise ValueError("distances d must be finite and >= 0")
    if form == "bon":
        return np.stack([d, -d * d], axis=-1)
    d_log_d = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return np.stack([d, -d_log_d], axis=-1)


def predict(form: str, d: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The form's gain at distances ``d``."""
    return design(form, d) @ np.array([alpha, beta])


def peak(form: str, alpha: np.ndarray | float, beta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(d*, R*)`` of the form (elementwise; ``inf`` where β <= 0), see the module docstring."""
    a, b = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    turns = b > 0
    safe = np.where(turns, b, 1.0)
    if form == "bon":
        d_star, top = a / (2 * safe), a * a / (4 * safe)
    elif form == "rl":
        with np.errstate(over="ignore"):
            d_star = np.exp(a / safe - 1)
        top = safe * d_star
    else:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    return np.where(turns, d_star, np.inf), np.where(turns, top, np.inf)


def _statistics(form: str, curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``[seeds, 6]``: each seed's ``XᵀX`` (4, row-major) and ``Xᵀy`` (2)."""
    rows = []
    for d, gain in curves:
        X, y = design(form, d), np.asarray(gain, dtype=float)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"a curve needs one gain per distance, got {X.shape[0]} distances and {y.shape[0]} gains")
        rows.append(np.concatenate([(X.T @ X).reshape(-1), X.T @ y]))
    return np.array(rows)


def _solve(stats: np.ndarray) -> np.ndarray:
    """``[..., 2]`` (α, β) from summed statistics ``[..., 6]`` (Cramer's rule: NaN when singular)."""
    a, b, c, e, u, v = (stats[..., i] for i in range(6))        # XᵀX = [[a, b], [c, e]], Xᵀy = (u, v)
    det = a * e - b * c
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack([(e * u - b * v) / det, (a * v - c * u) / det], axis=-1)


def fit(form: str, d: np.ndarray, gain: np.ndarray) -> tuple[float, float]:
    """``(α, β)``: the least-squares fit of ``form`` to ``gain`` at distances ``d`` (closed form)."""
    alpha, beta = _solve(_statistics(form, [(d, gain)]).sum(0))
    return float(alpha), float(beta)


@dataclass(frozen=True)
class GaoFit:
    """A form fitted to a configuration's per-seed curves, with bootstrap intervals over seeds."""

    form: str
    alpha: float
    beta: float
    d_star: float
    """The peak's distance ``d*`` (inf when the fit never turns down)."""
    peak: float
    """The fitted gain at the peak, ``R(d*)``."""
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    d_star_ci: tuple[float, float]
    peak_ci: tuple[float, float]
    r2: float
    """``1 − SS_res/SS_tot`` over the pooled points."""
    rmse: float
    seeds: int
    points: int


def fit_curves(form: str, curves: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
               resamples: int = bootstrap.BOOTSTRAP_RESAMPLES, confidence: float = bootstrap.CONFIDENCE) -> GaoFit:
    """``form`` fitted to per-seed ``curves`` (``(d[n_k], gain[n_k])`` each, gains from the reference's gold):
    the pooled least-squares point estimate and percentile-bootstrap intervals over seeds for α, β, d* and
    R(d*), drawn from ``rng`` (one ``[resamples, seeds]`` block of indices). Intervals of d* and R* take
    discrete ends when some resamples never turn down (``inf``)."""
    if not curves:
        raise ValueError("curves must not be empty")
    stats = _statistics(form, curves)
    alpha, beta = (float(v) for v in _solve(stats.sum(0)))
    d_star, top = (float(v) for v in peak(form, alpha, beta))
    draws = bootstrap.resample(stats, lambda s: _solve(s.sum(axis=1)), rng, resamples)   # [R, 2]
    stars, tops = peak(form, draws[:, 0], draws[:, 1])
    d_all = np.concatenate([np.asarray(d, dtype=float) for d, _ in curves])
    y_all = np.concatenate([np.asarray(g, dtype=float) for _, g in curves])
    residual = y_all - predict(form, d_all, alpha, beta)
    total = float(((y_all - y_all.mean()) ** 2).sum())
    r2 = 1 - float((residual ** 2).sum()) / total if total > 0 else float("nan")

    def ci(x: np.ndarray) -> tuple[float, float]:
        low, high = bootstrap.percentile_interval(x, confidence, discrete=not bool(np.all(np.isfinite(x))))
        return float(low), float(high)

    return GaoFit(form, alpha, beta, d_star, top, ci(draws[:, 0]), ci(draws[:, 1]), ci(stars), ci(tops), r2,
                  float(np.sqrt((residual ** 2).mean())), len(curves), int(d_all.shape[0]))
