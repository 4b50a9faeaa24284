"""Figures a reviewer would question (#28, item 10): captions that say what to look at, axes and scales on
the seed figures, each panel its own budget axis, lines that stay visible where they coincide, titles that
name what the file name alone named, and CIs on every share."""

import matplotlib.collections
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_cli

import rlhf
from bench.report import figures, preset_figures


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn, kept open instead of saved (``_save`` is where every figure goes)."""
    kept = []

    def keep(fig, path, tight=True):
        kept.append(fig)
        return path

    monkeypatch.setattr(figures, "_save", keep)
    return kept


def summary_rows(budgets_by_size: dict[int, list[int]], slips=(0.0, 0.1, 0.2), seeds=20) -> pd.DataFrame:
    """Per-configuration summary rows of a gridworld sweep; every line at success 0."""
    rows = []
    for size, budgets in budgets_by_size.items():
        for slip in slips:
            for b in budgets:
                rows.append({"task": "gridworld", "size": size, "slip": slip, "start": "uniform", "budget": b,
                             "seeds": 5 if b == 20000 else seeds, "success_mean": 0.0, "success_ci_low": 0.0,
                             "success_ci_high": 0.16, "epic_mean": 0.5, "epic_ci_low": 0.4, "epic_ci_high": 0.6})
    return pd.DataFrame(rows)


def test_each_panel_has_its_own_budget_axis_and_coinciding_lines_stay_visible(drawn, tmp_path):
    rows = summary_rows({5: [250, 500, 1000, 2000, 4000, 20000], 10: [250, 500, 1000, 2000, 4000]})
    figures.sample_efficiency(rows, "gridworld", [("success", "success rate"), ("epic", "EPIC")], tmp_path / "x.png",
                              title="Sample efficiency: gridworld")
    (fig,) = drawn
    axes = np.array(fig.axes).reshape(2, 2)
    assert axes[0, 0].get_xlim()[1] > 20000 and axes[0, 1].get_xlim()[1] < 5000    # one long sweep, not shared
    labels = [t.get_text() for t in axes[1, 0].get_xticklabels()]
    assert labels == ["250", "500", "1k", "2k", "4k", "20k"]                          # short: they do not collide
    lines = [line for line in axes[0, 1].get_lines() if line.get_label().startswith("slip")]
    assert len({line.get_marker() for line in lines}) == 3                            # told apart at 0...
    assert len({round(float(line.get_xdata()[0]), 3) for line in lines}) == 3          # ...and spread sideways
    assert all(float(np.max(line.get_ydata())) == 0.0 for line in lines)              # values themselves unmoved
    assert fig._suptitle.get_text() == "Sample efficiency: gridworld"
    assert any(t.get_text() == "n = 5" for t in axes[0, 0].texts)                     # a point over fewer seeds


def test_seed_gridworld_figures_have_axes_a_goal_and_a_scale(drawn, tmp_path):
    task = rlhf.GridWorld(size=5, start=[(0, 0)])
    paths = {r: torch.zeros(3, 4, dtype=torch.long) for r in (1, 2, 3)}
    figures.gridworld_paths(task, paths, tmp_path / "p.png")
    figures.training_curves({"true_return": [1.0, 2.0], "loss": [0.1, 0.6], "entropy": [0.1, 0.69]},
                            tmp_path / "t.png")
    figures.reward_heatmaps(task, torch.full((25,), 1 / 25), tmp_path / "r.png")
    paths_fig, training, rewards = drawn
    shown = [ax for ax in paths_fig.axes if ax.get_visible() and ax.axison]
    assert all(ax.get_xticks().size == 5 for ax in shown)
    assert any(ax.get_xlabel() for ax in shown) and any(ax.get_ylabel() for ax in shown)
    assert "goal" in [line.get_label() for line in shown[0].get_lines()]
    assert all(ax.get_ylabel() for ax in training.axes)                              # every y axis labelled
    bars = [ax for ax in rewards.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "probability" in bars[0].get_ylabel()
    assert all(any(p.get_edgecolor()[:3] != (0, 0, 0) for p in ax.patches) for ax in rewards.axes[:2])   # goal


def test_the_training_caption_explains_a_rising_loss_only_when_the_history_shows_it():
    rounds = np.arange(200)
    entropy = 0.69 * (1 - np.exp(-rounds / 30))
    rising = {"loss": list(entropy - 0.03), "entropy": list(entropy), "true_return": list(rounds)}
    text = preset_figures._training_caption("a run", rising)
    assert "The loss rises" in text and "tracks the teacher's entropy (correlation over rounds 1.00" in text
    flat = {"loss": list(0.3 + 0.01 * np.sin(rounds)), "entropy": list(entropy), "true_return": list(rounds)}
    assert "The loss rises" not in preset_figures._training_caption("a run", flat)


def test_the_ecosystem_figure_has_intervals(drawn, tmp_path):
    rows = pd.DataFrame([{"env": env, "panel": "teacher oracle", "near_optimal@100": share,
                          "near_optimal_low@100": 0.0, "near_optimal_high@100": 0.3, "near_optimal@300": share,
                          "near_optimal_low@300": 0.0, "near_optimal_high@300": 0.3} for env, share in
                         (("A", 0.0), ("B", 0.0))])
    figures.ecosystem(rows, tmp_path / "e.png")
    (fig,) = drawn
    bars = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(bars) == 2                                                             # one set per environment
    xs = [tuple(line.get_xdata()) for line in fig.axes[0].get_lines()]
    assert xs[0] != xs[1]                                                             # both lines at 0 visible


def test_every_figure_has_a_title_and_a_caption_in_the_figures_section(tmp_path, tiny_config):
    run, to = tmp_path / "run", tmp_path / "rep"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    assert run_cli("report", "--run", str(run), "--to", str(to)).returncode == 0
    gallery = (to / "README.md").read_text().split("## Figures")[1].split("\n## ")[0]
    pngs = sorted(p.name for p in to.glob("*.png"))
    assert pngs
    for name in pngs:
        block = gallery.split(f"![{name[:-4]}]({name})")[0].rsplit("### ", 1)[1]
        heading, caption = block.split("\n", 1)
        assert heading.strip() != name[:-4].replace("_", " ")                        # a title, not the file name
        assert len(caption.strip()) > 80, name                                       # says what to look at
