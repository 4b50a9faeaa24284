"""Figures (matplotlib, Agg, PNG). Each function draws one figure and saves it to ``path``."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.artist
import matplotlib.patches
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


MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")
"""One marker per line of a panel, hollow, so that lines at the same value stay told apart."""
DODGE_DECADES = 0.008
"""How far apart (in decades of the log budget axis) the points of neighbouring lines are drawn —
about a marker's width — so that lines that coincide (several at success 0) show every marker
instead of only the last one."""
RATES = ("success", "near_optimal")
"""Metrics that are rates of per-seed outcomes: their CIs (Wilson) are drawn as bars at the points,
since bands of many lines at 0 or 1 would stack into one block; other metrics get bands."""


def dodge(k: int, lines: int) -> float:
    """The factor by which line ``k`` of ``lines`` shifts its budgets sideways (centred on 1)."""
    return float(10 ** (DODGE_DECADES * (k - (lines - 1) / 2)))


def max_dodge(lines: int) -> float:
    """The largest relative sideways shift of any line's points, for captions (0.05 is 5%)."""
    return dodge(lines - 1, lines) - 1 if lines > 1 else 0.0


def _interval(ax, x, mean, low, high, colour: str, bars: bool) -> None:
    """A line's CI: bars at its points (rates) or a band."""
    if bars:
        mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
        ax.errorbar(x, mean, yerr=np.clip([mean - low, high - mean], 0, None), fmt="none", ecolor=colour,
                    elinewidth=0.9, alpha=0.55, capsize=0)
    else:
        ax.fill_between(x, low, high, color=colour, alpha=0.12, lw=0)


def sample_efficiency(summary: pd.DataFrame, task: str, metrics: list[tuple[str, str]], path: Path,
                      line_by: str = "slip", extra: tuple[str, ...] = (), title: str | None = None) -> Path:
    """Rows = metrics, columns = sizes; each line one value of ``line_by`` (and start mode, and of
    each ``extra`` field: other fields that vary between the configurations), with CI bands.

    Each panel has its own log x axis over the budgets its own lines were run at (one panel's long
    sweep does not squeeze the others); lines are told apart by colour and a hollow marker and
    their points are spread slightly sideways (:func:`dodge`), so lines that coincide stay
    visible; a point whose seeds differ from the figure's usual number is labelled with its n."""
    rows = summary[summary["task"] == task]
    sizes = sorted(rows["size"].unique())
    fig, axes = plt.subplots(len(metrics), len(sizes), figsize=(max(3.6 * len(sizes), 8.0), 2.9 * len(metrics)),
                             squeeze=False, sharex="col")
    several_starts = rows["start"].nunique() > 1
    usual = int(rows["seeds"].mode().iloc[0]) if "seeds" in rows and len(rows) else 0
    keys = [line_by, "start", *extra]
    every_line = [k for k, _ in rows.groupby(keys, sort=True)]
    colours = {k: f"C{i % 10}" for i, k in enumerate(every_line)}          # a line's colour in every panel
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(every_line)}
    for col, size in enumerate(sizes):
        panel = rows[rows["size"] == size]
        label = instance_label(panel.iloc[0].to_dict()).replace("=", " = ")      # the task's registered label
        budgets = sorted(panel["budget"].unique())
        lines = list(panel.groupby(keys, sort=True))
        notes: dict[int, list[tuple[float, float, str, str]]] = {row: [] for row in range(len(metrics))}
        for k, (key, line) in enumerate(lines):
            value, start, *others = key
            line = line.sort_values("budget")
            tag = f"{line_by} {value}" + (f", {start} start" if several_starts else "")
            tag += "".join(f", {name} {other}" for name, other in zip(extra, others, strict=True))
            style = "--" if start == "corner" else "-"
            x = line["budget"].to_numpy(dtype=float) * dodge(k, len(lines))
            for row, (metric, _label) in enumerate(metrics):
                ax = axes[row, col]
                if f"{metric}_mean" not in line:
                    continue
                ax.plot(x, line[f"{metric}_mean"], style, marker=markers[key], ms=4, mfc="none", lw=1.2,
                        color=colours[key], label=tag)
                _interval(ax, x, line[f"{metric}_mean"], line[f"{metric}_ci_low"], line[f"{metric}_ci_high"],
                          colours[key], metric in RATES)
                if usual and "seeds" in line:
                    notes[row].extend((xi, yi, f"n = {int(n)}", colours[key]) for xi, yi, n in
                                      zip(x, line[f"{metric}_mean"], line["seeds"], strict=True) if int(n) != usual)
        for row, (_metric, ylabel) in enumerate(metrics):
            ax = axes[row, col]
            low, high = ax.get_ylim()
            for xi, yi, text, colour in notes[row]:        # below a point in the top fifth, else above
                below = yi > high - 0.2 * (high - low)
                ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(-4, -11 if below else 6),
                            ha="right", fontsize=7, color=colour)
            _budget_axis(ax, budgets)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{task}, {label}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[-1, col].set_xlabel("preference pairs (budget, log scale)")
    by_label: dict[str, matplotlib.artist.Artist] = {}
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            by_label.setdefault(text, handle)
    ncol = 3 if len(sizes) > 1 else 2
    top = 0.95 if title else 1.0
    fig.tight_layout(rect=(0, 0.03 + 0.025 * (-(-len(by_label) // ncol)), 1, top))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.legend(list(by_label.values()), list(by_label.keys()), loc="lower center", ncol=ncol, fontsize=7,
               frameon=False)
    return _save(fig, path, tight=False)


def budget_label(budget: float) -> str:
    """A budget as a tick label: 500, 2k, 20k (short, so that neighbouring ticks do not collide)."""
    b = int(budget)
    return f"{b // 1000}k" if b >= 1000 and b % 1000 == 0 else str(b)


def _budget_axis(ax, budgets) -> None:
    """Log-scaled x axis labelled exactly at the swept budgets (short labels), a little margin for
    the sideways-spread points."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(budgets))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([budget_label(b) for b in budgets]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(axis="x", labelsize=8)
    low, high = min(budgets), max(budgets)
    margin = (high / low) ** 0.06 if high > low else 1.5
    ax.set_xlim(low / margin, high * margin)


def _share_panel(ax, budgets, title: str) -> None:
    """A panel of shares against budget: the swept budgets on a log x axis, [0, 1] on y."""
    _budget_axis(ax, budgets)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("preference pairs (budget, log scale)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def preference_models(table: pd.DataFrame, path: Path) -> Path:
    """Share of random worlds near-optimal against budget: one row of panels per teacher preference
    model, one column per teacher noise; colour = the learner, line style = the fit (solid: each
    round's pairs, dashed: every pair so far); CI bands over worlds."""
    noises = sorted(table["noise"].unique())
    teachers = sorted(table["teacher_model"].unique())
    fig, axes = plt.subplots(len(teachers), len(noises), figsize=(4.6 * len(noises), 3.3 * len(teachers) + 0.6),
                             squeeze=False, sharey=True)
    colours = {"partial": "tab:blue", "advantage": "tab:orange", "regret": "tab:red"}
    styles = {"round": "-", "all": "--"}
    markers = {"round": "o", "all": "s"}
    budgets = sorted(table["budget"].unique())
    learners = [m for m in colours if m in set(table["learner_model"])]
    learners += sorted(set(table["learner_model"]) - set(learners))
    for row, teacher in enumerate(teachers):
        for ax, noise in zip(axes[row], noises, strict=True):
            rows = table[(table["noise"] == noise) & (table["teacher_model"] == teacher)]
            for learner in learners:
                for fit in sorted(rows["fit"].unique(), key=lambda f: (f != "round", f)):
                    line = rows[(rows["learner_model"] == learner) & (rows["fit"] == fit)].sort_values("budget")
                    if line.empty:
                        continue
                    colour = colours.get(learner, "tab:gray")
                    ax.plot(line["budget"], line["share"], styles.get(fit, ":"), color=colour,
                            marker=markers.get(fit, "^"), ms=3.5, mfc="white" if fit != "round" else colour,
                            label=f"{learner} learner, fit {fit}")
                    ax.fill_between(line["budget"], line["ci_low"], line["ci_high"], color=colour, alpha=0.08)
            _share_panel(ax, budgets, f"{teacher} teacher, {noise}")
        axes[row, 0].set_ylabel("share of worlds near-optimal")
    labelled: dict[str, matplotlib.artist.Artist] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labelled.setdefault(label, handle)
    fig.tight_layout(rect=(0, 0.6 / (3.3 * len(teachers) + 0.6) + 0.02, 1, 1))
    fig.legend(handles=list(labelled.values()), labels=list(labelled), loc="lower center", ncol=3, fontsize=7,
               frameon=False)
    return _save(fig, path, tight=False)


def _goal_cells(task: rlhf.GridWorld) -> np.ndarray:
    """The goal cells' (x, y), ``[G, 2]``."""
    return task.cell(task.goal_states).numpy().reshape(-1, 2)


def gridworld_paths(task: rlhf.GridWorld, paths_by_round: dict[int, torch.Tensor], path: Path) -> Path:
    """The seed's 'sample paths by round': jittered state sequences on the grid's cell coordinates,
    start green, end red, the goal a gold star."""
    jitter = np.random.default_rng(0)
    rounds = sorted(paths_by_round)
    columns = (len(rounds) + 1) // 2
    fig, axes = plt.subplots(2, columns, figsize=(2.5 * columns, 5.8), squeeze=False, sharex=True, sharey=True)
    goal = _goal_cells(task)
    for ax, r in zip(axes.flat, rounds, strict=False):   # one spare panel when odd
        xy = task.cell(paths_by_round[r]).numpy().astype(float)         # [B, T, 2]
        xy += jitter.normal(scale=0.1, size=xy.shape)
        ax.plot(xy[..., 0].T, xy[..., 1].T, "k-", lw=0.5, alpha=0.6)
        ax.plot(xy[:, 0, 0], xy[:, 0, 1], "go", ms=3, label="start")
        ax.plot(xy[:, -1, 0], xy[:, -1, 1], "ro", ms=3, label="end")
        ax.plot(goal[:, 0], goal[:, 1], "*", ms=13, mfc="gold", mec="black", mew=0.8, alpha=0.9, label="goal")
        ax.set_xlim(-0.6, task.size - 0.4)
        ax.set_ylim(-0.6, task.size - 0.4)
        ax.set_aspect("equal")
        ax.set_title(f"round {r}", fontsize=9)
        ax.set_xticks(range(task.size))
        ax.set_yticks(range(task.size))
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("x (cell)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("y (cell)", fontsize=8)
    axes.flat[0].legend(fontsize=6, loc="upper left", markerscale=0.7)
    for ax in list(axes.flat)[len(rounds):]:
        ax.axis("off")
    return _save(fig, path)


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """The seed's training curves: true return, reward loss (with the teacher's entropy beside it,
    the loss it cannot go below on average), teacher entropy per round; every y axis labelled."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharex=True)
    rounds = np.arange(1, len(history["loss"]) + 1)
    panels = [("true_return", "true return of the policy", "expected true return of a segment"),
              ("loss", "Bradley–Terry loss", "loss (nats per pair, last epoch)"),
              ("entropy", "teacher preference entropy", "mean entropy of a label (nats)")]
    for ax, (key, title, ylabel) in zip(axes, panels, strict=True):
        ax.plot(rounds, history[key], lw=1.2, label=title)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
    axes[1].plot(rounds, history["entropy"], color="grey", ls=":", lw=1, label="teacher entropy")
    axes[1].legend(fontsize=7, loc="lower right")
    axes[2].axhline(np.log(2), color="grey", ls=":", lw=1)
    axes[2].set_ylim(top=max(np.log(2), max(history["entropy"])) + 0.06)
    axes[2].annotate("ln 2: a coin flip", (rounds[0], np.log(2)), textcoords="offset points", xytext=(2, 3),
                     ha="left", va="bottom", fontsize=7, color="grey")
    return _save(fig, path)


def _probability_text(value: float) -> str:
    """A probability in a heatmap cell: 2 decimals, or one significant digit below 0.01 (0 stays 0)."""
    return "0" if value == 0 else f"{value:.2f}" if value >= 0.005 else f"{value:.0e}"


def reward_heatmaps(task: rlhf.GridWorld, learned_distribution: torch.Tensor, path: Path) -> Path:
    """True vs learned target distribution over cells (y up, as in the seed), on one colour scale
    with its colour bar, each cell's probability written in it, the goal outlined."""
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.9))
    top = float(task.target.max())
    goal = _goal_cells(task)
    image = None
    for ax, values, title in [(axes[0], task.target, "true target distribution"),
                              (axes[1], learned_distribution, "learned target distribution")]:
        grid = task.as_grid(values).numpy()
        image = ax.imshow(grid, origin="lower", cmap="Greys", vmin=0, vmax=top)
        if task.size <= 10:
            for y in range(task.size):
                for x in range(task.size):
                    ax.text(x, y, _probability_text(float(grid[y, x])), ha="center", va="center", fontsize=7,
                            color="white" if grid[y, x] > 0.5 * top else "black")
        for gx, gy in goal:
            ax.add_patch(matplotlib.patches.Rectangle((gx - 0.5, gy - 0.5), 1, 1, fill=False, ec="gold", lw=2.5))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x (cell)")
        ax.set_ylabel("y (cell)")
        ax.set_xticks(range(task.size))
        ax.set_yticks(range(task.size))
    axes[0].plot([], [], "s", mfc="none", mec="gold", mew=2, label="goal")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    assert image is not None
    bar = fig.colorbar(image, ax=list(axes), fraction=0.035, pad=0.03)
    bar.set_label("probability of the cell", fontsize=8)
    return _save(fig, path, tight=False)


def string_tables(task: rlhf.StringTask, tables: dict[str, torch.Tensor], path: Path) -> Path:
    """Learned per-(position, token) reward tables, each on its own colour scale with a colour bar,
    the greedy choice of each position outlined and the greedy string in each title."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.2), squeeze=False)
    for ax, (name, table) in zip(axes.flat, tables.items(), strict=True):
        t = table.numpy()
        scale = float(abs(t).max())
        image = ax.imshow(t.T, cmap="RdBu_r", vmin=-scale, vmax=scale)
        for p in range(t.shape[0]):
            for v in range(t.shape[1]):
                ax.text(p, v, f"{t[p, v]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(t[p, v]) > 0.6 * scale else "black")
            best = int(t[p].argmax())
            ax.add_patch(matplotlib.patches.Rectangle((p - 0.5, best - 0.5), 1, 1, fill=False, ec="black", lw=2))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("learned reward", fontsize=8)
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
    """Share of seeds near-optimal against budget, with its CI as bars (columns ``near_optimal@B``,
    ``near_optimal_low@B``, ``near_optimal_high@B``): one panel per value of the ``panel`` column
    (e.g. the teacher), one line per environment, the same colour and marker for an environment in
    every panel; points spread slightly sideways (:func:`dodge`) so lines at the same share stay
    visible."""
    panels = sorted(rows["panel"].unique())
    envs = list(dict.fromkeys(rows["env"]))
    colours = {env: f"C{i % 10}" for i, env in enumerate(envs)}
    markers = {env: MARKERS[i % len(MARKERS)] for i, env in enumerate(envs)}
    styles = {env: "-" if i < 10 else "--" for i, env in enumerate(envs)}      # colours repeat after ten
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels) + 2.2, 3.8), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels, strict=True):
        budgets: set[int] = set()
        shown = rows[rows["panel"] == panel]
        for k, (_, row) in enumerate(shown.iterrows()):
            points = sorted((int(c.split("@")[1]), row[c], row[c.replace("@", "_low@")], row[c.replace("@", "_high@")])
                            for c in rows.columns if c.startswith("near_optimal@") and pd.notna(row[c]))
            budgets |= {p[0] for p in points}
            x = np.array([p[0] for p in points], dtype=float) * dodge(k, len(shown))
            env = row["env"]
            ax.plot(x, [p[1] for p in points], styles[env], marker=markers[env], ms=4, mfc="none", lw=1.2,
                    color=colours[env], label=str(env))
            _interval(ax, x, [p[1] for p in points], [p[2] for p in points], [p[3] for p in points], colours[env],
                      bars=True)
        _share_panel(ax, sorted(budgets), str(panel))
    axes[0, 0].set_ylabel("share of seeds near-optimal")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    axes[0, -1].legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)
