"""Over-optimisation sweeps through the harness (#25 item 4): the config's ``proxies`` axis, a tiny
sweep end to end, what a cell stores against the library computed here, and the report section."""

import dataclasses
import math

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from helpers import run_cli

import rlhf
from bench.errors import ConfigError
from bench.report import overoptimisation, overoptimisation_findings
from bench.report.section import ReportInputs
from bench.sweep import config, overoptimising
from rlhf.core.planning import policy_return
from rlhf.policies.reference import reference_policy

TINY = """
name = "tiny-overoptimisation"
[strings]
sizes = [3]
slips = [0.0]
vocab_size = 3
golds = ["random:0"]
references = ["sft:20"]
budgets = [5, 20]
teachers = ["boltzmann:1"]
proxies = ["bt", "min:2", "dpo"]
seeds = 3
[gridworld]
sizes = [2]
slips = [0.0]
horizon = 3
budgets = [10]
teachers = ["boltzmann:1"]
proxies = ["bt"]
seeds = 2
"""
"""20 cells in 4 groups: a few seconds."""

TABLE = "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"


def write(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ config
def test_proxies_are_crossed_and_named_in_every_cell(tmp_path):
    cells = config.load(write(tmp_path, TABLE + "proxies=['bt', 'mean:3', 'ipo']\ngolds=['random:1', 'match']\n"
                                                "references=['uniform', 'sft:5']\n")).cells
    assert len(cells) == 3 * 2 * 2
    assert {(c.proxy, c.gold, c.reference) for c in cells} == {
        (p, g, r) for p in ("bt", "mean:3", "ipo") for g in ("random:1", "match") for r in ("uniform", "sft:5")}
    fields = cells[0].fields()
    assert list(fields)[:-3] == config.config_columns() and list(fields)[-3:] == ["proxy", "gold", "reference"]
    assert config.CellConfig.from_fields(fields) == cells[0]
    plain = dataclasses.replace(cells[0], proxy="", gold="", reference="")
    assert list(plain.fields()) == config.config_columns() and plain.key != cells[0].key


BAD = [  # (case, extra table lines, what the one-line error must say)
    ("unknown proxy", "proxies=['bt2']", "strings.proxies = 'bt2': must be bt, mean:E or min:E"),
    ("ensemble of one", "proxies=['min:1']", "strings.proxies = 'min:1': must be bt, mean:E or min:E"),
    ("bad gold", "proxies=['bt']\ngolds=['random:x']", "strings.golds = 'random:x': reward must be 'match', 'random:K'"),
    ("golds without proxies", "golds=['random:0']", "strings.golds = ['random:0']: applies only with proxies"),
    ("references alone", "references=['uniform']", "strings.references = ['uniform']: applies only with methods or"),
    ("both kinds", "proxies=['bt']\nmethods=['dpo']", "strings.proxies = ['bt']: cannot share a table with methods"),
    ("training axis", "proxies=['bt']\nensembles=[3]", "strings.ensembles = [3]: does not apply to over-optimisation"),
    ("betas with proxies", "proxies=['bt']\nbetas=[0.1]", "strings.betas = [0.1]: applies only with methods"),
]


@pytest.mark.parametrize("name,extra,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_overoptimisation_axes_name_the_field(tmp_path, name, extra, needle):
    with pytest.raises(ConfigError) as raised:
        config.load(write(tmp_path, TABLE + extra))
    message = str(raised.value)
    assert needle in message and "\n" not in message


def test_a_gold_reward_is_refused_for_another_task(tmp_path):
    text = "[gridworld]\nsizes=[2]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\nproxies=['bt']\ngolds=['random:0']\n"
    with pytest.raises(ConfigError, match="gridworld.golds = 'random:0': a gold reward applies to the string task"):
        config.load(write(tmp_path, text))


def test_a_task_too_large_for_exact_best_of_n_is_refused(tmp_path):
    text = TABLE.replace("sizes=[3]", "sizes=[12]") + "vocab_size=4\nproxies=['bt']\n"
    with pytest.raises(ConfigError, match="exact best-of-n needs at most"):
        config.load(write(tmp_path, text))


# ------------------------------------------------------------------ a tiny sweep, end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny sweep, run by the process executor, and its report."""
    tmp = tmp_path_factory.mktemp("overoptimisation")
    path = write(tmp, TINY)
    run, to = tmp / "run", tmp / "report"
    result = run_cli("run", "--config", str(path), "--out", str(run), "--executor", "process", "--workers", "2",
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    report = run_cli("report", "--run", str(run), "--to", str(to))
    assert report.returncode == 0, report.stderr
    return path, run, to, result.stdout


def _history(run, cell):
    from bench.report.runs import load_store
    return load_store(run).rows[cell.key]


def test_a_cell_stores_its_paths_as_the_library_computes_them_for_that_seed_alone(tiny_run):
    """Seed 1 of a group of three, recomputed here from its own data alone: every path point, bit for bit."""
    path, run, _, stdout = tiny_run
    assert "20 run, 0 skipped" in stdout and "0 failed" in stdout
    cell = next(c for c in config.load(path).cells if c.task == "strings" and c.proxy == "bt" and c.budget == 20
                and c.seed == 1)
    row = _history(run, cell)
    task = rlhf.StringTask(vocab="ABC", target="ABC", reward="random:0")
    reference = reference_policy(task, "sft:20")
    data = rlhf.PreferenceData.sampled(task, "boltzmann:1", 20, seed=1, policy=reference)
    proxy = rlhf.proxy_reward(task, data, seed=1, reference=reference)
    for name, points in (("kl", rlhf.kl_path(task, proxy, overoptimising.KL_BETAS, reference)),
                         ("best_of_n", rlhf.best_of_n_path(task, proxy, overoptimising.NS, reference)),
                         ("npg", rlhf.npg_path(task, proxy, overoptimising.NPG_STEPS, overoptimising.NPG_LR, reference))):
        assert row["history"][f"{name}.gold"] == [p.gold_return for p in points], name
        assert row["history"][f"{name}.kl"] == [p.kl for p in points], name
        assert row["history"][f"{name}.proxy"] == [p.proxy_return for p in points], name
        gold = np.array(row["history"][f"{name}.gold"])
        assert row["metrics"][f"{name}_peak_gold"] == gold.max()
        assert row["metrics"][f"{name}_drop"] == gold.max() - gold[-1] >= 0
        assert row["metrics"][f"{name}_peak_d"] == math.sqrt(max(points[int(gold.argmax())].kl, 0.0))
    assert row["metrics"]["gold_ref"] == policy_return(task.mdp, reference, task.true_reward, task.horizon)
    assert row["history"]["best_of_n.kl"][0] == 0.0                          # n = 1 is the reference


def test_a_method_cell_stores_its_path_along_beta(tiny_run):
    path, run, _, _ = tiny_run
    cell = next(c for c in config.load(path).cells if c.proxy == "dpo" and c.budget == 5 and c.seed == 2)
    row = _history(run, cell)
    assert row["history"]["align.param"] == list(overoptimising.METHOD_BETAS)
    assert "kl.gold" not in row["history"] and "align_drop" in row["metrics"]
    task = rlhf.StringTask(vocab="ABC", target="ABC", reward="random:0")
    reference = reference_policy(task, "sft:20")
    data = rlhf.PreferenceData.sampled(task, "boltzmann:1", 5, seed=2, policy=reference)
    alone = rlhf.align(task, data, method="dpo", beta=overoptimising.METHOD_BETAS[2], reference=reference, seed=2)
    assert row["history"]["align.gold"][2] == alone.metrics["true_return"]


def test_the_section_writes_its_figures_tables_and_findings(tiny_run):
    _, run, to, _ = tiny_run
    page = (to / "README.md").read_text()
    assert "## Reward over-optimisation" in page and "### Gao et al.'s forms, fitted" in page
    for name in ("overoptimisation_gao", "overoptimisation_fit", "overoptimisation_peaks"):
        assert f"![{name}]({name}.png)" in page
        image = matplotlib.image.imread(to / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 600
    for paper in ("Gao et al. (2023), the hump along KL-regularised RL", "Coste et al. (2023), min:2",
                  "Rafailov et al. (2024), dpo", "Best-of-n's KL"):
        assert f"**{paper}" in page, paper
    fits = pd.read_csv(to / "overoptimisation_fits.csv")
    assert set(fits["form"]) == {"bon", "rl"} and (fits["seeds"] >= 2).all()
    assert ((fits["alpha_ci_low"] <= fits["alpha"] + 1e-9) & (fits["alpha"] <= fits["alpha_ci_high"] + 1e-9)).all()


def test_the_peak_table_is_the_mean_of_each_seeds_exact_peak(tiny_run):
    """The report's peak gain for one configuration, against the stored histories read here."""
    path, run, to, _ = tiny_run
    peaks = pd.read_csv(to / "overoptimisation_peaks.csv", dtype={"proxy": str})
    cells = [c for c in config.load(path).cells if c.task == "strings" and c.proxy == "min:2" and c.budget == 20]
    gains = [max(_history(run, c)["history"]["kl.gold"]) - _history(run, c)["metrics"]["gold_ref"] for c in cells]
    row = peaks[(peaks["task"] == "strings") & (peaks["proxy"] == "min:2") & (peaks["budget"] == 20)
                & (peaks["path"] == "kl")]
    assert len(row) == 1 and row["seeds"].iloc[0] == 3
    assert row["peak_gain_mean"].iloc[0] == pytest.approx(np.mean(gains), abs=1e-6)


def test_the_section_is_empty_without_overoptimisation_cells(tmp_path):
    inputs = ReportInputs(cells=pd.DataFrame(), summary=pd.DataFrame(), main=pd.DataFrame(), extra=(),
                          stage=tmp_path)
    out = overoptimisation.section(inputs)
    assert out.lines == [] and out.files == [] and not any(tmp_path.iterdir())


# ------------------------------------------------------------------ the findings follow the numbers
def _seeds(drop_bt: float, drop_ensemble: float) -> pd.DataFrame:
    rows = []
    for proxy, drop in (("bt", drop_bt), ("min:5", drop_ensemble)):
        for seed in range(8):
            rows.append({"task": "strings", "reference": "uniform", "teacher": "t", "budget": 10, "seed": seed,
                         "proxy": proxy, "path": "kl", "drop": drop + 0.01 * seed, "peak_gain": 1.0,
                         "end_gain": 1.0 - drop - 0.01 * seed, "peak_d": 1.0})
    return pd.DataFrame(rows)


def test_coste_verdict_is_read_off_the_numbers():
    assert "min:5 ensemble — reproduced" in overoptimisation_findings.coste(_seeds(0.5, 0.1))[0]
    assert "min:5 ensemble — not reproduced" in overoptimisation_findings.coste(_seeds(0.1, 0.5))[0]


def test_each_proxy_rises_along_the_kl_path_in_the_sweep(tiny_run):
    """The KL path's theorem (module docstring of rlhf.policies.overoptimization): the proxy never falls as β falls."""
    path, run, _, _ = tiny_run
    for cell in config.load(path).cells:
        if overoptimising.parse_proxy(cell.proxy)[0] == "reward":
            proxy = np.array(_history(run, cell)["history"]["kl.proxy"])
            assert (np.diff(proxy) >= -1e-9).all(), cell
