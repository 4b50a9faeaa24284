"""The over-optimisation cells as the report reads them: every path point of every seed, and the fits.

:func:`points` turns the cells (one row per seed, :mod:`bench.sweep.overoptimising`) and their stored
histories into one long frame, a row per path point: the configuration, the seed, the path, its
``param``, ``kl``, ``d = √KL``, ``proxy_return`` and ``gold_return``, and the gains Gao et al. plot:
``gold_gain = gold − gold_ref`` (the reference's gold return, exact) and ``proxy_gain = proxy −``
the proxy's return under the reference (best-of-n at n = 1, which *is* the reference; NaN on a
method's path, whose proxy is its own implicit reward). :func:`fits` fits Gao et al.'s two forms to
each configuration's per-seed gold-gain curves (:mod:`bench.report.gao`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..sweep.config import OVEROPTIMISATION_COLUMNS, CellConfig, grouping_columns
from ..sweep.overoptimising import QUANTITIES
from . import gao
from .stats import bootstrap_rng

PATHS = ("best_of_n", "kl", "npg", "align")
"""The paths a cell may store, in the report's order."""
PATH_NAMES = {"best_of_n": "best-of-n", "kl": "KL-regularised RL", "npg": "natural policy gradient",
              "align": "direct alignment along β"}
FORM_OF = {"best_of_n": "bon", "kl": "rl", "npg": "rl", "align": "rl"}
"""The form Gao et al. fit to each kind of path: best-of-n's ``d(α − βd)``, RL's ``d(α − β log d)``."""


def split(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(over-optimisation cells, every other cell)``; the others without the over-optimisation
    columns, so the rest of the report reads them as it did before such cells existed."""
    if "proxy" not in cells:
        return cells.iloc[0:0], cells
    paths = cells["proxy"].fillna("").astype(str) != ""
    own = [c for c in OVEROPTIMISATION_COLUMNS if c != "reference" or "method" not in cells]   # alignment's too
    rest = cells[~paths].drop(columns=[c for c in own if c in cells])
    return cells[paths].reset_index(drop=True), rest.reset_index(drop=True)


def setting_columns(cells: pd.DataFrame) -> list[str]:
    """The configuration columns without seed (budget included)."""
    return [c for c in grouping_columns(cells) if c in cells]


def points(cells: pd.DataFrame, stored: Mapping[str, dict]) -> pd.DataFrame:
    """One row per path point of every done cell (see the module docstring)."""
    settings = setting_columns(cells)
    frames = []
    for _, row in cells[cells["status"] == "done"].iterrows():
        history = stored[CellConfig.from_fields({str(k): v for k, v in row.items()}).key]["history"]
        base = {c: row[c] for c in [*settings, "seed"]}
        reference_proxy = history["best_of_n.proxy"][0] if "best_of_n.proxy" in history else np.nan
        for path in PATHS:
            if f"{path}.kl" not in history:
                continue
            frame = pd.DataFrame({q: history[f"{path}.{q}"] for q in QUANTITIES})
            frame["d"] = np.sqrt(frame["kl"].clip(lower=0.0))
            frame["gold_gain"] = frame["gold"] - float(row["gold_ref"])
            frame["proxy_gain"] = frame["proxy"] - reference_proxy if path != "align" else np.nan
            frame["step"] = np.arange(len(frame))
            frame = frame.rename(columns={"proxy": "proxy_return", "gold": "gold_return"})   # "proxy": the spec
            frames.append(frame.assign(path=path, **base))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def curves(rows: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each seed's ``(d, gold_gain)`` of one configuration's path."""
    return [(g["d"].to_numpy(float), g["gold_gain"].to_numpy(float)) for _, g in rows.groupby("seed", sort=True)]


def fits(table: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """Both of Gao et al.'s forms fitted to every configuration's path (``form_used``: the one Gao et al.
    fit to that kind of path), with bootstrap CIs over seeds (the generator seeded by the configuration,
    path and form)."""
    rows = []
    for key, group in table.groupby([*settings, "path"], sort=True, dropna=False):
        fields = dict(zip([*settings, "path"], key, strict=True))
        for form in gao.FORMS:
            fit = gao.fit_curves(form, curves(group), bootstrap_rng(fields | {"form": form}))
            rows.append(fields | {"form": form, "form_used": form == FORM_OF[str(fields["path"])],
                                  "alpha": fit.alpha, "alpha_ci_low": fit.alpha_ci[0], "alpha_ci_high": fit.alpha_ci[1],
                                  "beta": fit.beta, "beta_ci_low": fit.beta_ci[0], "beta_ci_high": fit.beta_ci[1],
                                  "d_star": fit.d_star, "d_star_ci_low": fit.d_star_ci[0],
                                  "d_star_ci_high": fit.d_star_ci[1], "peak": fit.peak, "peak_ci_low": fit.peak_ci[0],
                                  "peak_ci_high": fit.peak_ci[1], "r2": fit.r2, "rmse": fit.rmse, "seeds": fit.seeds,
                                  "points": fit.points})
    return pd.DataFrame(rows)
