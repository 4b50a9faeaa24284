"""Statistics across seeds: one grouping, failures count as failures, intervals per configuration."""

import numpy as np
import pandas as pd

from bench.gate import check
from bench.report import stats
from bench.sweep import config


def _cells(lr: float, converged: list[float], status: list[str] | None = None) -> pd.DataFrame:
    """Finished (or failed) cells of one strings configuration, one row per seed."""
    base = config.preset_cell("seed-strings", lr=lr)
    rows = []
    for seed, value in enumerate(converged):
        fields = config.CellConfig.from_fields(base.fields() | {"seed": seed}).fields()
        done = status is None or status[seed] == "done"
        rows.append(fields | {"status": "done" if done else "failed", "error": "" if done else "boom",
                              "converged": value if done else np.nan, "epic": 0.1 * seed if done else np.nan})
    return pd.DataFrame(rows)


def test_failed_cells_count_as_failures_in_the_report_and_the_gate():
    cells = _cells(0.01, [1.0] + [np.nan] * 19, ["done"] + ["failed"] * 19)
    row = stats.summarize(cells, ["epic"]).iloc[0]
    assert row["seeds"] == 20 and row["failed"] == 19 and row["success_mean"] == 0.05
    (entry,) = check.aggregate(cells).values()
    assert entry["success_rate"] == 0.05 and entry["failed"] == 19


def test_configurations_differing_in_any_field_are_not_pooled():
    cells = pd.concat([_cells(0.01, [0.0] * 3), _cells(0.05, [1.0] * 3)], ignore_index=True)
    summary = stats.summarize(cells, ["epic"])
    assert sorted(zip(summary["lr"], summary["success_mean"], summary["seeds"])) == [(0.01, 0.0, 3), (0.05, 1.0, 3)]
    assert len(check.aggregate(cells)) == 2


def test_a_configurations_intervals_do_not_depend_on_what_is_reported_beside_it():
    mine = _cells(0.01, [1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    alone = stats.summarize(mine, ["epic"])
    for other in (_cells(0.05, [0.0, 1.0, 0.0]), _cells(0.001, [1.0] * 4)):   # sorts before and after
        together = stats.summarize(pd.concat([other, mine], ignore_index=True), ["epic"])
        row = together[together["lr"] == 0.01].reset_index(drop=True)
        pd.testing.assert_frame_equal(row[alone.columns], alone)
    assert alone["success_ci_low"].iloc[0] < alone["success_ci_high"].iloc[0]
