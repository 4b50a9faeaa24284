import matplotlib.image
import pandas as pd

from bench import config
from helpers import run_cli


def test_report_on_a_tiny_run(tmp_path, tiny_config):
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    first, second = tmp_path / "r1", tmp_path / "r2"
    for to in (first, second):
        result = run_cli("report", "--run", str(run), "--to", str(to))
        assert result.returncode == 0, result.stderr

    table = pd.read_csv(first / "convergence.csv")
    configurations = {c.group for c in config.load(tiny_config).cells}
    assert len(table) == len(configurations) == 6
    assert (table["seeds"] == table["task"].map({"gridworld": 2, "strings": 3})).all()
    assert {"success_mean", "success_ci_low", "success_ci_high", "success_iqm", "epic_mean"} <= set(table.columns)
    assert (table["success_ci_low"] <= table["success_mean"]).all()
    assert (table["success_mean"] <= table["success_ci_high"]).all()

    for name in ("sample_efficiency_gridworld", "sample_efficiency_strings", "seed_gridworld_paths",
                 "seed_gridworld_training", "seed_gridworld_rewards", "seed_strings_tables"):
        image = matplotlib.image.imread(first / f"{name}.png")
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert (first / f"{name}.png").read_bytes() == (second / f"{name}.png").read_bytes()
    for name in ("convergence.csv", "convergence.md"):
        assert (first / name).read_bytes() == (second / name).read_bytes()      # no timestamps inside

    page = (first / "README.md").read_text()
    assert "## What converges" in page and "![sample_efficiency_gridworld](sample_efficiency_gridworld.png)" in page
    assert "| task" in (first / "convergence.md").read_text()
