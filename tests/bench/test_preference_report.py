"""The preference-model section (#14): shares of worlds near-optimal with CIs over worlds, read off cells."""

import numpy as np
import pandas as pd
import pytest
from helpers import run_and_report

from bench.report import preference_models
from bench.report.build import report_inputs
from bench.report.stats import proportion_interval
from bench.sweep.config import group_columns

WORLDS = range(8)


def cells_frame(near: dict[tuple, list[float]], budget: int = 300, seeds: int = 2) -> pd.DataFrame:
    """Random-world cells: (teacher spec, learner model[, fit]) -> per world, its near-optimal rate
    (seed k of a world with rate q is near-optimal when k < q · seeds); the fit is ``round`` unless named."""
    rows = []
    for key, rates in near.items():
        teacher, learner, fit = (*key, "round")[:3]
        for world, rate in zip(WORLDS, rates, strict=True):
            for seed in range(seeds):
                hit = float(seed < rate * seeds)
                rows.append({"task": "random-gridworld", "world": world, "teacher": teacher, "learner_model": learner,
                             "fit": fit, "budget": budget, "seed": seed, "status": "done", "near_optimal": hit,
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
    assert (table["worlds"] == 8).all() and (table["fit"] == "round").all()
    for learner in ("regret", "partial"):
        row = table.loc[learner]
        assert row["ci_low"] <= row["share"] <= row["ci_high"] and row["ci_low"] < row["ci_high"]


def test_cells_without_a_fit_column_are_the_seeds_fit():
    cells = cells_frame({("oracle", "partial"): [1.0] * 8}).drop(columns="fit")
    assert (preference_models.world_rates(cells)["fit"] == "round").all()


def test_paired_differences_between_learners_and_fits_are_bonferroni_corrected_per_family():
    regret = [1, 1, 0.5, 0.5, 0, 0, 1, 1]
    partial = [0, 0, 0.5, 0, 0, 0, 1, 0]
    cells = cells_frame({("regret+oracle", "regret"): regret, ("regret+oracle", "partial"): partial,
                         ("regret+oracle", "advantage"): partial,                         # the same rates as partial
                         ("regret+oracle", "partial", "all"): [1.0] * 8,
                         ("regret+oracle", "regret", "all"): [0.0] * 8})
    paired = preference_models.differences(preference_models.world_rates(cells))
    learners = paired[paired["comparison"] == "learners"].set_index(["fit", "learner_model"])
    # three learners with fit round: three comparisons, each at 1 - 0.05/3; with fit all only regret − partial
    assert set(learners.loc["round"].index) == {"regret − partial", "regret − advantage", "advantage − partial"}
    assert learners.loc["round", "confidence"].tolist() == pytest.approx([1 - 0.05 / 3] * 3)
    assert learners.loc[("all", "regret − partial"), "confidence"] == pytest.approx(0.95)
    row = learners.loc[("round", "regret − partial")]
    assert row["difference"] == pytest.approx(np.mean(regret) - np.mean(partial))
    assert row["ci_low"] > 0 and row["verdict"] == "above"            # ahead on every world but one
    assert learners.loc[("round", "advantage − partial"), "verdict"] == "identical"
    assert learners.loc[("all", "regret − partial"), "difference"] == -1 and \
        learners.loc[("all", "regret − partial"), "verdict"] == "below"
    fits = paired[paired["comparison"] == "fits"].set_index("learner_model")
    assert set(fits.index) == {"partial", "regret"} and (fits["fit"] == "all − round").all()
    assert fits.loc["partial", "difference"] == pytest.approx(1 - np.mean(partial))
    assert fits.loc["regret", "difference"] == pytest.approx(-np.mean(regret))
    assert fits["confidence"].tolist() == pytest.approx([1 - 0.05 / 2] * 2)
    # a wider family gives a wider interval for the same data
    alone = preference_models.differences(preference_models.world_rates(
        cells[cells["learner_model"] != "advantage"]))
    alone = alone[alone["comparison"] == "learners"].set_index(["fit", "learner_model"])
    assert alone.loc[("round", "regret − partial"), "ci_low"] > row["ci_low"]


def test_the_findings_follow_the_paired_differences(tmp_path):
    ahead = cells_frame({("regret+oracle", "regret"): [1.0] * 8, ("regret+oracle", "partial"): [0.0] * 8,
                         ("regret+oracle", "advantage"): [0.5] * 8,
                         ("oracle", "regret"): [0.5] * 8, ("oracle", "partial"): [0.5] * 8,
                         ("oracle", "advantage"): [0.0] * 8})
    out = preference_models.section(_inputs(ahead, tmp_path))
    text, files = "\n".join(out.lines), out.files
    assert "Knox et al. (2022)" in text and "Fit round, regret teacher, regret − partial" in text
    assert "oracle: above at 300" in text and "The regret learner is ahead at every budget for every teacher noise: " \
        "reproduced." in text
    assert "Fit round, partial teacher, advantage − partial (paired CIs over worlds): oracle: below at 300" in text
    assert "The advantage learner is behind the partial learner at every budget for every teacher noise" in text
    assert "pairs of 3-step segments" in text and "*learner: advantage/partial/regret, fit: round*" in text
    assert "Fitting all against round" not in text                    # one fit: nothing to compare
    assert [p.name for p in files] == ["preference_models.csv", "preference_models_differences.csv",
                                       "preference_models.png"]
    assert all(p.is_file() for p in files)
    assert "orange lines in the partial-teacher row" in out.figures[0].caption
    behind = cells_frame({("regret+oracle", "regret"): [0.0] * 8, ("regret+oracle", "partial"): [1.0] * 8})
    text = "\n".join(preference_models.section(_inputs(behind, tmp_path)).lines)
    assert "oracle: below at 300" in text and "not reproduced. The opposite (CI excluding 0) at 300 pairs" in text


def test_the_fit_findings_count_settings_and_set_apart_identical_fits(tmp_path):
    cells = pd.concat([cells_frame({("oracle", "partial"): [0.0] * 8, ("oracle", "partial", "all"): [1.0] * 8},
                                   budget=900),
                       cells_frame({("oracle", "partial"): [0.5] * 8, ("oracle", "partial", "all"): [0.5] * 8},
                                   budget=300)])
    text = "\n".join(preference_models.section(_inputs(cells, tmp_path)).lines)
    assert ("partial learner: above in 1, below in 0, not distinguishable in 0 of 1 settings (teacher × noise × "
            "budget) (identical in 1 more, at 300 pairs") in text
    assert "At 900 pairs: partial teacher, oracle: +1.00" in text
    assert "*learner: partial, fit: all/round*" in text


def test_a_report_of_random_worlds_alone_re_derives_from_cells_csv(tmp_path):
    run, to = run_and_report(tmp_path, "[random-gridworld]\nworlds = 3\nbudgets = [100]\n"
                             "teachers = ['regret+oracle']\nlearner_models = ['partial', 'regret']\nseeds = 2\n"
                             "[random-gridworld.train]\npairs_per_round = 100\nepochs = 5\n")
    page = (to / "README.md").read_text()
    assert "## Which model of human preference: partial return, advantage, regret" in page
    table = pd.read_csv(to / "preference_models.csv")
    cells = pd.read_csv(run / "cells.csv")
    for _, row in table.iterrows():
        mine = cells[(cells["learner_model"] == row["learner_model"]) & (cells["fit"] == row["fit"])]
        assert row["share"] == pytest.approx(mine.groupby("world")["near_optimal"].mean().mean(), abs=1e-6)
    assert "random-gridworld" not in (to / "convergence.md").read_text()



def test_the_share_of_fits_above_the_truth_is_read_on_well_specified_labels_with_wilson_cis(tmp_path):
    cells = cells_frame({("regret+boltzmann:1", "regret"): [1.0] * 8, ("regret+boltzmann:1", "partial"): [1.0] * 8,
                         ("boltzmann:1", "partial"): [1.0] * 8, ("boltzmann:1", "regret", "all"): [1.0] * 8},
                        seeds=3)
    # seed s of world w ends above its truth where (w + s) % 4 == 0 (regret learner), or w = s = 0 (partial)
    regret = cells["learner_model"] == "regret"
    hit = np.where(regret, (cells["world"] + cells["seed"]) % 4 == 0, (cells["world"] == 0) & (cells["seed"] == 0))
    cells["loss_above_truth"], cells["loss_gap"] = hit.astype(float), np.where(hit, 0.1, -0.1)
    failed = regret & (cells["world"] == 1) & (cells["seed"] == 0)          # a failed seed is left out
    cells.loc[failed, ["status", "loss_above_truth", "loss_gap"]] = ["failed", np.nan, np.nan]
    plain = preference_models.section(_inputs(cells.drop(columns=["loss_above_truth", "loss_gap"]), tmp_path)).lines
    assert not any("end above the truth" in line for line in plain)             # no metric (older runs): no sentence
    assert preference_models.above_truth(cells.drop(columns=["loss_above_truth", "loss_gap"])).empty
    above = preference_models.above_truth(cells)
    # well specified only: regret on regret labels, partial on partial labels (regret on partial, all, left out)
    assert sorted(zip(above["learner_model"], above["fit"], above["teacher_model"], above["noise"], strict=True)) == [
        ("partial", "round", "partial", "boltzmann:1"), ("regret", "round", "regret", "boltzmann:1")]
    expected = {}
    for learner, teacher, rule in (("regret", "regret+boltzmann:1", lambda w, s: (w + s) % 4 == 0),
                                   ("partial", "boltzmann:1", lambda w, s: w == s == 0)):
        mine = cells[(cells["learner_model"] == learner) & (cells["teacher"] == teacher) & (cells["status"] == "done")]
        outcomes = np.array([float(rule(w, s)) for w, s in zip(mine["world"], mine["seed"], strict=True)])
        expected[learner] = (len(outcomes), int(outcomes.sum()), *proportion_interval(outcomes))
        row = above[above["learner_model"] == learner].iloc[0]
        assert (row["seeds"], row["above"]) == expected[learner][:2]
        assert row["share"] == pytest.approx(outcomes.mean())
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(expected[learner][2:])
    assert expected["regret"][:2] == (23, 6) and expected["partial"][:2] == (24, 1)     # by hand: 24 seeds, one failed
    lines = preference_models.section(_inputs(cells, tmp_path)).lines
    start = next(i for i, line in enumerate(lines) if "end above the truth" in line)
    block = preference_models._above_truth_markdown(above)
    assert lines[start:start + len(block)] == block
    assert lines[:start] + lines[start + len(block):] == plain                    # the rest of the section unchanged
    for learner, teacher in (("regret", "regret, boltzmann:1"), ("partial", "partial, boltzmann:1")):
        seeds, hits, low, high = expected[learner]
        row = next(line for line in block[2].splitlines() if line.startswith(f"| {learner} "))
        assert teacher in row and f"{hits}/{seeds}: {hits / seeds:.2f} [{low:.2f}, {high:.2f}]" in row
    assert block[2].splitlines()[0].split("|")[-2].strip() == "300"                 # one column per budget
