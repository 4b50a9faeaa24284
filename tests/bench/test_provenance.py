"""Provenance per cell, and resuming only into a store of the same code, kernels and config."""

import dataclasses
import re
import shutil
import sqlite3

from helpers import ROOT, run_cli

from bench import provenance
from bench.sweep import engine
from bench.sweep.cell import CellResult
from bench.sweep.store import Store


def _rows(out):
    with Store(out) as store:
        return store.rows()


def test_every_cell_records_who_made_it(tmp_path, tiny_config):
    run_cli("run", "--config", str(tiny_config), "--out", str(tmp_path / "o"), "--executor", "process",
            "--no-progress", check=True)
    rows = _rows(tmp_path / "o")
    here = provenance.current()
    assert len(rows) == 14 and {r["provenance"] for r in rows} == {here}
    made = rows[0]["provenance"]
    assert made.code == provenance.code_fingerprint() and len(made.code) == 64
    assert made.torch and made.numpy and made.python and made.cpu_capability
    if made.git_commit:                                     # a git checkout (CI and development)
        assert re.fullmatch(r"[0-9a-f]{40}", made.git_commit)
    assert rows[0]["config"]["lr"] == 0.01 and rows[0]["config"]["heldout_pairs"] == 50     # the full config


def test_a_source_edit_then_resume_is_refused_until_rerun_stale(tmp_path, tiny_config):
    out = tmp_path / "out"
    assert run_cli("run", "--config", str(tiny_config), "--out", str(out), "--no-progress").returncode == 0
    table = (out / "cells.csv").read_bytes()
    copy = tmp_path / "src"                     # the same code, then one constant edited
    for package in ("rlhf", "bench"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    gridworld = copy / "rlhf" / "tasks" / "gridworld.py"
    gridworld.write_text(gridworld.read_text().replace("CONVERGED_MAX_REGRET = 0.1", "CONVERGED_MAX_REGRET = 0.0"))

    refused = run_cli("run", "--config", str(tiny_config), "--out", str(out), "--no-progress", root=copy)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "14 stored cells were made by other code" in refused.stderr and "code " in refused.stderr
    assert "--rerun-stale" in refused.stderr and "fresh --out" in refused.stderr
    assert (out / "cells.csv").read_bytes() == table                 # nothing touched

    rerun = run_cli("run", "--config", str(tiny_config), "--out", str(out), "--no-progress", "--rerun-stale",
                    root=copy)
    assert rerun.returncode == 0 and "14 run (14 of them stale)" in rerun.stdout
    assert {r["provenance"].code for r in _rows(out)} != {provenance.code_fingerprint()}
    fresh = run_cli("run", "--config", str(tiny_config), "--out", str(tmp_path / "fresh"), "--no-progress", root=copy)
    assert fresh.returncode == 0 and (out / "cells.csv").read_bytes() == (tmp_path / "fresh" / "cells.csv").read_bytes()


def test_a_second_config_into_the_same_out_is_refused(tmp_path, tiny_config):
    other = tmp_path / "other.toml"
    other.write_text(tiny_config.read_text().replace("budgets = [20, 60]", "budgets = [30]"))
    out = tmp_path / "out"
    run_cli("run", "--config", str(tiny_config), "--out", str(out), "--no-progress", check=True)
    table = (out / "cells.csv").read_bytes()
    refused = run_cli("run", "--config", str(other), "--out", str(out), "--no-progress")
    assert refused.returncode == 2 and f"6 cells that are not in {other}" in refused.stderr
    assert (out / "cells.csv").read_bytes() == table and len(_rows(out)) == 14
    replaced = run_cli("run", "--config", str(other), "--out", str(out), "--no-progress", "--rerun-stale")
    assert replaced.returncode == 0 and "3 run, 8 skipped" in replaced.stdout
    assert len(_rows(out)) == 11 and len((out / "cells.csv").read_text().splitlines()) == 12


def test_a_store_without_provenance_is_refused(tmp_path, tiny_config):
    out = tmp_path / "old"
    out.mkdir()
    with sqlite3.connect(out / "results.sqlite") as db:      # the schema before provenance
        db.execute("CREATE TABLE cells (key TEXT PRIMARY KEY, config TEXT, status TEXT, metrics TEXT, "
                   "history TEXT, error TEXT, wall_s REAL, version TEXT)")
        db.execute("INSERT INTO cells VALUES ('k', '{}', 'done', '{}', '{}', '', 0.1, '0.1.0')")
    refused = run_cli("run", "--config", str(tiny_config), "--out", str(out), "--no-progress")
    assert refused.returncode == 2 and "no provenance" in refused.stderr
    assert run_cli("report", "--run", str(out), "--to", str(tmp_path / "r")).returncode == 2
    rerun = run_cli("run", "--config", str(tiny_config), "--out", str(out), "--no-progress", "--rerun-stale")
    assert rerun.returncode == 0 and len(_rows(out)) == 14


def test_a_result_from_a_worker_with_other_kernels_fails_its_cell():
    here = provenance.current()
    theirs = dataclasses.replace(here, cpu_capability="AVX512").compatibility()
    good = CellResult("k", "done", {"converged": 1.0}, made_by=here.compatibility())
    assert engine._accept(good, here) is good
    bad = engine._accept(dataclasses.replace(good, made_by=theirs), here)
    assert bad.status == "failed" and "cpu_capability" in bad.error and "AVX512" in bad.error and not bad.metrics
