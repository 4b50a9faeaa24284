"""The report's over-optimisation section (#25): Gao, Schulman and Hilton's (2023) curves, exact.

It reads the over-optimisation cells (cells with a ``proxy``: a run of
``bench/configs/overoptimisation.toml``; :mod:`bench.sweep.overoptimising` says what each is) and
their stored paths, and writes:

* ``overoptimisation_paths.csv``: every path's mean curve over seeds (d, KL, proxy and gold gains);
* ``overoptimisation_fits.csv``: both of Gao et al.'s forms fitted to every configuration and path,
  with percentile-bootstrap CIs over seeds for α, β, the peak's d* and gain, and R²;
* ``overoptimisation_peaks.csv``: the exact peak along each path (its d, its gold gain, the drop after
  it), mean over seeds with CIs;
* three figures: Gao et al.'s Figure 1 layout, the forms' goodness of fit, the peak against N;

and the front page's Markdown: the fitted parameters, the peaks by proxy, teacher and N, and the
findings against Gao et al., Coste et al. and Rafailov et al. (:mod:`bench.report.overoptimisation_findings`).
Nothing without over-optimisation cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlhf.policies.overoptimization import actions_steer

from ..sweep import overoptimising
from ..sweep.config import CellConfig
from ..sweep.overoptimising import with_gold
from . import overoptimisation_figures as figures
from . import overoptimisation_findings as findings
from .bootstrap import CONFIDENCE
from .overoptimisation_data import PATH_NAMES, PATHS, fits, points, setting_columns
from .section import Figure, ReportInputs, SectionOutput

MAIN = ("task", "reference", "gold", "teacher")
"""What picks the setting of Gao et al.'s figure (with the BT proxy): see :func:`main_setting`."""


def per_seed(cells: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """One row per (configuration, seed, path): the exact peak's d and gold gain, the gold gain at the
    path's hardest point, and the drop between them (the cells' metrics)."""
    frames = []
    for path in PATHS:
        if f"{path}_peak_gold" not in cells:
            continue
        rows = cells[cells[f"{path}_peak_gold"].notna()]
        frames.append(rows[[*settings, "seed"]].assign(
            path=path, peak_gain=rows[f"{path}_peak_gold"] - rows["gold_ref"], peak_d=rows[f"{path}_peak_d"],
            end_gain=rows[f"{path}_end_gold"] - rows["gold_ref"], drop=rows[f"{path}_drop"]))
    return pd.concat(frames, ignore_index=True)


def peaks(seeds: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """Per configuration and path: the means over seeds of :func:`per_seed`'s values with bootstrap CIs."""
    rows = []
    for key, group in seeds.groupby([*settings, "path"], sort=True, dropna=False):
        fields = dict(zip([*settings, "path"], key, strict=True))
        row = dict(fields, seeds=len(group))
        for value in ("peak_d", "peak_gain", "end_gain", "drop"):
            mean, low, high = findings.mean_ci(group[value], fields | {"value": value})
            row |= {f"{value}_mean": mean, f"{value}_ci_low": low, f"{value}_ci_high": high}
        row["falls"] = float(np.mean(group["drop"] > findings.DROP_TOLERANCE))
        rows.append(row)
    return pd.DataFrame(rows)


def main_setting(table: pd.DataFrame) -> dict:
    """The setting of Gao et al.'s figure: of those with a BT proxy and best-of-n paths, the one with the
    most values of N (ties: the first in sorted order)."""
    bt = table[(table["proxy"] == "bt") & (table["path"] == "best_of_n")]
    counts = bt.groupby(list(MAIN), sort=True)["budget"].nunique()
    return dict(zip(MAIN, tuple(counts.idxmax()), strict=True)) if len(counts) else {}   # type: ignore[arg-type]


def section(inputs: ReportInputs) -> SectionOutput:
    cells, stage = inputs.paths, inputs.stage
    if cells.empty:
        return SectionOutput()
    settings = setting_columns(cells)
    table = points(cells, inputs.stored)
    fit_table = fits(table, settings)
    seeds = per_seed(cells[cells["status"] == "done"], settings)
    peak_table = peaks(seeds, settings)
    main = main_setting(table)
    files = [stage / f"overoptimisation_{name}.csv" for name in ("paths", "fits", "peaks")]
    curves = table.groupby([*settings, "path", "step"], sort=True, dropna=False)[
        ["param", "kl", "d", "proxy_gain", "gold_gain"]].mean().reset_index()
    for frame, path in zip((curves, fit_table, peak_table), files, strict=True):
        frame.to_csv(path, index=False, float_format="%.6g")
    chosen = _where(table, main | {"proxy": "bt"})
    figs = [Figure(figures.gao_figure(chosen, _where(fit_table, main | {"proxy": "bt"}),
                                      stage / "overoptimisation_gao.png"),
                   "Reward over-optimisation: gold and proxy against √KL (Gao et al.'s Figure 1)", _gao_caption(main)),
            Figure(figures.fit_figure(table, fit_table, settings, stage / "overoptimisation_fit.png"),
                   "Reward over-optimisation: how well Gao et al.'s forms fit",
                   "Each form's fitted gold gain (y) against the measured mean gold gain (x) at every point of every "
                   "configuration's best-of-n path (top) and KL path (bottom), left d(α − βd), right d(α − β log d), "
                   "both divided by the configuration's largest measured gain (the gridworld's returns are 30 times "
                   "the string task's); the line is y = x. The title gives the median R² over configurations."),
            Figure(figures.peaks_figure(_where(peak_table, {k: main.get(k) for k in ("task", "reference")})
                                        .loc[lambda f: f["path"].isin(["kl", "align"])],
                                        stage / "overoptimisation_peaks.png"),
                   "Reward over-optimisation: where the gold peaks, against the number of pairs",
                   "For each proxy and teacher (and DPO/IPO along β), the exact peak of the gold return along the KL "
                   "path: its distance d = √KL from the reference (left) and the gold gain there (right), mean over "
                   f"seeds with {CONFIDENCE:.0%} bootstrap CI bars, against the pairs N the proxy was learned from.")]
    files += [f.path for f in figs]
    lines = ["## Reward over-optimisation", "", _introduction(cells), "",
             "### Gao et al.'s forms, fitted", "", _fit_text(), "", _fit_markdown(fit_table, main), "",
             "### Where the gold peaks", "",
             f"The exact peak of each seed's gold curve (d and gain), the gold gain at the path's hardest point, and "
             f"the share of seeds whose gold falls after its peak; means over seeds with {CONFIDENCE:.0%} "
             "bootstrap CIs. All configurations: [overoptimisation_peaks.csv](overoptimisation_peaks.csv).", "",
             _peak_markdown(peak_table, main), "", "### Findings against the papers", ""]
    found = (findings.gao_hump(seeds, table, main) + findings.gao_peak_with_data(peak_table, main)
             + findings.gao_forms(fit_table) + findings.kl_bound(table) + findings.coste(seeds)
             + findings.rafailov(seeds, main) + findings.noise(seeds, main) + findings.npg(seeds, steering(cells)))
    lines += [f"- {text}" for text in found] + [""]
    return SectionOutput(lines=lines, files=files, figures=figs)


def steering(cells: pd.DataFrame) -> dict[str, bool]:
    """Per task: whether any of its instances' actions steer the state (:func:`actions_steer`)."""
    out: dict[str, bool] = {}
    for _, row in cells.drop_duplicates("task").iterrows():
        task = with_gold(CellConfig.from_fields({str(k): v for k, v in row.items()}).make_task(), str(row["gold"]))
        out[str(row["task"])] = actions_steer(task.mdp)
    return out


def _where(frame: pd.DataFrame, fields: dict) -> pd.DataFrame:
    for column, value in fields.items():
        frame = frame[frame[column] == value]
    return frame


def _introduction(cells: pd.DataFrame) -> str:
    seeds = int(cells.groupby(setting_columns(cells), dropna=False)["seed"].nunique().min())
    proxies = ", ".join(f"`{p}`" for p in sorted(set(cells["proxy"])))
    return (f"{len(cells)} cells: a proxy ({proxies}) learned from N pairs rolled out from the reference and labelled "
            f"by the teacher, at least {seeds} seeds each, optimised along fixed paths away from the reference "
            "(`bench/sweep/overoptimising.py`): the KL-regularised optimum `kl_regularized_policy(proxy, β)` for "
            f"{len(overoptimising.KL_BETAS)} values of β from {overoptimising.KL_BETAS[0]:g} to "
            f"{overoptimising.KL_BETAS[-1]:.3g}; best-of-n under the reference for n = 1 … {overoptimising.NS[-1]} "
            "(the exact distribution over the task's trajectories, ties broken uniformly); natural policy gradient "
            f"for up to {overoptimising.NPG_STEPS[-1]} steps at η = {overoptimising.NPG_LR:g}; and a direct-alignment "
            f"method fitted at β ∈ {{{', '.join(f'{b:g}' for b in overoptimising.METHOD_BETAS)}}}. Every point's KL, "
            "proxy and gold return is exact (no sampling). Gains are from the reference's own returns; d = √KL. "
            "Curves: [overoptimisation_paths.csv](overoptimisation_paths.csv).")


def _fit_text() -> str:
    return ("Gao et al.'s forms, R_bon(d) = d(α − βd) on best-of-n and R_RL(d) = d(α − β log d) on the KL path, "
            "fitted by pooled least squares to every seed's gold-gain curve (`bench/report/gao.py`), with "
            f"{CONFIDENCE:.0%} percentile-bootstrap CIs over seeds for α, β and the peak d* (∞ where the fit never "
            "turns down). The figure's setting below (the noisy teacher's and the ensembles' too are in the CSV); "
            "every configuration, path and form: "
            "[overoptimisation_fits.csv](overoptimisation_fits.csv).")


def _ci(row: pd.Series, name: str, digits: int = 2, point: str = "") -> str:
    """``value [low, high]`` of ``name`` (its point estimate in column ``point or name``)."""
    def f(v: float) -> str:
        return "∞" if not np.isfinite(v) else f"{v:.{digits}f}"
    return f"{f(row[point or name])} [{f(row[f'{name}_ci_low'])}, {f(row[f'{name}_ci_high'])}]"


def _fit_markdown(fit_table: pd.DataFrame, main: dict) -> str:
    rows = _where(fit_table[fit_table["form_used"]], main)
    rows = rows[rows["path"].isin(["best_of_n", "kl"]) & rows["proxy"].isin(["bt", "min:5"])]
    table = pd.DataFrame({
        "teacher": rows["teacher"], "proxy": rows["proxy"], "N": rows["budget"].astype(int),
        "path": rows["path"].map(PATH_NAMES), "α": [_ci(r, "alpha") for _, r in rows.iterrows()],
        "β": [_ci(r, "beta", 3) for _, r in rows.iterrows()], "d*": [_ci(r, "d_star") for _, r in rows.iterrows()],
        "R²": rows["r2"].map(lambda v: f"{v:.3f}")})
    return table.to_markdown(index=False)


def _peak_markdown(peak_table: pd.DataFrame, main: dict) -> str:
    rows = _where(peak_table, {k: v for k, v in main.items() if k != "teacher"})
    rows = rows[rows["path"].isin(["kl", "align"])]
    table = pd.DataFrame({
        "teacher": rows["teacher"], "proxy": rows["proxy"], "path": rows["path"].map(PATH_NAMES),
        "N": rows["budget"].astype(int), "d at peak": [_ci(r, "peak_d", 2, "peak_d_mean") for _, r in rows.iterrows()],
        "peak gold gain": [_ci(r, "peak_gain", 3, "peak_gain_mean") for _, r in rows.iterrows()],
        "gold gain at the end": [_ci(r, "end_gain", 3, "end_gain_mean") for _, r in rows.iterrows()],
        "seeds falling": rows["falls"].map(lambda v: f"{v:.0%}")})
    return table.to_markdown(index=False)


def _gao_caption(main: dict) -> str:
    setting = ", ".join(f"{k} {v}" for k, v in main.items() if v != "")
    return (f"The Bradley–Terry proxy on {setting}: a column per number of pairs N it was learned from; top, "
            "best-of-n under the reference for n = 1 … 4096; bottom, the KL-regularised optimum as β falls. Solid: "
            "gold (true) return gain over the reference, mean over seeds (each seed faint); dashed: the proxy's own "
            "gain, on the right axis (learned from few pairs it is on a scale many times the gold's); dotted: Gao "
            "et al.'s form fitted to the gold. Everything exact. Look for the proxy rising "
            "while the gold turns down, and for the turn moving right as N grows.")
