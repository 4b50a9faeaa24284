import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import ROOT, default_sigint, run_cli

import rlhf
from bench.sweep import cell as cell_mod
from bench.sweep import config, engine
from bench.sweep.store import Store

SLOW_CONFIG = """
[gridworld]
sizes = [4, 5, 6, 7]
slips = [0.0, 0.05]
budgets = [4000]
teachers = ["boltzmann:1"]
seeds = 5
[gridworld.train]
heldout_pairs = 100
"""
"""8 groups (configurations) of 5 seeds: a group is the unit of work, so a kill loses at most the one running.
Each group takes about half a second (40 rounds), so the kill lands with groups left to run even on a fast
machine: at 4 rounds the whole sweep once finished between two polls."""


def test_serial_equals_process_and_rerun_computes_nothing(tmp_path, tiny_config):
    serial, process = tmp_path / "serial", tmp_path / "process"
    first = run_cli("run", "--config", str(tiny_config), "--out", str(serial), "--no-progress")
    assert first.returncode == 0 and "14 run, 0 skipped" in first.stdout
    result = run_cli("run", "--config", str(tiny_config), "--out", str(process), "--executor", "process",
                     "--workers", "2", "--no-progress")
    assert result.returncode == 0
    assert (serial / "cells.csv").read_bytes() == (process / "cells.csv").read_bytes()
    again = run_cli("run", "--config", str(tiny_config), "--out", str(serial), "--no-progress")
    assert "0 run, 14 skipped" in again.stdout
    assert (serial / "cells.csv").read_bytes() == (process / "cells.csv").read_bytes()


METHODS_CONFIG = """
[gridworld]
sizes = [4]
slips = [0.1]
budgets = [40, 80]
teachers = ["boltzmann:1"]
queries = ["on-policy", "disagreement", "kcenter"]
ensembles = [1, 3]
seeds = 3
horizon = 6
[gridworld.train]
pairs_per_round = 20
epochs = 10
heldout_pairs = 50
"""


def test_query_rules_and_bootstrap_ensembles_are_the_same_on_every_executor(tmp_path):
    """Pools, selections and each member's resample are keyed by seed, round and member: serial and
    process runs of ensembles and active rules give the same bytes."""
    cfg = tmp_path / "methods.toml"
    cfg.write_text(METHODS_CONFIG)
    cells = config.load(cfg).cells
    assert {(c.train.query, c.train.ensemble) for c in cells} == {
        ("on-policy", 1), ("on-policy", 3), ("disagreement", 3), ("kcenter", 1), ("kcenter", 3)}
    serial, process = tmp_path / "serial", tmp_path / "process"
    assert run_cli("run", "--config", str(cfg), "--out", str(serial), "--no-progress").returncode == 0
    assert run_cli("run", "--config", str(cfg), "--out", str(process), "--executor", "process", "--workers", "2",
                   "--no-progress").returncode == 0
    assert (serial / "cells.csv").read_bytes() == (process / "cells.csv").read_bytes()
    frame = (serial / "cells.csv").read_text()
    assert frame.count("\n") == 1 + len(cells)


def test_a_dead_process_worker_is_one_line_and_a_rerun_finishes_the_rest(tmp_path, tiny_config, monkeypatch):
    """A cell that kills its worker breaks the pool: one clear error, the cells finished
    before it stay stored, and a plain rerun computes only what is missing."""
    from helpers import kill_worker_always

    from bench.errors import BenchError
    from bench.sweep import executors
    serial, process = tmp_path / "serial", tmp_path / "process"
    assert run_cli("run", "--config", str(tiny_config), "--out", str(serial), "--no-progress").returncode == 0
    real = executors.run_process
    monkeypatch.setattr(executors, "run_process",
                        lambda cells, workers: real(cells, workers, task=kill_worker_always))
    cfg = config.load(tiny_config)
    with pytest.raises(BenchError, match="worker process died"):
        engine.run_sweep(cfg, process, executor="process", workers=1, progress=False)
    stored = _stored(process / "results.sqlite")
    assert stored < len(cfg.cells)
    monkeypatch.undo()
    summary = engine.run_sweep(cfg, process, executor="process", workers=2, progress=False)
    assert (summary.run, summary.skipped, summary.failed) == (len(cfg.cells) - stored, stored, 0)
    assert (serial / "cells.csv").read_bytes() == (process / "cells.csv").read_bytes()


def _stored(db) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupt_mid_sweep_then_resume_equals_uninterrupted(tmp_path, signum):
    cfg = tmp_path / "slow.toml"
    cfg.write_text(SLOW_CONFIG)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--config", str(cfg), "--out", str(killed),
                             "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while _stored(killed / "results.sqlite") < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    done_before = _stored(killed / "results.sqlite")
    assert 5 <= done_before < 40, "the sweep must be interrupted mid-way"
    if signum == signal.SIGINT:      # a clean stop: says how to resume, partial table written
        assert proc.returncode == 130 and "resume" in stderr and "Traceback" not in stderr
        assert len((killed / "cells.csv").read_text().splitlines()) == done_before + 1
    resumed = run_cli("run", "--config", str(cfg), "--out", str(killed), "--no-progress")
    assert resumed.returncode == 0
    assert f"{40 - done_before} run, {done_before} skipped" in resumed.stdout     # nothing lost, nothing redone
    run_cli("run", "--config", str(cfg), "--out", str(clean), "--no-progress", check=True)
    assert (killed / "cells.csv").read_bytes() == (clean / "cells.csv").read_bytes()


def test_failing_and_nan_cells_are_recorded_and_the_sweep_goes_on(tmp_path, tiny_config, monkeypatch):
    """A group that raises fails its cells; a NaN metric fails its cell only; the rest run."""
    real = rlhf.train_checkpoints

    def flaky(task, seeds, budgets, config):
        if task.name == "gridworld" and task.size == 4 and task.slip == 0.1:
            raise RuntimeError("planted failure")
        results = real(task, seeds, budgets, config=config)
        if task.name == "strings":
            for r in results[20]:
                if r.seed == 2:
                    r.metrics["epic"] = float("nan")
        return results

    monkeypatch.setattr(cell_mod.rlhf, "train_checkpoints", flaky)
    summary = engine.run_sweep(config.load(tiny_config), tmp_path / "out", progress=False)
    assert (summary.total, summary.run, summary.failed) == (14, 14, 3)
    with Store(tmp_path / "out") as store:
        failed = [r for r in store.rows() if r["status"] == "failed"]
        frame = engine.cells_frame(store, config.load(tiny_config).cells)
    planted = [r for r in failed if "planted failure" in r["error"]]
    nan = [r for r in failed if "NaN in metrics: epic" in r["error"]]
    assert len(planted) == 2 and {r["config"]["size"] for r in planted} == {4}
    assert len(nan) == 1 and (nan[0]["config"]["seed"], nan[0]["config"]["budget"]) == (2, 20)
    assert (frame["status"] == "done").sum() == 11 and len(frame) == 14


def test_retry_failed_runs_only_failed_cells(tmp_path, tiny_config, monkeypatch):
    real = rlhf.train_checkpoints

    def strings_fail(task, seeds, budgets, config):
        if task.name == "strings":
            raise ValueError("x")
        return real(task, seeds, budgets, config=config)

    monkeypatch.setattr(cell_mod.rlhf, "train_checkpoints", strings_fail)
    first = engine.run_sweep(config.load(tiny_config), tmp_path / "o", progress=False)
    monkeypatch.setattr(cell_mod.rlhf, "train_checkpoints", real)
    again = engine.run_sweep(config.load(tiny_config), tmp_path / "o", progress=False)
    retried = engine.run_sweep(config.load(tiny_config), tmp_path / "o", retry_failed=True, progress=False)
    assert first.failed == 6 and again.run == 0 and (retried.run, retried.failed) == (6, 0)


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_bad_workers(tmp_path, tiny_config, workers):
    result = run_cli("run", "--config", str(tiny_config), "--out", str(tmp_path / "o"), "--workers", workers)
    assert result.returncode == 2 and "--workers" in result.stderr and not (tmp_path / "o").exists()
