"""The rankings-and-ties section (#26): its numbers against independently computed means and differences over
seeds, its findings' direction following the data, and nothing without ranking cells.

Cells are made as a sweep makes them (``CellConfig.fields()``: ranking columns only where set; the metrics,
``tie_param`` among them, after the configuration as ``cells.csv`` writes them) and read back by ``load_run``.
"""

import numpy as np
import pandas as pd
import pytest

import rlhf
from bench.report import rankings
from bench.report import rankings_tables as rt
from bench.report.runs import load_run
from bench.report.section import ReportInputs
from bench.sweep.config import CellConfig
from bench.sweep.engine import CSV_NAME

SEEDS = range(12)
BUDGETS = (30, 60)
RK_TEACHER = "boltzmann:1+rao-kupper:3"


def _values(low: float, high: float, salt: int) -> np.ndarray:
    """Per-seed values spread over [low, high], the same for every call with the same salt."""
    return np.random.default_rng(salt).uniform(low, high, len(SEEDS))


def _cell(seed: int, budget: int, teacher: str = "boltzmann:1", **train) -> dict:
    config = rlhf.task_spec("strings").defaults.replace(budget=budget, teacher=teacher, query="uniform",
                                                        pairs_per_round=0, **train)
    return CellConfig(task="strings", size=5, slip=0.0, seed=seed, train=config, vocab_size=4).fields()


def _rows(epic: np.ndarray, budget: int, near: float = 1.0, tie_param: np.ndarray | None = None,
          **cell) -> list[dict]:
    out = []
    for k, seed in enumerate(SEEDS):
        metrics = {"epic": float(epic[k]), "near_optimal": float(k < near * len(SEEDS)), "scaled_return": 1.0}
        if tie_param is not None:
            metrics["fitted_tie_param"] = float(tie_param[k])    # the loop's metric (the field tie_param: its start)
        out.append({**_cell(seed, budget, **cell), "status": "done", "error": "", **metrics})
    return out


def _load(rows: list[dict], tmp_path) -> pd.DataFrame:
    """The cells as ``cells.csv`` holds them and the report reads them."""
    pd.DataFrame.from_records(rows).to_csv(tmp_path / CSV_NAME, index=False)
    return load_run(tmp_path)


def rank_cells(tmp_path, pl_better: bool = True) -> tuple[pd.DataFrame, dict]:
    """Pairs, and K = 4 by both learners, at two budgets: K = 4 well below pairs; Plackett–Luce below pair
    split (or above, ``pl_better=False``) on every seed."""
    rows, epic = [], {}
    for i, budget in enumerate(BUDGETS):
        pairs = _values(0.40, 0.50, 10 + i)
        pl = pairs - 0.20 + _values(-0.01, 0.01, 20 + i)
        ps = pl + (1 if pl_better else -1) * _values(0.02, 0.04, 30 + i)
        epic[budget] = {"pairs": pairs, "pl": pl, "ps": ps}
        rows += _rows(pairs, budget, near=0.5)
        rows += _rows(pl, budget, near=1.0, rank=4, rank_learner="plackett-luce")
        rows += _rows(ps, budget, near=0.75, rank=4, rank_learner="pair-split")
    return _load(rows, tmp_path), epic


def tie_cells(tmp_path, tie_worse: bool = True) -> tuple[pd.DataFrame, dict]:
    """A Rao–Kupper teacher (θ = 3) learned by Bradley–Terry and by Rao–Kupper with a fitted θ; the tie
    model farther from the truth on every seed (or closer, ``tie_worse=False``)."""
    bt = _values(0.20, 0.30, 40)
    tie = bt + (1 if tie_worse else -1) * _values(0.01, 0.02, 41)
    theta = _values(2.5, 3.5, 42)
    rows = _rows(bt, 60, teacher=RK_TEACHER) + _rows(tie, 60, teacher=RK_TEACHER, tie_param=theta,
                                                      ties="rao-kupper", tie_fit="learned")
    return _load(rows, tmp_path), {"bt": bt, "tie": tie, "theta": theta}


def test_rankings_against_pairs_are_paired_differences_of_the_seeds_means(tmp_path):
    cells, epic = rank_cells(tmp_path)
    table = rt.versus_pairs(rt.ranking_cells(cells)).set_index(["budget", "rank_learner"])
    assert len(table) == 4 and (table["rank"] == 4).all() and (table["seeds"] == len(SEEDS)).all()
    for budget in BUDGETS:
        for learner, key in (("plackett-luce", "pl"), ("pair-split", "ps")):
            row = table.loc[(budget, learner)]
            assert row["epic_pairs"] == pytest.approx(epic[budget]["pairs"].mean())
            assert row["epic_rankings"] == pytest.approx(epic[budget][key].mean())
            assert row["difference"] == pytest.approx(epic[budget][key].mean() - epic[budget]["pairs"].mean())
            assert row["ci_low"] <= row["difference"] <= row["ci_high"] < 0 and row["verdict"] == "below"
        assert table.loc[(budget, "plackett-luce"), "near_optimal_pairs"] == pytest.approx(0.5)
        assert table.loc[(budget, "plackett-luce"), "near_optimal_rankings"] == pytest.approx(1.0)
        assert table.loc[(budget, "pair-split"), "near_optimal_difference"] == pytest.approx(0.25)


def test_the_learner_comparison_is_mean_std_and_mse_of_the_same_seeds(tmp_path):
    cells, epic = rank_cells(tmp_path)
    table = rt.learners(rt.ranking_cells(cells)).set_index("budget")
    for budget in BUDGETS:
        pl, ps = epic[budget]["pl"], epic[budget]["ps"]
        row = table.loc[budget]
        assert row["difference"] == pytest.approx(pl.mean() - ps.mean())
        assert row["std_pl"] == pytest.approx(pl.std(ddof=1)) and row["std_ps"] == pytest.approx(ps.std(ddof=1))
        assert row["std_difference"] == pytest.approx(pl.std(ddof=1) - ps.std(ddof=1))
        assert row["efficiency"] == pytest.approx(np.mean(4 * ps ** 2) / np.mean(4 * pl ** 2))
        assert row["ci_high"] < 0 and row["verdict"] == "below"
        assert row["efficiency_ci_low"] > 1


def test_tie_calibration_is_the_fitted_parameters_tie_probability_against_the_teachers(tmp_path):
    cells, values = tie_cells(tmp_path)
    frame = rt.ranking_cells(cells)
    assert frame["fitted_tie"].dropna().to_numpy() == pytest.approx(values["theta"])   # the metric, not the field
    table = rt.ties(frame).set_index("ties")
    assert table.loc["none", "epic"] == pytest.approx(values["bt"].mean())
    row = table.loc["rao-kupper"]
    assert row["difference"] == pytest.approx(values["tie"].mean() - values["bt"].mean())
    assert row["fitted_tie_param"] == pytest.approx(values["theta"].mean())
    assert row["tie"] == pytest.approx(np.mean((values["theta"] - 1) / (values["theta"] + 1)))
    assert row["teacher_tie"] == pytest.approx(0.5)                        # θ = 3: (3 − 1)/(3 + 1)
    assert row["tie_ci_low"] <= row["tie"] <= row["tie_ci_high"] and row["verdict"] == "above"


def test_the_findings_follow_the_direction_of_the_data(tmp_path):
    for pl_better, said in ((True, "reproduced for every K"), (False, "contradicted for K = 4")):
        cells, _ = rank_cells(tmp_path, pl_better)
        frame = rt.ranking_cells(cells)
        text = "\n".join(rankings.findings(rt.versus_pairs(frame), rt.learners(frame), pd.DataFrame()))
        assert said in text
        assert "rankings beat pairs there for K = 4" in text
    for tie_worse, said in ((True, "contradicted: a tie model is never closer"), (False, "reproduced: a tie model")):
        cells, _ = tie_cells(tmp_path, tie_worse)
        text = "\n".join(rankings.findings(pd.DataFrame(), pd.DataFrame(), rt.ties(rt.ranking_cells(cells))))
        assert said in text and ("farther in 1" if tie_worse else "closer in 1") in text


def test_rankings_that_lose_to_pairs_are_said_to(tmp_path):
    cells, _ = rank_cells(tmp_path)
    frame = rt.ranking_cells(cells)
    pairs = rt.versus_pairs(frame)
    flipped = pairs.assign(epic_rankings=pairs["epic_pairs"] + 0.1, difference=0.1, ci_low=0.05, ci_high=0.15,
                           verdict="above")
    text = "\n".join(rankings.findings(flipped, pd.DataFrame(), pd.DataFrame()))
    assert "no K beats pairs there" in text and "farther at 30, 60" in text


def test_the_section_writes_its_tables_and_figure_and_shows_the_numbers(tmp_path):
    (tmp_path / "run").mkdir()
    cells, epic = rank_cells(tmp_path / "run")
    ties, _ = tie_cells(tmp_path)
    stage = tmp_path / "stage"
    stage.mkdir()
    out = rankings.section(ReportInputs(cells=pd.DataFrame(), summary=pd.DataFrame(), main=pd.DataFrame(), extra=(),
                                        stage=stage, ranked=pd.concat([cells, ties], ignore_index=True)))
    assert [p.name for p in out.files] == ["rankings.csv", "rankings_learners.csv", "rankings_ties.csv", "rankings.png"]
    assert all(p.is_file() for p in out.files) and out.figures[0].path.name == "rankings.png"
    page = "\n".join(out.lines)
    assert page.startswith("## Rankings and ties")
    assert f"{epic[60]['pl'].mean() - epic[60]['pairs'].mean():+.3f}" in page
    assert f"{epic[60]['pl'].mean() - epic[60]['ps'].mean():+.3f}" in page


@pytest.mark.parametrize("only", ["rankings", "ties"])
def test_a_run_with_only_rankings_or_only_ties_has_its_part_of_the_section(tmp_path, only):
    cells = rank_cells(tmp_path)[0] if only == "rankings" else tie_cells(tmp_path)[0]
    out = rankings.section(ReportInputs(cells=pd.DataFrame(), summary=pd.DataFrame(), main=pd.DataFrame(), extra=(),
                                        stage=tmp_path, ranked=cells))
    page = "\n".join(out.lines)
    assert ("### Ties" in page) == (only == "ties")
    assert ("### Plackett–Luce against pair split" in page) == (only == "rankings")
    assert (tmp_path / "rankings.png").is_file()


def test_other_sections_get_the_cells_without_this_sweeps_settings(tmp_path):
    """Ranking and tie cells and the pair cells of their settings are this section's; a pair cell of another
    setting (here another teacher) stays, and with no ranking field left set the ranking columns go."""
    cells, _ = rank_cells(tmp_path)
    (tmp_path / "other").mkdir()
    other = _load(_rows(_values(0.1, 0.2, 3), 30, teacher="boltzmann:0.3"), tmp_path / "other")
    both = pd.concat([cells, other], ignore_index=True)
    mine, rest = rankings.split(both)
    assert len(rest) == len(other) and (rest["teacher"] == "boltzmann:0.3").all() and "rank" not in rest
    assert len(mine) == len(cells) and (mine["teacher"] != "boltzmann:0.3").all()
    assert rankings.split(other)[1].equals(other) and rankings.split(other)[0].empty


def test_no_ranking_cells_no_section(tmp_path):
    pairs = _load(_rows(_values(0.1, 0.2, 1), 30), tmp_path)
    assert not any(c in pairs for c in ("rank", "ties"))                 # pair cells: no ranking columns
    inputs = ReportInputs(cells=pd.DataFrame(), summary=pd.DataFrame(), main=pd.DataFrame(), extra=(), stage=tmp_path,
                          ranked=pairs)
    assert rankings.section(inputs) == rankings.SectionOutput()
    defaults = pairs.assign(rank=2, rank_learner="plackett-luce", rank_cost="comparisons", ties="none",
                            tie_param=0.0, tie_fit="fixed")                # the columns, every value the default
    assert rankings.section(ReportInputs(cells=pd.DataFrame(), summary=pd.DataFrame(), main=pd.DataFrame(), extra=(),
                                         stage=tmp_path, ranked=defaults)) == rankings.SectionOutput()
    assert not list(tmp_path.glob("rankings*"))
