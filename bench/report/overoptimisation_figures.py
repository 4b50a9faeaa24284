"""The over-optimisation section's figures: Gao et al.'s Figure 1 layout, the forms' goodness of fit,
and how the peak moves with the number of pairs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import gao
from .figures import MARKERS, _save
from .overoptimisation_data import FORM_OF, PATH_NAMES


def _mean_curve(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    """Mean over seeds of ``d`` and ``value`` at each point of a path (the grid is every seed's)."""
    return rows.groupby("step", sort=True)[["d", value]].mean()


def gao_figure(table: pd.DataFrame, fit_table: pd.DataFrame, path: Path) -> Path:
    """Gao et al.'s Figure 1 layout for one setting: a column per number of pairs N, a row per path
    (best-of-n, KL-regularised RL); gold gain (solid) and proxy gain (dashed) against d = √KL, means over
    seeds, each seed's gold curve faint, and the form fitted to the gold (dotted). The proxy has its own
    axis (right): learned from few pairs it is on a scale many times the gold's."""
    budgets = sorted(table["budget"].unique())
    paths = [p for p in ("best_of_n", "kl") if p in set(table["path"])]
    fig, axes = plt.subplots(len(paths), len(budgets), figsize=(3.3 * len(budgets), 3.0 * len(paths) + 0.4),
                             squeeze=False, sharey="row")
    for r, name in enumerate(paths):
        for c, budget in enumerate(budgets):
            ax = axes[r, c]
            rows = table[(table["path"] == name) & (table["budget"] == budget)]
            for _, seed in rows.groupby("seed"):
                ax.plot(seed["d"], seed["gold_gain"], color="C0", alpha=0.15, lw=0.7)
            gold, proxy = _mean_curve(rows, "gold_gain"), _mean_curve(rows, "proxy_gain")
            ax.plot(gold["d"], gold["gold_gain"], "-o", color="C0", ms=3, label="gold (true reward), left axis")
            twin = ax.twinx()        # a proxy learned from few pairs is on a scale of its own (overconfident)
            twin.plot(proxy["d"], proxy["proxy_gain"], "--s", color="C1", ms=3,
                      label="proxy (learned reward), right axis")
            twin.tick_params(axis="y", colors="C1", labelsize=7)
            twin.set_ylim(bottom=min(0.0, float(proxy["proxy_gain"].min())))
            fit = fit_table[(fit_table["path"] == name) & (fit_table["budget"] == budget)
                            & (fit_table["form"] == FORM_OF[name])]
            if len(fit):
                f = fit.iloc[0]
                grid = np.linspace(0, float(rows["d"].max()), 100)
                ax.plot(grid, gao.predict(f["form"], grid, f["alpha"], f["beta"]), ":", color="black", lw=1.2,
                        label="Gao et al.'s form fitted to gold")
            ax.axhline(0, color="grey", lw=0.6)
            ax.set_title(f"{PATH_NAMES[name]}, N = {budget}", fontsize=9)
            ax.set_xlabel("d = √KL(π ‖ π_ref)")
            if c == 0:
                ax.set_ylabel("return gain over the reference")
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    extra = fig.axes[len(paths) * len(budgets)].get_legend_handles_labels()       # the first twin axis
    handles, labels = [*handles[:1], *extra[0], *handles[1:]], [*labels[:1], *extra[1], *labels[1:]]
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    return _save(fig, path, tight=False)


def fit_figure(table: pd.DataFrame, fit_table: pd.DataFrame, settings: list[str], path: Path) -> Path:
    """Goodness of fit: each form's prediction against the measured mean gold gain, for best-of-n and the
    KL path (a panel per path × form, every configuration's points, the line y = x, median R² in the title).
    Both are divided by the configuration's largest measured gain, so that tasks whose returns differ in
    scale by 30x (a gridworld's against a string's) share the axes."""
    paths = [p for p in ("best_of_n", "kl") if p in set(table["path"])]
    fig, axes = plt.subplots(len(paths), len(gao.FORMS), figsize=(7.6, 3.4 * len(paths)), squeeze=False)
    for r, name in enumerate(paths):
        for c, form in enumerate(gao.FORMS):
            ax = axes[r, c]
            chosen = fit_table[(fit_table["path"] == name) & (fit_table["form"] == form)]
            for k, (_, fit) in enumerate(chosen.iterrows()):
                rows = table[(table["path"] == name)]
                for column in settings:
                    rows = rows[(rows[column] == fit[column]) | (rows[column].isna() & pd.isna(fit[column]))]
                mean = _mean_curve(rows, "gold_gain")
                predicted = gao.predict(form, mean["d"].to_numpy(), fit["alpha"], fit["beta"])
                scale = max(float(mean["gold_gain"].abs().max()), 1e-12)
                ax.plot(mean["gold_gain"] / scale, predicted / scale, MARKERS[k % len(MARKERS)], ms=3, alpha=0.6,
                        color=f"C{k % 10}")
            ax.plot([-0.2, 1.1], [-0.2, 1.1], color="black", lw=0.8)
            ax.set_xlim(-0.25, 1.15)
            ax.set_ylim(-0.25, 1.15)
            form_text = "d(α − βd)" if form == "bon" else "d(α − β log d)"
            ax.set_title(f"{PATH_NAMES[name]}: {form_text}\nmedian R² = {chosen['r2'].median():.3f}", fontsize=9)
            ax.set_xlabel("mean measured gold gain ÷ its largest")
            ax.set_ylabel("fitted ÷ the same")
            ax.grid(alpha=0.3)
    return _save(fig, path)


def peaks_figure(peaks: pd.DataFrame, path: Path) -> Path:
    """The exact peak of the gold along each path against N: ``d`` at the peak (left) and the gold gain
    there (right), mean over seeds with 95% bootstrap CI bars, a line per (proxy, teacher, path)."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.9))
    for k, (key, rows) in enumerate(peaks.groupby(["proxy", "teacher", "path"], sort=True)):
        rows = rows.sort_values("budget")
        label = f"{key[0]} · {key[1]} · {PATH_NAMES[str(key[2])]}"
        for ax, value in zip(axes, ("peak_d", "peak_gain"), strict=True):
            mean = rows[f"{value}_mean"].to_numpy(float)
            bars = np.clip([mean - rows[f"{value}_ci_low"], rows[f"{value}_ci_high"] - mean], 0, None)
            ax.errorbar(rows["budget"] * (1 + 0.03 * (k - 3)), mean, yerr=bars, marker=MARKERS[k % len(MARKERS)],
                        ms=4, lw=1.0, capsize=0, color=f"C{k % 10}", label=label, alpha=0.85)
    for ax, text in zip(axes, ("d at the gold peak", "gold gain at the peak"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("pairs N the proxy is learned from")
        ax.set_ylabel(text)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 0.64, 1))
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    return _save(fig, path, tight=False)
