"""The numbers of the rankings-and-ties section (#26): which cells it compares, and their paired statistics.

A cell's ranking fields (:data:`bench.sweep.config.RANKING_COLUMNS`) are in ``cells.csv`` only when one of
them differs from its default, so a pooled table has them empty for pair cells: :func:`ranking_cells`
completes them with the defaults. A *setting* is every configuration field but the budget and the ranking
fields (task instance, teacher, learner hyperparameters); within a setting the section compares *methods*:

* :func:`versus_pairs` — each K > 2 (fitted by Plackett–Luce or by pair split) against pairs (K = 2) at the
  same budget of comparisons, the paired difference in EPIC over seeds and the near-optimal rates;
* :func:`learners` — Plackett–Luce against pair split at the same K and budget (the same rankings on the same
  seed): the paired differences in mean EPIC and in its standard deviation across seeds, and the *relative
  efficiency* ``E[4·EPIC²] of pair split / E[4·EPIC²] of Plackett–Luce``. For the rewards here (``[S]``
  gridworld rewards, position-centred string tables) EPIC is the Pearson distance, so ``4·EPIC² = ‖r̂ − r*‖²``
  for the learned and true rewards each centred and scaled to unit norm: its mean over seeds is the
  estimator's mean squared error in that space (variance plus squared bias; the variance alone for a
  consistent estimator at large budgets), and the ratio is the variance ratio Zhu et al. (2023) bound;
* :func:`ties` — each tie model (Rao–Kupper, Davidson) against Bradley–Terry (``ties = "none"``: a tie is the
  soft label 0.5) on the same tied labels: the paired difference in EPIC, and the learner's probability that
  two segments of equal return tie (``(θ − 1)/(θ + 1)`` or ``ν/(2 + ν)``, from its fitted tie parameter)
  against the teacher's own.

Every interval is a percentile bootstrap over seeds (:mod:`bench.report.bootstrap`), one resample of seeds
serving every method of a (setting, budget) so that the differences are paired, its generator seeded by what
is compared (:func:`bench.report.stats.bootstrap_rng`); a family of comparisons (the K of one budget, the tie
models of one budget) is Bonferroni-corrected over its members.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

import rlhf
from rlhf.preferences.ties import tie_probabilities

from ..sweep.config import RANKING_COLUMNS, RANKING_DEFAULTS, group_columns
from . import bootstrap
from .bootstrap import CONFIDENCE
from .stats import bootstrap_rng, plain

SETTING = [c for c in group_columns() if c != "budget"]
"""What seeds and methods are compared within: the configuration but the budget and the ranking fields."""
PAIRS = "pairs"
PL, PS = "plackett-luce", "pair-split"
FITTED_TIE = "fitted_tie_param"
"""The metric holding a tie learner's fitted θ or ν (the field ``tie_param`` is where it started)."""
VERDICTS = ("below", "above", "not distinguishable", "identical")


def ranking_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with their ranking fields completed by the defaults (``rank`` an int) and ``fitted_tie`` (a
    tie learner's fitted θ or ν, NaN for the others); empty when no cell has a ranking field set."""
    if not any(c in cells for c in RANKING_COLUMNS) or cells.empty:
        return pd.DataFrame()
    frame = cells.copy()
    for name, default in RANKING_DEFAULTS.items():
        if name not in frame:
            frame[name] = default
            continue
        column = frame[name]
        missing = column.isna() | column.astype(str).eq("")
        frame[name] = column.astype(object).where(~missing, default)
    frame["rank"] = frame["rank"].astype(int)
    for name in ("rank_learner", "rank_cost", "ties", "tie_fit"):
        frame[name] = frame[name].astype(str)
    fitted = pd.to_numeric(frame[FITTED_TIE], errors="coerce") if FITTED_TIE in frame else np.nan
    frame["fitted_tie"] = pd.Series(fitted, index=frame.index).where(frame["ties"] != "none")
    set_ = (frame["rank"] != RANKING_DEFAULTS["rank"]) | (frame["ties"] != RANKING_DEFAULTS["ties"])
    set_ |= ((frame["rank_learner"] != RANKING_DEFAULTS["rank_learner"])
             | (frame["rank_cost"] != RANKING_DEFAULTS["rank_cost"])) & (frame["rank"] > 2)
    return frame if set_.any() else pd.DataFrame()


def split(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(the cells of every setting that holds a ranking or tie cell, every other cell)``: the first for
    this section, the second (:func:`without_rankings`) for the others, as if no ranking cell existed."""
    rest = without_rankings(cells)
    if len(rest) == len(cells):
        return cells.iloc[0:0], cells
    mine = cells[SETTING].merge(rest[SETTING].drop_duplicates().assign(_rest=True), on=SETTING,
                                how="left")["_rest"].isna().to_numpy()
    return cells[mine].reset_index(drop=True), rest.reset_index(drop=True)


def without_rankings(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` without this section's: every cell of a setting that holds a ranking or tie cell (those cells
    and the pair cells they are compared with), for the sections whose tables group by the configuration alone;
    the ranking columns go too when no cell left has one set."""
    frame = ranking_cells(cells)
    if frame.empty:
        return cells
    ranked = frame[(frame["rank"] > 2) | (frame["ties"] != "none")][SETTING].drop_duplicates()
    mine = cells[SETTING].merge(ranked.assign(_mine=True), on=SETTING, how="left")["_mine"].notna().to_numpy()
    rest = cells[~mine]
    if ranking_cells(rest).empty:                  # no ranking field left set: the pair sweeps' own columns
        rest = rest.drop(columns=[c for c in RANKING_COLUMNS if c in rest])
    return rest


def teacher_tie(spec: str) -> tuple[str, float]:
    """The teacher's tie model and its parameter (``("none", nan)`` for a teacher without one)."""
    teacher = rlhf.Teacher.parse(spec)
    return (teacher.tie_model, float(teacher.tie_param)) if teacher.tie_model != "none" else ("none", math.nan)


def tie_at_zero(model: str, params: np.ndarray) -> np.ndarray:
    """``P(tie)`` of two segments of equal return under ``model`` with θ or ν ``params`` (the library's
    formulas, :func:`rlhf.preferences.ties.tie_probabilities`, at margin 0)."""
    values = torch.tensor(np.array(params, dtype=float), dtype=torch.float64)
    return tie_probabilities(model, torch.zeros_like(values), torch.log(values))[2].numpy()


def _settings(frame: pd.DataFrame):
    """``(fields, rows)`` per setting (plain values), in sorted order."""
    for keys, rows in frame.groupby(SETTING, sort=True, dropna=False):
        yield {c: plain(v) for c, v in zip(SETTING, keys, strict=True)}, rows


def _matrix(rows: pd.DataFrame, methods: list, column: str, done_only: bool) -> tuple[list[int], np.ndarray]:
    """Seeds and ``[seeds, methods]`` values of ``column`` on the seeds every method has (a failed cell: dropped
    with ``done_only``, else 0, as a failure is a miss)."""
    rows = rows.drop_duplicates(["method", "seed"])
    values = rows[column].where(rows["status"] == "done", np.nan if done_only else 0.0)
    table = rows.assign(value=values).pivot(index="seed", columns="method", values="value").reindex(columns=methods)
    table = table.dropna()
    return [int(s) for s in table.index], table.to_numpy(dtype=float)


def _verdict(values: np.ndarray, a: int, b: int, low: float, high: float) -> str:
    if np.array_equal(values[:, a], values[:, b]):
        return "identical"
    return "below" if high < 0 else "above" if low > 0 else "not distinguishable"


def _rank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells of the rankings-versus-pairs comparisons (no tie model, rankings at K − 1 comparisons) with
    their ``method``: ``"pairs"`` or ``(K, learner)``."""
    rows = frame[(frame["ties"] == "none") & (frame["rank_cost"] == "comparisons")]
    rows = rows[rows["teacher"].map(lambda s: teacher_tie(s)[0] == "none")]
    method = [PAIRS if k == 2 else f"{k}:{learner}" for k, learner in zip(rows["rank"], rows["rank_learner"],
                                                                           strict=True)]
    return rows.assign(method=method)


def _method_order(method: str) -> tuple[int, int]:
    if method == PAIRS:
        return (2, 0)
    k, learner = method.split(":")
    return (int(k), 0 if learner == PL else 1)


def versus_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Per setting, budget, K and learner: EPIC of pairs and of the rankings (each with its CI), their paired
    difference (rankings − pairs) with its CI (Bonferroni over the K of one learner at one budget), its verdict,
    and both near-optimal rates with the paired difference's CI."""
    out = []
    for fields, rows in _settings(_rank_rows(frame)):
        methods = sorted(set(rows["method"]), key=_method_order)
        if PAIRS not in methods or len(methods) < 2:
            continue
        for budget, at in rows.groupby("budget", sort=True):
            here = [m for m in methods if m in set(at["method"])]
            if PAIRS not in here or len(here) < 2:
                continue
            key = fields | {"budget": plain(budget), "statistic": "rankings - pairs"}
            seeds, epic = _matrix(at, here, "epic", done_only=True)
            _, near = _matrix(at, here, "near_optimal", done_only=False)
            draws = bootstrap.resample(epic, bootstrap.mean, bootstrap_rng(key))
            own_low, own_high = bootstrap.percentile_interval(draws)
            near_draws = bootstrap.resample(near, bootstrap.mean, bootstrap_rng(key | {"metric": "near_optimal"}))
            for j, method in enumerate(here[1:], start=1):
                k, learner = method.split(":")
                family = sum(1 for m in here[1:] if m.endswith(learner))
                level = 1 - (1 - CONFIDENCE) / family
                low, high = bootstrap.percentile_interval(draws[:, j] - draws[:, 0], level)
                n_low, n_high = bootstrap.percentile_interval(near_draws[:, j] - near_draws[:, 0], level)
                out.append({**fields, "budget": int(budget), "rank": int(k), "rank_learner": learner,
                            "seeds": len(seeds), "epic_pairs": float(epic[:, 0].mean()),
                            "epic_rankings": float(epic[:, j].mean()),
                            "epic_pairs_ci_low": float(own_low[0]), "epic_pairs_ci_high": float(own_high[0]),
                            "epic_rankings_ci_low": float(own_low[j]), "epic_rankings_ci_high": float(own_high[j]),
                            "difference": float(epic[:, j].mean() - epic[:, 0].mean()),
                            "ci_low": float(low), "ci_high": float(high), "confidence": level,
                            "verdict": _verdict(epic, j, 0, float(low), float(high)),
                            "near_optimal_pairs": float(near[:, 0].mean()),
                            "near_optimal_rankings": float(near[:, j].mean()),
                            "near_optimal_difference": float(near[:, j].mean() - near[:, 0].mean()),
                            "near_optimal_ci_low": float(n_low), "near_optimal_ci_high": float(n_high)})
    return pd.DataFrame(out)


def _learner_statistics(resampled: np.ndarray) -> np.ndarray:
    """``[R, n, 2]`` EPIC of (Plackett–Luce, pair split) → ``[R, 6]``: their means, their standard deviations
    across seeds, and their mean ``4·EPIC²`` (squared distance of the unit-norm centred rewards)."""
    return np.concatenate([resampled.mean(1), resampled.std(1, ddof=1), (4 * resampled ** 2).mean(1)], axis=-1)


def learners(frame: pd.DataFrame) -> pd.DataFrame:
    """Per setting, budget and K with both learners: each learner's mean EPIC, its standard deviation across
    seeds and mean ``4·EPIC²``; the paired differences Plackett–Luce − pair split of the mean and of the
    standard deviation and the relative efficiency (pair split's ``E[4·EPIC²]`` over Plackett–Luce's), each
    with its CI (Bonferroni over the K of one budget), and both near-optimal rates."""
    out = []
    for fields, rows in _settings(_rank_rows(frame)):
        rows = rows[rows["rank"] > 2]
        for budget, at in rows.groupby("budget", sort=True):
            ks = sorted(k for k in set(at["rank"]) if {f"{k}:{PL}", f"{k}:{PS}"} <= set(at["method"]))
            for k in ks:
                methods = [f"{k}:{PL}", f"{k}:{PS}"]
                key = fields | {"budget": plain(budget), "rank": int(k), "statistic": "plackett-luce - pair-split"}
                seeds, epic = _matrix(at, methods, "epic", done_only=True)
                _, near = _matrix(at, methods, "near_optimal", done_only=False)
                if len(seeds) < 2:
                    continue
                level = 1 - (1 - CONFIDENCE) / len(ks)
                point = _learner_statistics(epic[None])[0]
                draws = bootstrap.resample(epic, _learner_statistics, bootstrap_rng(key))
                mean_low, mean_high = bootstrap.percentile_interval(draws[:, 0] - draws[:, 1], level)
                std_low, std_high = bootstrap.percentile_interval(draws[:, 2] - draws[:, 3], level)
                with np.errstate(divide="ignore", invalid="ignore"):
                    eff_low, eff_high = bootstrap.percentile_interval(draws[:, 5] / draws[:, 4], level)
                out.append({**fields, "budget": int(budget), "rank": int(k), "seeds": len(seeds),
                            "epic_pl": point[0], "epic_ps": point[1], "difference": point[0] - point[1],
                            "ci_low": float(mean_low), "ci_high": float(mean_high),
                            "verdict": _verdict(epic, 0, 1, float(mean_low), float(mean_high)),
                            "std_pl": point[2], "std_ps": point[3], "std_difference": point[2] - point[3],
                            "std_ci_low": float(std_low), "std_ci_high": float(std_high),
                            "mse_pl": point[4], "mse_ps": point[5],
                            "efficiency": point[5] / point[4] if point[4] > 0 else math.inf,
                            "efficiency_ci_low": float(eff_low), "efficiency_ci_high": float(eff_high),
                            "confidence": level, "near_optimal_pl": float(near[:, 0].mean()),
                            "near_optimal_ps": float(near[:, 1].mean())})
    return pd.DataFrame(out)


def ties(frame: pd.DataFrame) -> pd.DataFrame:
    """Per setting with a tie learner, budget and learner (Bradley–Terry ``none`` first): mean EPIC with its
    CI; for a tie model the paired difference from Bradley–Terry (CI Bonferroni over the tie models of one
    budget) and its verdict, the mean fitted tie parameter and the learner's tie probability of equal returns
    (mean, CI) beside the teacher's, and the near-optimal rate."""
    rows = frame[frame["rank"] == 2]
    out = []
    for fields, setting in _settings(rows):
        if (setting["ties"] == "none").all() or not (setting["ties"] == "none").any():
            continue
        model, param = teacher_tie(str(fields["teacher"]))
        truth = float(tie_at_zero(model, np.array([param]))[0]) if model != "none" else math.nan
        setting = setting.assign(method=setting["ties"] + ":" + setting["tie_fit"])
        methods = sorted(set(setting["method"]), key=lambda m: (m.split(":")[0] != "none", m))
        for budget, at in setting.groupby("budget", sort=True):
            here = [m for m in methods if m in set(at["method"])]
            if here[0].split(":")[0] != "none" or len(here) < 2:
                continue
            key = fields | {"budget": plain(budget), "statistic": "tie models - bradley-terry"}
            seeds, epic = _matrix(at, here, "epic", done_only=True)
            _, near = _matrix(at, here, "near_optimal", done_only=False)
            draws = bootstrap.resample(epic, bootstrap.mean, bootstrap_rng(key))
            low, high = bootstrap.percentile_interval(draws)
            level = 1 - (1 - CONFIDENCE) / (len(here) - 1)
            for j, method in enumerate(here):
                learner, fit = method.split(":")
                row = {**fields, "budget": int(budget), "ties": learner, "tie_fit": fit, "seeds": len(seeds),
                       "epic": float(epic[:, j].mean()), "epic_ci_low": float(low[j]),
                       "epic_ci_high": float(high[j]), "near_optimal": float(near[:, j].mean()),
                       "teacher_tie_model": model, "teacher_tie": truth}
                if j:
                    d_low, d_high = bootstrap.percentile_interval(draws[:, j] - draws[:, 0], level)
                    fitted = at[(at["method"] == method) & (at["status"] == "done")].drop_duplicates("seed")
                    fitted = fitted.set_index("seed").loc[seeds, "fitted_tie"].to_numpy(dtype=float)
                    p = tie_at_zero(learner, fitted)
                    p_low, p_high = bootstrap.interval(p, bootstrap.mean, bootstrap_rng(key | {"tie": method}))
                    row |= {"difference": float(epic[:, j].mean() - epic[:, 0].mean()), "ci_low": float(d_low),
                            "ci_high": float(d_high), "confidence": level,
                            "verdict": _verdict(epic, j, 0, float(d_low), float(d_high)),
                            "fitted_tie_param": float(np.mean(fitted)), "tie": float(np.mean(p)),
                            "tie_ci_low": p_low, "tie_ci_high": p_high}
                out.append(row)
    return pd.DataFrame(out)
