import dataclasses
import json
import multiprocessing
import os
import sqlite3
import tempfile

import matplotlib.image
import pandas as pd
import pytest
from helpers import run_cli

from bench.errors import BenchError
from bench.outputs import MANIFEST
from bench.report import build
from bench.report.section import ReportInputs, SectionOutput
from bench.sweep import config

SEED_FIGURES = ("seed_gridworld_paths", "seed_gridworld_training", "seed_gridworld_rewards", "seed_strings_tables")

# The seed configurations (rlhf presets) with one seed each: the report draws the seed figures from them.
SEEDS_CONFIG = """
[gridworld]
sizes = [5]
slips = [0.0]
budgets = [20000]
teachers = ["boltzmann:1"]
starts = ["corner"]
seeds = 1
[strings]
sizes = [3]
slips = [0.0]
budgets = [10, 200]
teachers = ["deterministic"]
seeds = 1
"""


def test_report_on_a_tiny_run(tmp_path, tiny_config):
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    first, second = tmp_path / "r1", tmp_path / "r2"
    for to in (first, second):
        result = run_cli("report", "--run", str(run), "--to", str(to))
        assert result.returncode == 0, result.stderr

    table = pd.read_csv(first / "convergence.csv")
    configurations = {json.dumps(c.configuration(), sort_keys=True) for c in config.load(tiny_config).cells}
    assert len(table) == len(configurations) == 6
    assert (table["seeds"] == table["task"].map({"gridworld": 2, "strings": 3})).all()
    assert {"success_mean", "success_ci_low", "success_ci_high", "success_iqm", "epic_mean"} <= set(table.columns)
    assert (table["success_ci_low"] <= table["success_mean"]).all()
    assert (table["success_mean"] <= table["success_ci_high"]).all()
    assert "lr" not in table.columns        # the same in every configuration: not a column

    for name in ("sample_efficiency_gridworld", "sample_efficiency_strings"):
        image = matplotlib.image.imread(first / f"{name}.png")
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert (first / f"{name}.png").read_bytes() == (second / f"{name}.png").read_bytes()
    for name in ("convergence.csv", "convergence.md"):
        assert (first / name).read_bytes() == (second / name).read_bytes()      # no timestamps inside
    # Only what the run supports: no seed configurations in it, so no seed figures, no teacher section.
    assert not any((first / f"{name}.png").exists() for name in SEED_FIGURES)
    page = (first / "README.md").read_text()
    assert "## What converges" in page and "![sample_efficiency_gridworld](sample_efficiency_gridworld.png)" in page
    assert "Irrational teachers" not in page and "default.toml" not in page and "tox -e bench" not in page
    assert f"--config {tiny_config} --out {run}" in page and f"--run {run} --to {first}" in page   # how it was made
    assert "| task" in (first / "convergence.md").read_text()
    assert set(json.loads((first / MANIFEST).read_text())["files"]) == {p.name for p in first.iterdir()} - {MANIFEST}


def test_seed_figures_come_from_the_seed_configurations_in_the_run(tmp_path):
    cfg, run, to = tmp_path / "seeds.toml", tmp_path / "run", tmp_path / "rep"
    cfg.write_text(SEEDS_CONFIG)
    run_cli("run", "--config", str(cfg), "--out", str(run), "--no-progress", check=True)
    result = run_cli("report", "--run", str(run), "--to", str(to))
    assert result.returncode == 0, result.stderr
    for name in SEED_FIGURES:
        assert matplotlib.image.imread(to / f"{name}.png").shape[0] > 100, name


def test_sections_in_forked_workers_write_what_one_process_writes(tmp_path, tiny_config, monkeypatch):
    # the seed figures replay their cells with torch inside a forked worker
    seeds, runs = tmp_path / "seeds.toml", [tmp_path / "tiny", tmp_path / "seeds"]
    seeds.write_text(SEEDS_CONFIG)
    for cfg, run in zip((tiny_config, seeds), runs, strict=True):
        run_cli("run", "--config", str(cfg), "--out", str(run), "--no-progress", check=True)
    report_process = os.getpid()

    def where(inputs: ReportInputs) -> SectionOutput:
        path = inputs.stage / "where.txt"
        path.write_text("report process" if os.getpid() == report_process else "worker")
        return SectionOutput(files=[path])

    monkeypatch.setattr(build, "SECTIONS", (*build.SECTIONS, where))
    serial = build.write_report(runs, tmp_path / "serial", workers=1)
    parallel = build.write_report(runs, tmp_path / "parallel", workers=2)
    assert (tmp_path / "serial" / "where.txt").read_text() == "report process"
    assert (tmp_path / "parallel" / "where.txt").read_text() == "worker"
    assert [p.name for p in parallel] == [p.name for p in serial]
    assert {f"{name}.png" for name in SEED_FIGURES} | {"convergence.csv", "README.md"} <= {p.name for p in serial}
    for one, other in zip(serial, parallel, strict=True):
        assert one.name == "where.txt" or one.read_bytes() == other.read_bytes(), one.name


def _fails_cleanly(run, to, tmp_path, monkeypatch, section, message) -> None:
    """The report with ``section`` first fails with ``message``, leaves no worker and no stage, writes nothing."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))        # where the report stages its files
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(build, "SECTIONS", (section, *build.SECTIONS))
    with pytest.raises(BenchError, match=message):
        build.write_report([run], to, workers=2)
    assert not to.exists() and not list((tmp_path / "temp").iterdir()) and not multiprocessing.active_children()


def test_a_section_failing_in_a_worker_fails_the_report_and_writes_nothing(tmp_path, tiny_config, monkeypatch):
    run, to = tmp_path / "run", tmp_path / "rep"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)

    def broken(inputs: ReportInputs) -> SectionOutput:
        (inputs.stage / "half.csv").write_text("a\n")
        raise BenchError("broken section")

    _fails_cleanly(run, to, tmp_path, monkeypatch, broken, "broken section")


def test_a_worker_that_dies_fails_the_report_in_one_line_not_a_hang(tmp_path, tiny_config, monkeypatch):
    run, to = tmp_path / "run", tmp_path / "rep"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    report_process = os.getpid()

    def killed(inputs: ReportInputs) -> SectionOutput:
        if os.getpid() != report_process:
            os._exit(9)                      # as the OOM killer would end it
        return SectionOutput()

    _fails_cleanly(run, to, tmp_path, monkeypatch, killed, "a report worker died")


def test_two_runs_differing_only_in_lr_are_two_rows_with_an_lr_column(tmp_path, tiny_config):
    other = tmp_path / "lr.toml"
    other.write_text(tiny_config.read_text().replace("[strings.train]", "[strings.train]\nlr = 0.05"))
    a, b, to = tmp_path / "a", tmp_path / "b", tmp_path / "rep"
    run_cli("run", "--config", str(tiny_config), "--out", str(a), "--no-progress", check=True)
    run_cli("run", "--config", str(other), "--out", str(b), "--no-progress", check=True)
    assert run_cli("report", "--run", str(a), "--run", str(b), "--to", str(to)).returncode == 0
    table = pd.read_csv(to / "convergence.csv")
    strings = table[table["task"] == "strings"]
    assert sorted(strings["lr"]) == [0.01, 0.01, 0.05, 0.05] and (strings["seeds"] == 3).all()
    assert "| lr" in (to / "convergence.md").read_text().replace("|   lr", "| lr")


def test_report_writes_nothing_into_a_folder_it_does_not_own(tmp_path, tiny_config):
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my project\n")
    result = run_cli("report", "--run", str(run), "--to", str(project))
    assert result.returncode == 2 and "README.md" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in project.iterdir()] == ["README.md"] and (project / "README.md").read_text() == "my project\n"


def test_a_report_replaces_its_own_files_and_leaves_the_timings_alone(tmp_path, tiny_config):
    both, strings_only = tmp_path / "both.toml", tmp_path / "strings.toml"
    both.write_text(tiny_config.read_text())
    strings_only.write_text(tiny_config.read_text().split("[strings]")[0].replace("[gridworld]", "[strings]")
                            .replace("starts = [\"uniform\"]\n", "").replace("horizon = 6\n", "")
                            .replace("[gridworld.train]", "[strings.train]"))
    to = tmp_path / "rep"
    for name, cfg in (("a", both), ("b", strings_only)):
        run_cli("run", "--config", str(cfg), "--out", str(tmp_path / name), "--no-progress", check=True)
    assert run_cli("report", "--run", str(tmp_path / "a"), "--to", str(to)).returncode == 0
    manifest = json.loads((to / MANIFEST).read_text())
    (to / "timings.md").write_text("timings\n")            # as if `bench timings` had written it
    (to / MANIFEST).write_text(json.dumps(manifest | {"files": manifest["files"] | {"timings.md": "timings"}}))
    assert run_cli("report", "--run", str(tmp_path / "b"), "--to", str(to)).returncode == 0
    assert not (to / "sample_efficiency_gridworld.png").exists() and (to / "sample_efficiency_strings.png").exists()
    assert (to / "timings.md").read_text() == "timings\n" and "timings.md" in (to / "README.md").read_text()


def test_report_takes_provenance_from_the_store_and_refuses_to_pool_other_code(tmp_path, tiny_config):
    a, b, to = tmp_path / "a", tmp_path / "b", tmp_path / "rep"
    for run in (a, b):
        run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    with sqlite3.connect(a / "results.sqlite") as db:      # as if made elsewhere, by another torch
        db.execute("UPDATE cells SET provenance = json_set(provenance, '$.torch', '9.9.9')")
    assert run_cli("report", "--run", str(a), "--to", str(to)).returncode == 0
    assert "torch 9.9.9" in (to / "README.md").read_text()
    result = run_cli("report", "--run", str(a), "--run", str(b), "--to", str(tmp_path / "pooled"))
    assert result.returncode == 2 and "torch 9.9.9" in result.stderr and not (tmp_path / "pooled").exists()


def test_a_new_section_is_one_function_and_one_entry_in_the_list(tmp_path, tiny_config, monkeypatch):
    run, to = tmp_path / "run", tmp_path / "rep"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    seen: list[ReportInputs] = []

    def cells_per_task(inputs: ReportInputs) -> SectionOutput:
        seen.append(inputs)
        path = inputs.stage / "cells_per_task.csv"
        inputs.cells.groupby("task").size().to_csv(path)
        return SectionOutput(lines=["## Cells per task", "", f"{len(inputs.cells)} cells.", ""], files=[path])

    monkeypatch.setattr(build, "SECTIONS", (*build.SECTIONS, cells_per_task))
    written = build.write_report([run], to, workers=1)        # in this process: ``seen`` is its list
    assert to / "cells_per_task.csv" in written and (to / "cells_per_task.csv").is_file()
    page = (to / "README.md").read_text()
    assert page.index("## What converges") < page.index("## Cells per task") < page.index("## Figures")
    (inputs,) = seen
    assert len(inputs.cells) == len(pd.read_csv(run / "cells.csv")) and [r.path for r in inputs.runs] == [run]
    # every built-in section takes these inputs and answers with the same kind of output
    again = dataclasses.replace(inputs, stage=tmp_path / "again")
    again.stage.mkdir()
    for section in build.SECTIONS:
        out = section(again)
        assert isinstance(out, SectionOutput) and all(p.parent == again.stage and p.is_file() for p in out.files)


def test_a_report_does_not_change_the_stores_it_reads(tmp_path, tiny_config):
    """A reader opens a store read-only: its bytes and mtime stay, and no journal or WAL file appears
    beside it, for a store at rest in rollback-journal mode (as a run leaves it) or in WAL mode."""
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)

    def state():
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()}

    for mode in ("delete", "wal"):
        with sqlite3.connect(run / "results.sqlite") as db:
            assert db.execute(f"PRAGMA journal_mode={mode}").fetchone() == (mode,)
        db.close()
        before = state()
        assert set(before) == {"results.sqlite", "cells.csv"}
        result = run_cli("report", "--run", str(run), "--to", str(tmp_path / f"report-{mode}"))
        assert result.returncode == 0, result.stderr
        assert state() == before


def test_a_run_from_an_older_version_is_one_line_not_a_traceback(tmp_path, tiny_config):
    """A cells.csv without a configuration column this version writes (``fit`` came with #29) is
    refused in one line naming the column and the fix, not a KeyError deep in a section."""
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    csv = run / "cells.csv"
    frame = pd.read_csv(csv, keep_default_na=False)
    frame.drop(columns=["fit"]).to_csv(csv, index=False)
    result = run_cli("report", "--run", str(run), "--to", str(tmp_path / "report"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "no fit column" in result.stderr and "--rerun-stale" in result.stderr
    assert not (tmp_path / "report").exists()
