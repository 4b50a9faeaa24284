"""The query-rule section (#13): the budget at which mean success reaches the target, with CIs,
and an ordering that follows its own numbers."""

import math
from pathlib import Path

import pandas as pd

from bench.report import queries
from bench.report.build import report_inputs
from bench.sweep.config import group_columns

BUDGETS = (100, 200, 500)


def cells_frame(converged_from: dict[str, list[int | None]]) -> pd.DataFrame:
    """Cells of one gridworld family: rule -> per seed, the first budget it converges at (None: never)."""
    base = {c: "" for c in group_columns()} | {
        "task": "gridworld", "size": 5, "slip": 0.0, "teacher": "boltzmann:1", "start": "uniform",
        "vocab_size": 0, "horizon": 30, "pairs_per_round": 100, "segment_length": 0, "ensemble": 5,
        "oversample": 10, "optimizer": "adam", "lr": 0.01, "epochs": 50, "batch_size": 0, "discount": 1.0,
        "temperature": 1.0, "heldout_pairs": 1000}
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
