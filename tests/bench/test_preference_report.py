"""The preference-model section (#14): shares of worlds near-optimal with CIs over worlds, read off cells."""

import numpy as np
import pandas as pd
import pytest
from helpers import run_and_report

from bench.report import preference_models
from bench.report.build import report_inputs
from bench.sweep.config import group_columns

WORLDS = range(8)


def cells_frame(near: dict[tuple[str, str], list[float]], budget: int = 300, seeds: int = 2) -> pd.DataFrame:
    """Random-world cells: (teacher spec, learner model) -> per world, its near-optimal rate
    (seed k of a world with rate q is near-optimal when k < q · seeds)."""
    rows = []
    for (teacher, learner), rates in near.items():
        for world, rate in zip(WORLDS, rates, strict=True):
            for seed in range(seeds):
                hit = float(seed < rate * seeds)
                rows.append({"task": "random-gridworld", "world": world, "teacher": teacher, "learner_model": learner,
                             "budget": budget, "seed": seed, "status": "done", "near_optimal": hit,
                             "scaled_return": 0.5 + 0.5 * hit, "segment_length": 3})
    return pd.DataFrame(rows)


def _inputs(cells: pd.DataFrame, stage):
    """The section's inputs for hand-made random-world cells (no other task: nothing to summarise)."""
    return report_inputs(cells.reindex(columns=[*cells.columns, *(c for c in group_columns() if c not in cells)]),
                         stage)


def test_shares_are_means_over_worlds_of_each_world_s_rate_and_failures_count_as_misses():
    cells = cells_frame({("regret+oracle", "regret"): [1, 1, 0.5, 0.5, 0, 0, 1, 1],
                         ("regret+oracle", "partial"): [0, 0, 0.5, 0, 0, 0, 1, 0]})
    failed = (cells["learner_model"] == "regret") & (cells["world"] == 0) & (cells["seed"] == 0)
    cells.loc[failed, ["status", "near_optimal"]] = ["failed", np.nan]
    table = preference_models.shares(preference_models.world_rates(cells)).set_index("learner_model")
    assert table.loc["regret", "share"] == pytest.approx((0.5 + 1 + 0.5 + 0.5 + 0 + 0 + 1 + 1) / 8)
    assert table.loc["partial", "share"] == pytest.approx(1.5 / 8)
    assert (table["noise"] == "oracle").all() and (table["teacher_model"] == "regret").all()
    assert (table["worlds"] == 8).all()
    for learner in ("regret", "partial"):
        row = table.loc[learner]
        assert row["ci_low"] <= row["share"] <= row["ci_high"] and row["ci_low"] < row["ci_high"]
    assert table.loc["regret", "difference"] == pytest.approx(table.loc["regret", "share"] - table.loc["partial", "share"])
    assert table.loc["regret", "difference_ci_low"] > 0                  # paired: ahead on every world but one


def test_the_findings_follow_the_paired_differences(tmp_path):
    ahead = cells_frame({("regret+oracle", "regret"): [1.0] * 8, ("regret+oracle", "partial"): [0.0] * 8,
                         ("oracle", "regret"): [0.5] * 8, ("oracle", "partial"): [0.5] * 8})
    out = preference_models.section(_inputs(ahead, tmp_path))
    text, files = "\n".join(out.lines), out.files
    assert "Regret teacher, oracle: the regret learner's share near-optimal" in text and "is above at 300" in text
    assert "Partial teacher, oracle" in text and "is not distinguishable at 300" in text
    assert "This suite agrees" in text and "pairs of 3-step segments" in text
    assert [p.name for p in files] == ["preference_models.csv", "preference_models.png"]
    assert all(p.is_file() for p in files)
    behind = cells_frame({("regret+oracle", "regret"): [0.0] * 8, ("regret+oracle", "partial"): [1.0] * 8})
    text = "\n".join(preference_models.section(_inputs(behind, tmp_path)).lines)
    assert "is below at 300" in text and "does not reproduce" in text


def test_a_report_of_random_worlds_alone_re_derives_from_cells_csv(tmp_path):
    run, to = run_and_report(tmp_path, "[random-gridworld]\nworlds = 3\nbudgets = [100]\n"
                             "teachers = ['regret+oracle']\nlearner_models = ['partial', 'regret']\nseeds = 2\n"
                             "[random-gridworld.train]\npairs_per_round = 100\nepochs = 5\n")
    page = (to / "README.md").read_text()
    assert "## Which model of human preference: partial return vs regret" in page
    table = pd.read_csv(to / "preference_models.csv")
    cells = pd.read_csv(run / "cells.csv")
    for _, row in table.iterrows():
        mine = cells[cells["learner_model"] == row["learner_model"]]
        assert row["share"] == pytest.approx(mine.groupby("world")["near_optimal"].mean().mean(), abs=1e-6)
    assert "random-gridworld" not in (to / "convergence.md").read_text()
