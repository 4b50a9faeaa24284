"""Alignment sweeps through the harness (#24 item 7): the config's alignment axes, a tiny sweep end to end,
the report section, and Azar et al.'s toy table against values derived here from the papers."""

import dataclasses
import hashlib
import json
import math

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_cli

import rlhf
from bench.errors import ConfigError
from bench.report import alignment, alignment_findings, alignment_frontier, alignment_toy
from bench.report.section import ReportInputs
from bench.sweep import config
from rlhf.policies.reference import reference_policy

TINY = """
name = "tiny-alignment"
[strings]
sizes = [3]
slips = [0.0]
budgets = [5, 20]
teachers = ["oracle", "boltzmann:1"]
methods = ["rlhf", "dpo", "ipo", "cpl"]
betas = [0.3, 1.0]
seeds = 3
[gridworld]
sizes = [3]
slips = [0.0, 0.2]
horizon = 4
budgets = [20]
teachers = ["boltzmann:0.1", "regret+boltzmann:0.1"]
methods = ["dpo", "cpl"]
betas = [0.3]
references = ["uniform"]
seeds = 3
"""
"""120 cells in 24 groups: a few seconds."""

TABLE = "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"


def write(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ config
def test_alignment_axes_are_crossed_and_named_in_every_cell(tmp_path):
    text = TABLE.replace("budgets=[5]", "budgets=[5, 10]") + (
        "methods=['dpo', 'ipo']\nbetas=[0.1, 1]\nreferences=['uniform', 'sft:5']\n"
        "[[gridworld]]\nsizes=[3]\nslips=[0.0]\nbudgets=[50]\nteachers=['oracle']\nseeds=2\n")
    cells = config.load(write(tmp_path, text)).cells
    aligned = [c for c in cells if c.method]
    assert len(aligned) == 2 * 2 * 2 * 2 * 1       # budgets × methods × betas × references × seeds
    assert {(c.method, c.beta, c.reference) for c in aligned} == {
        (m, b, r) for m in ("dpo", "ipo") for b in (0.1, 1.0) for r in ("uniform", "sft:5")}
    assert all(isinstance(c.beta, float) for c in aligned)
    for cell in aligned:
        fields = cell.fields()
        assert list(fields)[-3:] == ["method", "beta", "reference"]
        assert config.CellConfig.from_fields(fields) == cell
        assert config.CellConfig.from_fields(fields | {"beta": 0.5}).key != cell.key
    assert len({c.key for c in cells}) == len(cells)
    training = [c for c in cells if not c.method]
    assert len(training) == 2 and all("method" not in c.fields() for c in training)
    assert config.CellConfig.from_fields(training[0].fields() | {"method": math.nan}) == training[0]   # a CSV's NaN


def test_training_cells_keep_their_keys(tiny_config):
    """A cell without a method has exactly the fields (and so the key and the cells.csv columns) it had
    before the alignment axes: the configuration columns, nothing more (its key hashes exactly them)."""
    for cell in config.load(tiny_config).cells:
        fields = cell.fields()
        assert list(fields) == config.config_columns() and not cell.method
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        assert cell.key == hashlib.sha256(text.encode()).hexdigest()[:16]
    with_method = dataclasses.replace(cell, method="dpo", beta=0.1, reference="uniform")
    assert with_method.key != cell.key and list(with_method.fields())[:-3] == config.config_columns()


BAD = [  # (case, extra table lines, what the one-line error must say)
    ("unknown method", "methods=['dpoo']", "strings.methods = 'dpoo': must be one of rlhf, dpo, ipo"),
    ("beta 0", "methods=['dpo']\nbetas=[0]", "strings.betas = 0: must be a number > 0"),
    ("beta not a number", "methods=['dpo']\nbetas=['big']", "strings.betas = 'big': must be a number > 0"),
    ("beta infinite", "methods=['dpo']\nbetas=[inf]", "strings.betas = inf: must be a number > 0"),
    ("reference", "methods=['dpo']\nreferences=['sft:x']", "strings.references = 'sft:x': reference 'sft:x': N must"),
    ("behaviour", "methods=['dpo']\nreferences=['sft:5:greedy']", "strings.references = 'sft:5:greedy': behaviour"),
    ("betas without methods", "betas=[0.1]", "strings.betas = [0.1]: applies only with methods"),
    ("query rule with methods", "methods=['dpo']\nqueries=['uniform']",
     "strings.queries = ['uniform']: does not apply to alignment cells"),
    ("methods not a list", "methods='dpo'", "strings.methods = 'dpo': must be a non-empty list"),
    ("training options with methods", "methods=['dpo']\n[strings.train]\nlr=0.1",
     "strings.train = {'lr': 0.1}: does not apply to alignment cells"),
]


@pytest.mark.parametrize("name,extra,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_alignment_axes_name_the_field(tmp_path, name, extra, needle):
    with pytest.raises(ConfigError) as raised:
        config.load(write(tmp_path, TABLE + extra))
    message = str(raised.value)
    assert needle in message and "\n" not in message


def test_bad_alignment_axis_exits_2_with_one_line(tmp_path):
    path, out = write(tmp_path, TABLE + "methods=['dpoo']"), tmp_path / "out"
    result = run_cli("run", "--config", str(path), "--out", str(out))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "strings.methods = 'dpoo'" in lines[0]
    assert "Traceback" not in result.stderr and not out.exists()


# ------------------------------------------------------------------ a tiny sweep, end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny sweep, run by the process executor, and its report."""
    tmp = tmp_path_factory.mktemp("alignment")
    path = write(tmp, TINY)
    run, to = tmp / "run", tmp / "report"
    result = run_cli("run", "--config", str(path), "--out", str(run), "--executor", "process", "--workers", "2",
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    report = run_cli("report", "--run", str(run), "--to", str(to))
    assert report.returncode == 0, report.stderr
    return path, run, to, result.stdout


def test_tiny_sweep_stores_every_cell_with_its_alignment_columns(tiny_run):
    path, run, _, stdout = tiny_run
    assert "120 run, 0 skipped" in stdout and "0 failed" in stdout
    table = pd.read_csv(run / "cells.csv")
    columns = list(table.columns)
    assert columns[:6] == ["task", "size", "slip", "budget", "teacher", "seed"]
    at = columns.index("method")
    assert columns[at:at + 5] == ["method", "beta", "reference", "status", "error"]
    assert columns[at - 1] == config.config_columns()[-1]
    assert (table["status"] == "done").all()
    assert {"kl", "true_return", "scaled_return", "win_rate", "implicit_epic", "reference_ood_mass"} <= set(columns)
    strings = table[table["task"] == "strings"]
    assert strings["ood_mass"].notna().all() and (strings["win_rate_exact"] == 1).all()    # 27 sequences: enumerated
    grid = table[table["task"] == "gridworld"]
    assert grid["win_rate_exact"].eq(0).any()         # too many trajectories: sampled
    again = run_cli("run", "--config", str(path), "--out", str(run), "--no-progress")
    assert again.returncode == 0 and "0 run, 120 skipped" in again.stdout


def test_seed_k_of_a_stored_group_equals_seed_k_alone(tiny_run):
    """A cell's numbers are ``rlhf.align`` on that seed's data alone, bit for bit (the sweep batched 3 seeds)."""
    _, run, _, _ = tiny_run
    table = pd.read_csv(run / "cells.csv")
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    for method, teacher, seed in (("dpo", "oracle", 2), ("rlhf", "boltzmann:1", 1)):
        row = table[(table["task"] == "strings") & (table["method"] == method) & (table["teacher"] == teacher)
                    & (table["beta"] == 1.0) & (table["budget"] == 20) & (table["seed"] == seed)].iloc[0]
        reference = reference_policy(task, "uniform")
        data = rlhf.PreferenceData.sampled(task, teacher, 20, seed=seed, policy=reference)
        alone = rlhf.align(task, data, method=method, beta=1.0, reference=reference, seed=seed)
        for metric in ("kl", "true_return", "win_rate", "loss"):
            assert row[metric] == alone.metrics[metric], (method, metric)


def test_no_policy_beats_the_exact_frontier(tiny_run):
    """J(π) − β'·KL(π) ≤ J*(β') − β'·KL*(β') for every stored policy and every β' of the frontier."""
    _, run, _, _ = tiny_run
    table = pd.read_csv(run / "cells.csv", dtype={"method": str, "reference": str, "start": str, "env": str})
    table = table.fillna({"start": "", "env": ""})
    for _, rows in table.groupby(["task", "slip"]):
        exact = alignment_frontier.frontier(rows.iloc[0].to_dict())
        assert (np.diff(exact["kl"]) <= 1e-6).all() and (np.diff(exact["true_return"]) <= 1e-6).all()   # falls with β
        best = (exact["true_return"] - exact["beta"] * exact["kl"]).to_numpy()
        ours = rows["true_return"].to_numpy()[:, None] - exact["beta"].to_numpy()[None] * rows["kl"].to_numpy()[:, None]
        assert (ours <= best[None] + 1e-6).all()


def test_the_section_writes_its_figure_tables_and_findings(tiny_run):
    _, _, to, _ = tiny_run
    page = (to / "README.md").read_text()
    assert "## From preferences to policies" in page and "### Win rate against the reference" in page
    assert "![alignment_frontier](alignment_frontier.png)" in page
    for paper in ("Azar et al.", "Xu et al.", "Rafailov et al. (2023)", "Hejna et al."):
        assert f"**{paper}" in page, paper
    image = matplotlib.image.imread(to / "alignment_frontier.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    summary = pd.read_csv(to / "alignment.csv")
    assert len(summary) == 2 * 2 * 4 * 2 + 2 * 2 * 2          # strings: budgets × teachers × methods × βs; grid
    assert (summary["seeds"] == 3).all()
    assert (summary["win_rate_ci_low"] <= summary["win_rate_mean"] + 1e-12).all()
    assert (summary["win_rate_mean"] <= summary["win_rate_ci_high"] + 1e-12).all()
    toy = pd.read_csv(to / "alignment_toy.csv")
    assert len(toy) == 2 * len(alignment_toy.TAUS) * 2
    # the training sections have nothing to say about alignment cells
    assert "strings" not in (to / "convergence.md").read_text().split("\n\n", 2)[-1]


def test_alignment_cells_leave_the_rest_of_the_report_as_it_was(tmp_path, tiny_config, tiny_run):
    _, align_run, _, _ = tiny_run
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    alone, both = tmp_path / "alone", tmp_path / "both"
    run_cli("report", "--run", str(run), "--to", str(alone), check=True)
    run_cli("report", "--run", str(run), "--run", str(align_run), "--to", str(both), check=True)
    for name in ("convergence.csv", "convergence.md", "sample_efficiency_strings.png"):
        assert (alone / name).read_bytes() == (both / name).read_bytes(), name
    assert not (alone / "alignment.csv").exists() and (both / "alignment.csv").exists()


def test_the_section_is_empty_without_alignment_cells(tmp_path):
    inputs = ReportInputs(cells=pd.DataFrame(), summary=pd.DataFrame(), main=pd.DataFrame(), extra=(),
                          stage=tmp_path)
    out = alignment.section(inputs)
    assert out.lines == [] and out.files == [] and not any(tmp_path.iterdir())


# ------------------------------------------------------------------ the findings follow the numbers
def _ood_cells(dpo: float, rlhf_: float) -> pd.DataFrame:
    rows = []
    for method, base in (("dpo", dpo), ("rlhf", rlhf_)):
        for seed in range(8):
            rows.append({"task": "strings", "size": 3, "slip": 0.0, "start": "", "vocab_size": 3, "horizon": 0,
                         "world": 0, "env": "", "reference": "uniform", "teacher": "oracle", "beta": 1.0,
                         "budget": 5, "seed": seed, "method": method, "status": "done",
                         "ood_mass": base + 0.01 * seed, "reference_ood_mass": 0.7})
    return pd.DataFrame(rows)


def test_xu_verdict_is_read_off_the_numbers():
    assert "— reproduced" in alignment_findings.xu(_ood_cells(0.9, 0.5))[0]
    assert "— refuted" in alignment_findings.xu(_ood_cells(0.5, 0.9))[0]
    assert "— not distinguishable" in alignment_findings.xu(_ood_cells(0.5, 0.5))[0]


# ------------------------------------------------------------------ Azar et al. 2023, §5.3–5.4
def test_toy_table_matches_values_derived_from_the_papers():
    """IPO (Azar et al., eq. 17) minimises Σ (x_w − x_l − 1/(2τ))² over x = log π/π_ref; with a uniform
    reference π = softmax(x). One pair: x_a − x_b = 1/(2τ). Three pairs: the least-squares solution of the
    design below (any offset: softmax ignores it). DPO (Rafailov et al., eq. 7) minimises Σ −log σ(τ(x_w − x_l)):
    every margin → ∞, no finite minimiser, π → (1, 0, …)."""
    table = alignment_toy.toy_table()
    for tau in alignment_toy.TAUS:
        rows = table[table["tau"] == tau]
        one = rows[rows["dataset"] == "{a ≻ b}"].set_index("method")
        margin = 1 / (2 * tau)
        assert one.loc["ipo", "pi_a"] == pytest.approx(math.exp(margin) / (1 + math.exp(margin)), abs=1e-12)
        assert one.loc["ipo", "pi_a"] / one.loc["ipo", "pi_b"] == pytest.approx(math.exp(margin), rel=1e-10)
        design = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, -1.0]])
        x = np.linalg.lstsq(design, np.full(3, margin), rcond=None)[0]
        expected = np.exp(x) / np.exp(x).sum()
        three = rows[rows["dataset"] == "{a ≻ b, b ≻ c, a ≻ c}"].set_index("method")
        np.testing.assert_allclose(three.loc["ipo", ["pi_a", "pi_b", "pi_c"]].to_numpy(dtype=float), expected,
                                   atol=1e-12, rtol=0)
        for frame in (one, three):
            assert frame.loc["dpo", "pi_a"] == 1.0 and not frame.loc["dpo", "finite_minimiser"]
            assert frame.loc["ipo", "finite_minimiser"] and frame.loc["ipo", "gap"] < 1e-12
    markdown = alignment_toy.markdown(table)
    assert markdown.count("\n") == 2 * len(alignment_toy.TAUS) + 1 and "(0.622, 0.378)" in markdown     # σ(1/2)


def test_exact_point_at_large_beta_is_the_reference():
    task = rlhf.StringTask(vocab="AB", target="AB")
    reference = torch.tensor([[0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)     # positions 0, 1; target AB
    point = alignment_frontier.exact_point(task, reference, 1e6)
    assert point["kl"] == pytest.approx(0.0, abs=1e-6)                         # the planner works in float32
    assert point["true_return"] == pytest.approx(0.2 + 0.4, abs=1e-5)          # the reference's own return
    greedy = alignment_frontier.exact_point(task, reference, 1e-3)
    assert greedy["scaled_return"] == pytest.approx(1.0, abs=1e-6)
    assert greedy["kl"] == pytest.approx(-math.log(0.2) - math.log(0.4), abs=1e-3)
