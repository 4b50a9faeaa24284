"""The query-rule section (#13): the budget at which mean success reaches the target, with CIs,
and an ordering that follows its own numbers."""

import math
from pathlib import Path

import pandas as pd

from bench.report import queries
from bench.report.build import report_inputs
from bench.sweep.config import group_columns

BUDGETS = (100, 200, 500)


def cells_frame(converged_from: dict[str, list[int | None]], fit: str = "round") -> pd.DataFrame:
    """Cells of one gridworld family: rule -> per seed, the first budget it converges at (None: never)."""
    base = {c: "" for c in group_columns()} | {
        "task": "gridworld", "size": 5, "slip": 0.0, "teacher": "boltzmann:1", "start": "uniform",
        "vocab_size": 0, "horizon": 30, "pairs_per_round": 100, "segment_length": 0, "ensemble": 5,
        "oversample": 10, "optimizer": "adam", "lr": 0.01, "epochs": 50, "batch_size": 0, "discount": 1.0,
        "temperature": 1.0, "heldout_pairs": 1000, "learner_model": "partial", "fit": fit}
    rows = []
    for rule, firsts in converged_from.items():
        for seed, first in enumerate(firsts):
            for budget in BUDGETS:
                converged = float(first is not None and budget >= first)
                rows.append(base | {"query": rule, "budget": budget, "seed": seed, "status": "done",
                                    "converged": converged, "epic": 1.0 - 0.5 * converged,
                                    "regret": 1.0 - converged})
    return pd.DataFrame(rows)


def test_budget_to_target_is_the_first_budget_where_the_seeds_mean_success_reaches_it():
    cells = cells_frame({"uniform": [100] * 9 + [500], "entropy": [200] * 10, "kcenter": [None] * 10})
    rule = cells[cells["query"] == "uniform"]
    reached, low, high = queries.budget_to_target(rule, 0.9)
    assert reached == 100 and low == 100 and high == 500            # 9 of 10 at 100: a resample can miss it
    assert queries.budget_to_target(cells[cells["query"] == "entropy"], 0.9) == (200, 200, 200)
    assert queries.budget_to_target(cells[cells["query"] == "kcenter"], 0.9) == (math.inf, math.inf, math.inf)


def test_the_section_orders_rules_by_its_own_numbers(tmp_path):
    cells = cells_frame({"uniform": [500] * 10, "entropy": [200] * 10, "disagreement": [100] * 10,
                         "kcenter": [None] * 10})
    inputs = report_inputs(cells, tmp_path)
    summary = inputs.summary
    assert len(queries.method_rows(summary)) == len(summary)
    assert queries.without_methods(summary).empty and inputs.main.empty
    out = queries.section(inputs)
    text, figures = "\n".join(out.lines), out.files
    assert "disagreement > entropy > uniform > kcenter" in text
    assert "disagreement ahead in 1 of 1 settings" in text and "entropy ahead in 1 of 1 settings" in text
    assert "kcenter 0 of 1" in text and "disagreement 1 of 1" in text
    assert "same 5-member bagged ensemble" in text and "pool of 10× the round's pairs" in text   # from the cells
    assert [p.name for p in figures] == ["queries_gridworld_boltzmann1_slip0.png"] and figures[0].is_file()
    table = text.split("| rule")[1]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:6]]
    assert rows == ["disagreement", "entropy", "uniform", "kcenter"]


def test_configurations_with_fewer_than_three_rules_stay_in_the_main_report():
    cells = cells_frame({"uniform": [100] * 4, "on-policy": [200] * 4})
    summary = report_inputs(cells, Path()).summary
    assert queries.method_rows(summary).empty
    assert len(queries.without_methods(summary)) == len(summary)


def test_with_two_fits_each_fit_has_its_own_tables_findings_and_figures_and_they_are_compared(tmp_path):
    round_ = cells_frame({"uniform": [200] * 10, "entropy": [500] * 10, "disagreement": [200] * 10})
    every = cells_frame({"uniform": [500] * 10, "entropy": [100] * 10, "disagreement": [100] * 10}, fit="all")
    out = queries.section(report_inputs(pd.concat([round_, every], ignore_index=True), tmp_path))
    text = "\n".join(out.lines)
    assert "### gridworld, N = 5, slip 0, teacher boltzmann:1, fit round" in text
    assert "### gridworld, N = 5, slip 0, teacher boltzmann:1, fit all" in text
    assert text.index("teacher boltzmann:1, fit round") < text.index("teacher boltzmann:1, fit all")   # seeds' first
    assert text.count("*learner: partial, fit: round*") == 1 and text.count("*learner: partial, fit: all*") == 1
    round_part = text[text.index("### Findings, fit round"):text.index("### Findings, fit all")]
    all_part = text[text.index("### Findings, fit all"):]
    assert "entropy ahead in 0 of 1 settings, behind in 1" in round_part
    assert "does not reproduce B-Pref's ordering for any of them with fit round" in round_part
    assert "With fit all (every pair asked so far, as B-Pref trains its reward model)" in all_part
    assert "agrees with B-Pref's ordering for disagreement and entropy with fit all" in all_part
    # mean success over budgets 100/200/500: converged from 100 -> 1, from 200 -> 2/3, from 500 -> 1/3;
    # all − round on the same seeds: disagreement 1 − 2/3, entropy 1 − 1/3, uniform 1/3 − 2/3
    assert "disagreement 1 settings: ahead in 1, behind in 0, not distinguishable in 0 (mean difference +0.333)" in text
    assert "entropy 1 settings: ahead in 1, behind in 0, not distinguishable in 0 (mean difference +0.667)" in text
    assert "uniform 1 settings: ahead in 0, behind in 1, not distinguishable in 0 (mean difference -0.333)" in text
    assert sorted(p.name for p in out.files) == ["queries_gridworld_boltzmann1_slip0.png",
                                                 "queries_gridworld_boltzmann1_slip0_fitall.png"]
    assert "Each setting is run with 2 fits (round, all)" in text


def test_a_fit_run_in_fewer_settings_is_counted_and_compared_where_both_ran(tmp_path):
    """The query sweep runs B-Pref's fit without slip only: the section says how many settings each fit
    has, and compares the fits in the settings that have both."""
    round_ = cells_frame({"uniform": [200] * 10, "entropy": [500] * 10, "disagreement": [200] * 10})
    slipped = round_.assign(slip=0.1)
    every = cells_frame({"uniform": [500] * 10, "entropy": [100] * 10, "disagreement": [100] * 10}, fit="all")
    text = "\n".join(queries.section(report_inputs(pd.concat([round_, slipped, every], ignore_index=True),
                                                   tmp_path)).lines)
    assert "The settings are run with fit round (2 settings) and fit all (1 setting)" in text
    assert "disagreement 1 settings: ahead in 1, behind in 0" in text        # slip 0 only: the one with both fits


def test_with_one_fit_the_section_reads_as_before(tmp_path):
    text = "\n".join(queries.section(report_inputs(cells_frame(
        {"uniform": [500] * 10, "entropy": [200] * 10, "disagreement": [100] * 10}), tmp_path)).lines)
    assert "### Findings\n" in text and "Findings, fit" not in text and "against fit" not in text
    assert "### gridworld, N = 5, slip 0, teacher boltzmann:1\n" in text and "*learner: partial, fit: round*" in text
