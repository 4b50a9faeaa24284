"""The Dask executor on a 2-worker LocalCluster (loopback only); skipped without the extra."""

import functools
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

from helpers import ROOT, kill_worker_always, kill_worker_once, run_cli

from bench.sweep import config, dask_executor, engine
from bench.sweep.cell import groups
from bench.sweep.store import Store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


@pytest.fixture(scope="module")
def serial_csv(tmp_path_factory):
    from helpers import TINY_CONFIG
    directory = tmp_path_factory.mktemp("serial")
    (directory / "tiny.toml").write_text(TINY_CONFIG)
    run_cli("run", "--config", str(directory / "tiny.toml"), "--out", str(directory / "run"), "--no-progress",
            check=True)
    return directory / "tiny.toml", (directory / "run" / "cells.csv").read_bytes()


def _store_rows(directory):
    with Store(directory) as store:
        return {r["key"]: r for r in store.rows()}


def test_dask_equals_serial(serial_csv, tmp_path):
    cfg, expected = serial_csv
    result = run_cli("run", "--config", str(cfg), "--out", str(tmp_path / "d"), "--executor", "dask",
                     "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "cells.csv").read_bytes() == expected


def test_a_worker_dying_once_is_retried_elsewhere(serial_csv, tmp_path):
    cfg, expected = serial_csv
    cells = config.load(cfg).cells
    task = functools.partial(kill_worker_once, marker_dir=str(tmp_path))
    results = list(dask_executor.run_dask(groups(cells), 2, None, task=task))
    assert len(results) == len(cells) and {c.key for c, _ in results} == {c.key for c in cells}   # none lost or doubled
    assert all(r.status == "done" for _, r in results)
    assert len(list(tmp_path.glob("*.attempted"))) == 1


def test_a_cell_that_always_kills_its_worker_is_failed_and_the_rest_complete(serial_csv, tmp_path, monkeypatch):
    cfg, _ = serial_csv
    real = dask_executor.run_dask
    monkeypatch.setattr(dask_executor, "run_dask",
                        lambda cells, workers, address: real(cells, workers, address, task=kill_worker_always))
    summary = engine.run_sweep(config.load(cfg), tmp_path / "d", executor="dask", workers=2, progress=False)
    guilty = [g for g in groups(config.load(cfg).cells) if any(c.task == "strings" and c.seed == 0 for c in g.cells)]
    assert len(guilty) == 1 and len(guilty[0].cells) < len(config.load(cfg).cells)
    assert (summary.run, summary.failed) == (len(config.load(cfg).cells), len(guilty[0].cells))
    failed = [r for r in _store_rows(tmp_path / "d").values() if r["status"] == "failed"]
    assert {r["key"] for r in failed} == {c.key for c in guilty[0].cells}
    assert all("KilledWorker" in r["error"] for r in failed)


def test_resume_after_the_client_is_killed(serial_csv, tmp_path):
    cfg, expected = serial_csv
    slow = tmp_path / "slow.toml"
    # many groups of 200 rounds, so that the kill lands with some stored and some not, whatever the
    # order (with 2 rounds a group the whole sweep once finished between two polls)
    slow.write_text(cfg.read_text().replace("seeds = 3", "seeds = 12")
                    .replace("sizes = [3, 4]", "sizes = [3, 4, 5, 6, 7, 8]").replace("budgets = [100]", "budgets = [10000]"))
    out = tmp_path / "d"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--config", str(slow), "--out", str(out),
                             "--executor", "dask", "--workers", "2", "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    stored = 0
    while stored < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(out / "results.sqlite") as conn:
                stored = conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        except sqlite3.OperationalError:
            pass
    os.killpg(proc.pid, signal.SIGKILL)             # the client and its LocalCluster, all at once
    proc.wait()
    total = len(config.load(slow).cells)
    done = len(_store_rows(out))
    assert 3 <= done < total
    resumed = run_cli("run", "--config", str(slow), "--out", str(out), "--executor", "dask", "--workers", "2",
                      "--no-progress")
    assert resumed.returncode == 0 and f"{total - done} run, {done} skipped" in resumed.stdout
    clean = run_cli("run", "--config", str(slow), "--out", str(tmp_path / "s"), "--no-progress", check=True)
    assert clean.returncode == 0
    assert (out / "cells.csv").read_bytes() == (tmp_path / "s" / "cells.csv").read_bytes()


def test_unreachable_scheduler_is_a_clear_error(serial_csv, tmp_path):
    cfg, _ = serial_csv
    result = run_cli("run", "--config", str(cfg), "--out", str(tmp_path / "d"), "--executor", "dask",
                     "--address", "tcp://127.0.0.1:1")
    assert result.returncode == 2 and "--address" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()
