"""Statistics a reviewer would question (#28, item 9): intervals honest at a few seeds, n beside every
interval, each query rule compared with the baseline on its own, teachers compared on the same seeds,
and rankings across tasks the way rliable does."""

import numpy as np
import pandas as pd
import pytest

from bench.report import aggregate, bootstrap, convergence, queries, stats, teachers
from bench.report.build import report_inputs
from bench.sweep import config
from bench.sweep.config import group_columns

QUERY_BUDGETS = (100, 200, 500)


def query_cells(converged_from: dict[str, list[int | None]]) -> pd.DataFrame:
    """Cells of one gridworld query family: rule -> per seed, the first budget it converges at (None: never)."""
    base = {c: "" for c in group_columns()} | {
        "task": "gridworld", "size": 5, "slip": 0.0, "teacher": "boltzmann:1", "start": "uniform",
        "vocab_size": 0, "horizon": 30, "pairs_per_round": 100, "segment_length": 0, "ensemble": 5,
        "oversample": 10, "optimizer": "adam", "lr": 0.01, "epochs": 50, "batch_size": 0, "discount": 1.0,
        "temperature": 1.0, "heldout_pairs": 1000}
    return pd.DataFrame([base | {"query": rule, "budget": budget, "seed": seed, "status": "done",
                                 "converged": float(first is not None and budget >= first),
                                 "epic": 1.0 - 0.5 * float(first is not None and budget >= first)}
                         for rule, firsts in converged_from.items() for seed, first in enumerate(firsts)
                         for budget in QUERY_BUDGETS])


def strings_cells(converged: list[float], epic: list[float] | None = None, lr: float = 0.01) -> pd.DataFrame:
    """Finished cells of one strings configuration, one row per seed."""
    base = config.preset_cell("seed-strings", lr=lr)
    epic = epic or [0.1 * (k + 1) for k in range(len(converged))]
    return pd.DataFrame([config.CellConfig.from_fields(base.fields() | {"seed": seed}).fields()
                         | {"status": "done", "error": "", "converged": c, "near_optimal": c, "epic": e}
                         for seed, (c, e) in enumerate(zip(converged, epic, strict=True))])


def test_three_successes_of_three_seeds_are_not_certainty():
    low, high = stats.proportion_interval(np.ones(3))
    assert low == pytest.approx(0.4385, abs=1e-4) and high == 1.0          # Wilson: 3 of 3 is not [1, 1]
    assert stats.proportion_interval(np.zeros(20)) == (0.0, pytest.approx(0.1611, abs=1e-4))
    row = stats.summarize(strings_cells([1.0] * 3), ["epic", "near_optimal"]).iloc[0]
    assert row["success_mean"] == 1.0 and row["success_ci_low"] < 0.5 and row["success_ci_high"] == 1.0
    assert row["near_optimal_ci_low"] < 0.5
    for n in (1, 2, 5, 10):                                                # it always holds the estimate
        for k in range(n + 1):
            values = np.array([1.0] * k + [0.0] * (n - k))
            low, high = stats.proportion_interval(values)
            assert 0 <= low <= values.mean() <= high <= 1 and high - low > 0.1


def test_the_convergence_table_shows_n_and_marks_bootstrap_intervals_over_few_seeds():
    few, many = strings_cells([1.0] * 3, lr=0.01), strings_cells([1.0] * 12, lr=0.05)
    summary = stats.summarize(pd.concat([few, many], ignore_index=True), ["epic", "near_optimal"])
    text = convergence._markdown(summary, ("lr",))
    rows = {line.split("|")[6].strip(): line for line in text.splitlines()[2:]}   # keyed by lr
    assert "|       3 |" in rows["0.01"] and "|      12 |" in rows["0.05"]         # n beside the intervals
    assert "1.00 [0.44, 1.00]" in rows["0.01"] and "†" in rows["0.01"]            # Wilson; bootstrap marked
    assert "†" not in rows["0.05"]


def test_each_query_rule_is_compared_with_uniform_on_its_own_with_corrected_intervals(tmp_path):
    # entropy is clearly ahead; disagreement and info-gain converge with uniform: the best of the three
    # must not speak for the others.
    cells = query_cells({"uniform": [500] * 10, "entropy": [100] * 10, "disagreement": [500] * 9 + [200],
                         "info-gain": [500] * 10})
    scores = queries.seed_scores(cells)
    assert list(scores.columns) == ["disagreement", "entropy", "info-gain", "uniform"] and len(scores) == 10
    compared = queries.against_baseline(scores, {"family": 1})
    assert set(compared) == {"disagreement", "entropy", "info-gain"}
    assert all(c.confidence == pytest.approx(1 - 0.05 / 3) for c in compared.values())      # Bonferroni over 3
    assert compared["entropy"].verdict == "ahead" and compared["info-gain"].verdict == "not distinguishable"
    text = "\n".join(queries.section(report_inputs(cells, tmp_path)).lines)
    assert "best uncertainty rule" not in text
    assert "entropy ahead in 1 of 1 settings" in text and "info-gain ahead in 0 of 1 settings" in text
    assert "agrees with B-Pref's ordering for entropy" in text and "not for disagreement" in text
    assert "98.3% paired CIs" in text and "| vs uniform" in text and "|   seeds |" in text
    assert "+0.67 (all 10 seeds alike)" in text                     # no spread: said, not "[x, x]"


def test_rliable_aggregates_use_the_stratified_engine():
    rng = np.random.default_rng(0)
    strata = [np.column_stack([rng.random(n) + 1.0, rng.random(n)]) for n in (5, 8)]    # A above B everywhere
    results = aggregate.aggregate(strata, ["A", "B"], "B", {"test": 1})
    a, b = results
    assert a.improvement == 1.0 and b.improvement == 0.5 and a.tasks == 2 and a.runs == 13
    assert a.iqm == pytest.approx(stats.iqm(np.concatenate([s[:, 0] for s in strata])))
    assert a.iqm_low <= a.iqm <= a.iqm_high and a.iqm_low < a.iqm_high
    # lower is better: the same data reads the other way round
    assert aggregate.aggregate(strata, ["A", "B"], "B", {"test": 1}, higher_is_better=False)[0].improvement == 0.0
    # each stratum keeps its own size in every resample
    sizes = []
    bootstrap.stratified_resample(strata, lambda r: np.array(sizes.extend(x.shape[1] for x in r) or [0.0]),
                                  stats.bootstrap_rng({}), resamples=3)
    assert sizes == [5, 8]


def test_the_query_section_ranks_rules_across_settings_the_way_rliable_does(tmp_path):
    one = query_cells({"uniform": [500] * 10, "entropy": [100] * 10, "kcenter": [None] * 10})
    other = one.assign(slip=0.1)
    text = "\n".join(queries.section(report_inputs(pd.concat([one, other], ignore_index=True), tmp_path)).lines)
    assert "### Across settings" in text and "IQM mean success [95% CI]" in text
    across = text.split("### Across settings")[1]
    entropy = next(line for line in across.splitlines() if line.startswith("| entropy"))
    assert "|       2 |     20 |" in entropy and "1.00 [1.00, 1.00]" in entropy      # P(better than uniform) = 1


def teacher_cells(seeds: dict[str, int], budgets=(250, 500)) -> pd.DataFrame:
    """Gridworld cells of a teacher family: teacher -> seeds; boltzmann:1's extra seeds score badly."""
    base = {c: "" for c in group_columns()} | {
        "task": "gridworld", "size": 5, "slip": 0.0, "start": "uniform", "vocab_size": 0, "horizon": 30,
        "pairs_per_round": 100, "segment_length": 0, "ensemble": 1, "oversample": 1, "query": "on-policy",
        "optimizer": "adam", "lr": 0.01, "epochs": 50, "batch_size": 0, "discount": 1.0, "temperature": 1.0,
        "heldout_pairs": 1000}
    rows = []
    for teacher, n in seeds.items():
        for seed in range(n):
            for budget in budgets:
                good = seed < 10
                rows.append(base | {"teacher": teacher, "budget": budget, "seed": seed, "status": "done",
                                    "converged": float(good), "near_optimal": float(good),
                                    "epic": 0.2 if good else 0.9, "pref_accuracy": 0.9})
    return pd.DataFrame(rows)


def test_teachers_are_compared_on_the_same_seeds_and_each_row_shows_its_n(tmp_path):
    cells = teacher_cells({"boltzmann:1": 20, "oracle": 10, "boltzmann:1+mistake:0.1": 10})
    inputs = report_inputs(cells, tmp_path)
    family, notes = teachers.teacher_family(inputs, "gridworld")
    assert (family["seeds"] == 10).all()                           # not 20 for boltzmann:1
    assert family.loc[family["teacher"] == "boltzmann:1", "epic_mean"].eq(0.2).all()
    assert notes and "boltzmann:1 also has 10 more seeds" in notes[0]
    text = "\n".join(teachers.section(inputs).lines)
    assert "|   seeds |" in text and "boltzmann:1 also has 10 more seeds" in text
    table = [line for line in text.splitlines() if line.startswith("| boltzmann:1 ")]
    assert table and "|      10 |" in table[0]


def test_learner_text_reads_the_learner_and_fit_off_the_rows():
    from bench.report.stats import learner_note, learner_text
    rows = pd.DataFrame({"learner_model": ["partial", "regret", "partial"], "fit": ["round", "round", ""]})
    assert learner_text(rows) == "learner: partial/regret, fit: round"
    assert learner_note(rows.drop(columns="learner_model")) == ["*fit: round*", ""]
    assert learner_text(pd.DataFrame({"task": ["gridworld"]})) == "" and learner_note(pd.DataFrame()) == []
