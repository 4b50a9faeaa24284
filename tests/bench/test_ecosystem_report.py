"""The ecosystem section (#15): pairs to near-optimal per environment, read off cells.csv."""

import numpy as np
import pandas as pd
import pytest
from helpers import run_and_report

from bench.report import ecosystem

pytest.importorskip("gymnasium")
pytest.importorskip("seals")


def test_the_median_seeds_first_budget_near_optimal():
    cells = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1, 2, 2, 2], "budget": [100, 300, 1000] * 3,
                          "status": ["done"] * 8 + ["failed"],
                          "near_optimal": [0, 1, 1, 0, 0, 1, 0, 0, 1.0]})
    first = ecosystem.first_near_optimal(cells)
    assert first.tolist() == [300.0, 1000.0, np.inf]              # seed 2's only hit is a failed cell
    median, low, high = ecosystem.median_first_near_optimal(first.to_numpy(), {"env": "x"})
    assert median == 1000.0 and low == 300.0 and high == np.inf


def test_the_section_re_derives_from_cells_csv(tmp_path):
    run, to = run_and_report(tmp_path, "[gymnasium]\nenvs = ['FrozenLake-v1']\nbudgets = [100, 300]\n"
                             "teachers = ['oracle']\nseeds = 3\n[seals]\nenvs = ['seals/RiskyPath-v0']\n"
                             "budgets = [100, 300]\nteachers = ['oracle']\nseeds = 3\n")
    page = (to / "README.md").read_text()
    assert "## Tasks from the ecosystem: Gymnasium and seals" in page and (to / "ecosystem.png").is_file()
    table = pd.read_csv(to / "ecosystem.csv").set_index("env")
    cells = pd.read_csv(run / "cells.csv")
    for env, rows in cells.groupby("env"):
        for budget, at in rows.groupby("budget"):
            assert table.loc[env, f"near_optimal@{budget}"] == pytest.approx(at["near_optimal"].mean())
        firsts = [rows[(rows.seed == s) & (rows.near_optimal == 1)]["budget"].min() for s in range(3)]
        firsts = sorted(np.inf if pd.isna(f) else f for f in firsts)
        assert table.loc[env, "pairs_to_near_optimal"] == firsts[1]
    lake = table.loc["FrozenLake-v1"]
    assert lake["reward_threshold"] == 0.7 and lake["optimal_return"] == pytest.approx(0.744, abs=1e-3)
    share = (cells[(cells.env == "FrozenLake-v1") & (cells.budget == 300)]["greedy_return"] >= 0.7).mean()
    assert lake["threshold_reached_share"] == pytest.approx(share)
    assert np.isnan(table.loc["seals/RiskyPath-v0", "reward_threshold"])
    assert "FrozenLake-v1" not in (to / "convergence.md").read_text()
