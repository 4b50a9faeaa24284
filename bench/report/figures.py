"""Figures (matplotlib, Agg, PNG). Each function draws one figure and saves it to ``path``."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import rlhf
from rlhf.tasks.registry import instance_label

_SAVE = {"dpi": 110, "metadata": {"Software": None}}   # no version string: identical bytes on reruns


def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, **_SAVE)
    plt.close(fig)
    return path


def sample_efficiency(summary: pd.DataFrame, task: str, metrics: list[tuple[str, str]], path: Path,
                      line_by: str = "slip", extra: tuple[str, ...] = ()) -> Path:
    """Rows = metrics, columns = sizes; each line one value of ``line_by`` (and start mode, and of
    each ``extra`` field: other fields that vary between the configurations), CI bands."""
    rows = summary[summary["task"] == task]
    sizes = sorted(rows["size"].unique())
    fig, axes = plt.subplots(len(metrics), len(sizes), figsize=(max(3.6 * len(sizes), 8.0), 2.9 * len(metrics)),
                             squeeze=False, sharex=True)
    several_starts = rows["start"].nunique() > 1
    for col, size in enumerate(sizes):
        panel = rows[rows["size"] == size]
        label = instance_label(panel.iloc[0].to_dict()).replace("=", " = ")      # the task's registered label
        for (value, start, *others), line in panel.groupby([line_by, "start", *extra], sort=True):
            line = line.sort_values("budget")
            tag = f"{line_by} {value}" + (f", {start} start" if several_starts else "")
            tag += "".join(f", {name} {other}" for name, other in zip(extra, others, strict=True))
            style = "--" if start == "corner" else "-"
            for row, (metric, ylabel) in enumerate(metrics):
                ax = axes[row, col]
                if f"{metric}_mean" not in line:
                    continue
                (handle,) = ax.plot(line["budget"], line[f"{metric}_mean"], style, marker="o", ms=3, label=tag)
                ax.fill_between(line["budget"], line[f"{metric}_ci_low"], line[f"{metric}_ci_high"],
                                color=handle.get_color(), alpha=0.15)
                _budget_axis(ax, sorted(rows["budget"].unique()))
                ax.set_ylabel(ylabel)
                ax.set_title(f"{task}, {label}", fontsize=9)
                ax.grid(alpha=0.3)
        axes[-1, col].set_xlabel("preference pairs (budget)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    ncol = 3 if len(sizes) > 1 else 2
    fig.tight_layout(rect=(0, 0.03 + 0.025 * (-(-len(labels) // ncol)), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    return _save(fig, path, tight=False)


def _budget_axis(ax, budgets) -> None:
    """Log-scaled x axis labelled exactly at the swept budgets."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(budgets))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(b) for b in budgets]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _share_panel(ax, budgets, title: str) -> None:
    """A panel of shares against budget: the swept budgets on a log x axis, [0, 1] on y."""
    _budget_axis(ax, budgets)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("preference pairs (budget)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def preference_models(table: pd.DataFrame, path: Path) -> Path:
    """Share of random worlds near-optimal against budget, one panel per teacher noise; colour = the
    teacher's preference model, line style = the learner's; CI bands over worlds."""
    noises = sorted(table["noise"].unique())
    fig, axes = plt.subplots(1, len(noises), figsize=(4.6 * len(noises), 3.6), squeeze=False, sharey=True)
    colours = {"partial": "tab:blue", "regret": "tab:red"}
    styles = {"partial": "--", "regret": "-"}
    budgets = sorted(table["budget"].unique())
    for ax, noise in zip(axes[0], noises, strict=True):
        for (teacher, learner), line in table[table["noise"] == noise].groupby(["teacher_model", "learner_model"]):
            line = line.sort_values("budget")
            ax.plot(line["budget"], line["share"], styles[learner], color=colours[teacher], marker="o", ms=3,
                    label=f"{teacher} teacher, {learner} learner")
            ax.fill_between(line["budget"], line["ci_low"], line["ci_high"], color=colours[teacher], alpha=0.1)
        _share_panel(ax, budgets, f"teacher {noise}")
    axes[0, 0].set_ylabel("share of worlds near-optimal")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    return _save(fig, path, tight=False)


def gridworld_paths(task: rlhf.GridWorld, paths_by_round: dict[int, torch.Tensor], path: Path) -> Path:
    """The seed's 'sample paths by round': jittered state sequences, start green, end red."""
    jitter = np.random.default_rng(0)
    rounds = sorted(paths_by_round)
    fig, axes = plt.subplots(2, (len(rounds) + 1) // 2, figsize=(2.4 * ((len(rounds) + 1) // 2), 5.2), squeeze=False)
    for ax, r in zip(axes.flat, rounds, strict=False):   # one spare panel when odd
        xy = task.cell(paths_by_round[r]).numpy().astype(float)         # [B, T, 2]
        xy += jitter.normal(scale=0.1, size=xy.shape)
        ax.plot(xy[..., 0].T, xy[..., 1].T, "k-", lw=0.5, alpha=0.6)
        ax.plot(xy[:, 0, 0], xy[:, 0, 1], "go", ms=3, label="start")
        ax.plot(xy[:, -1, 0], xy[:, -1, 1], "ro", ms=3, label="end")
        ax.set_xlim(-0.6, task.size - 0.4)
        ax.set_ylim(-0.6, task.size - 0.4)
        ax.set_aspect("equal")
        ax.set_title(f"round {r}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(rounds):]:
        ax.axis("off")
    return _save(fig, path)


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """The seed's training curves: true return, reward loss, teacher entropy per round."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharex=True)
    for ax, (key, title) in zip(axes, [("true_return", "true return of the policy"),
                                       ("loss", "Bradley–Terry loss"), ("entropy", "teacher preference entropy")],
                                strict=True):
        ax.plot(np.arange(1, len(history[key]) + 1), history[key])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[2].axhline(np.log(2), color="grey", ls=":", lw=1)
    return _save(fig, path)


def reward_heatmaps(task: rlhf.GridWorld, learned_distribution: torch.Tensor, path: Path) -> Path:
    """True vs learned target distribution over cells (y up, as in the seed)."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.8))
    for ax, values, title in [(axes[0], task.target, "true target distribution"),
                              (axes[1], learned_distribution, "learned target distribution")]:
        grid = task.as_grid(values).numpy()
        ax.imshow(grid, origin="lower", cmap="Greys", vmin=0, vmax=float(task.target.max()))
        if task.size <= 10:
            for y in range(task.size):
                for x in range(task.size):
                    ax.text(x, y, f"{grid[y, x]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[y, x] > 0.5 * float(task.target.max()) else "black")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    return _save(fig, path)


def string_tables(task: rlhf.StringTask, tables: dict[str, torch.Tensor], path: Path) -> Path:
    """Learned per-(position, token) reward tables, the greedy string in each title."""
    fig, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.2), squeeze=False)
    for ax, (name, table) in zip(axes.flat, tables.items(), strict=True):
        t = table.numpy()
        ax.imshow(t.T, cmap="RdBu_r", vmin=-abs(t).max(), vmax=abs(t).max())
        for p in range(t.shape[0]):
            for v in range(t.shape[1]):
                ax.text(p, v, f"{t[p, v]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(t.shape[0]), [f"pos {p}" for p in range(t.shape[0])])
        ax.set_yticks(range(t.shape[1]), list(task.vocab))
        ok = "=" if task.decode(table) == task.target else "≠"
        ax.set_title(f"{name}: greedy {task.decode(table)} {ok} {task.target}", fontsize=9)
    return _save(fig, path)


def scaling(frame: pd.DataFrame, path: Path) -> Path:
    """Log-log time vs states: a colour per benchmark group, dashed for the seed-style reference."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = {g: f"C{i}" for i, g in enumerate(sorted(frame["group"].unique()))}
    for (group, impl), rows in frame.groupby(["group", "implementation"], sort=True):
        rows = rows.sort_values("states")
        ax.plot(rows["states"], rows["median_s"], "--" if impl == "reference" else "-", marker="o", ms=3,
                color=colours[group], label=f"{group} ({impl})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("states S")
    ax.set_ylabel("median time (s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def ecosystem(rows: pd.DataFrame, path: Path) -> Path:
    """Share of seeds near-optimal against budget: one panel per value of the ``panel`` column
    (e.g. the teacher), one line per environment, the same colour for an environment in every panel."""
    panels = sorted(rows["panel"].unique())
    envs = list(dict.fromkeys(rows["env"]))
    colours = {env: f"C{i % 10}" for i, env in enumerate(envs)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels) + 2.2, 3.8), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels, strict=True):
        budgets: set[int] = set()
        for _, row in rows[rows["panel"] == panel].iterrows():
            points = sorted((int(c.split("@")[1]), row[c]) for c in rows.columns
                            if c.startswith("near_optimal@") and pd.notna(row[c]))
            budgets |= {b for b, _ in points}
            ax.plot([b for b, _ in points], [v for _, v in points], marker="o", ms=3, color=colours[row["env"]],
                    label=str(row["env"]))
        _share_panel(ax, sorted(budgets), str(panel))
    axes[0, 0].set_ylabel("share of seeds near-optimal")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    axes[0, -1].legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)
