"""Ctrl-C of a sweep, on every executor: the run ends within seconds, with one line and exit 130,
no worker tracebacks, and the same command resumes (finished cells kept).

A terminal sends SIGINT to the whole process group, workers included (``os.killpg`` here). The
sweep runs in a subprocess whose executor runs :func:`helpers.sleepy_group`: groups with a
slipping cell sleep a minute before they run, so a run that waits for its groups after the
interrupt (the pool computing the groups already queued for it, as it once did) misses the
deadline by far, while the others finish at once and are stored.
"""

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import ROOT, default_sigint, run_cli

CONFIG = """
[gridworld]
sizes = [3, 4]
slips = [0.0, 0.05, 0.1, 0.15]
budgets = [20]
teachers = ["boltzmann:1"]
seeds = 2
horizon = 6
[gridworld.train]
pairs_per_round = 10
epochs = 5
heldout_pairs = 20
"""
"""8 groups of 2 cells; the 6 with slip > 0 sleep (in a sweep under WRAPPER)."""
TOTAL = 16
DEADLINE_S = 20
"""How long the run may take to end after SIGINT (it takes a second or two; a run that waits for
the queued groups takes a minute)."""

WRAPPER = """
import functools, sys
from helpers import sleepy_group
from bench.sweep import dask_executor, executors
task = functools.partial(sleepy_group, marker_dir=sys.argv[1])
real_process, real_dask = executors.run_process, dask_executor.run_dask
executors.run_group = task
executors.run_process = lambda groups, workers: real_process(groups, workers, task=task)
dask_executor.run_dask = lambda groups, workers, address: real_dask(groups, workers, address, task=task)
from bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _stored(db) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _interrupt(args: list[str], markers, started: int, whole_group: bool = True, stored_at_least: int = 0) -> str:
    """Start ``python -m bench ARGS`` (sleepy groups), wait until ``started`` sleepy groups have
    started (and ``stored_at_least`` cells are stored), send SIGINT (to the process group, as a
    terminal does, or to the coordinator alone), and check how the run ends; returns stderr."""
    before = len(list(markers.iterdir()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "_support")]))
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(markers), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    out = args[args.index("--out") + 1]
    try:
        deadline = time.monotonic() + 120
        while (len(list(markers.iterdir())) < before + started or _stored(f"{out}/results.sqlite") < stored_at_least) \
                and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, f"the sweep ended before the interrupt: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "the sleepy groups never started"
        if whole_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        try:
            _, stderr = proc.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not end within {DEADLINE_S} s of SIGINT")
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert "resume" in stderr
        assert time.monotonic() - sent < DEADLINE_S
        return stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _resume(cfg, out, stored: int) -> None:
    """The same command, without sleepy groups, finishes the rest and keeps what was stored."""
    resumed = run_cli("run", "--config", str(cfg), "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{TOTAL - stored} run, {stored} skipped" in resumed.stdout
    assert len((out / "cells.csv").read_text().splitlines()) == 1 + TOTAL


@pytest.mark.slow
def test_ctrl_c_of_a_process_pool_ends_at_once_every_time_and_resumes(tmp_path):
    """The pool's workers are busy with sleepy groups and more are queued for them: every
    interrupt ends the run within seconds, whether the terminal signals the whole group or only
    the coordinator is signalled."""
    cfg, out, markers = tmp_path / "sweep.toml", tmp_path / "out", tmp_path / "markers"
    cfg.write_text(CONFIG)
    markers.mkdir()
    args = ["run", "--config", str(cfg), "--out", str(out), "--executor", "process", "--workers", "2",
            "--no-progress"]
    _interrupt(args, markers, started=2, stored_at_least=2)    # the first group (fast) is stored
    stored = _stored(out / "results.sqlite")
    assert stored >= 2
    for whole_group in (True, True, False):      # the hang was intermittent: again, and again
        _interrupt(args, markers, started=2, whole_group=whole_group)
        assert _stored(out / "results.sqlite") >= stored       # nothing finished is lost
        stored = _stored(out / "results.sqlite")
    _resume(cfg, out, stored)


EXECUTORS = ["serial", pytest.param("dask", marks=pytest.mark.skipif(not importlib.util.find_spec("distributed"),
                                                                       reason="needs the dask extra"))]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_ctrl_c_ends_a_sweep_at_once_and_resumes(tmp_path, executor):
    cfg, out, markers = tmp_path / "sweep.toml", tmp_path / "out", tmp_path / "markers"
    cfg.write_text(CONFIG)
    markers.mkdir()
    workers = ["--workers", "2"] if executor == "dask" else []
    _interrupt(["run", "--config", str(cfg), "--out", str(out), "--executor", executor, *workers, "--no-progress"],
               markers, started=2 if executor == "dask" else 1, stored_at_least=2)
    _resume(cfg, out, _stored(out / "results.sqlite"))


REPORT_WRAPPER = """
import pathlib, sys, time
from bench.report import build
from bench.report.section import SectionOutput
def slow(inputs):             # a section that takes a minute, and says when it has started
    pathlib.Path(sys.argv[1], str(time.monotonic())).touch()
    time.sleep(60)
    return SectionOutput()
build.SECTIONS = (slow, *build.SECTIONS)
from bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_ctrl_c_ends_a_report_at_once_with_nothing_written_and_no_worker_left(tmp_path, tiny_config):
    """A report whose sections run in two forked workers, one of them a minute long: a Ctrl-C to the
    process group (as a terminal sends it) ends it within seconds, one line, exit 130, no output, no stage."""
    run, to, markers, temp = tmp_path / "run", tmp_path / "rep", tmp_path / "markers", tmp_path / "temp"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    markers.mkdir()
    temp.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "_support")]), TMPDIR=str(temp))
    proc = subprocess.Popen([sys.executable, "-c", REPORT_WRAPPER, str(markers), "report", "--run", str(run), "--to",
                             str(to), "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        while not list(markers.iterdir()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and list(markers.iterdir()), "the slow section never started"
        os.killpg(proc.pid, signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the report did not end within {DEADLINE_S} s of SIGINT")
        assert proc.returncode == 130 and stderr.strip() == "interrupted", stderr
        assert not to.exists() and not list(temp.iterdir())
        time.sleep(0.5)
        group = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(proc.pid)], capture_output=True, text=True)
        left = [line for line in group.stdout.splitlines() if line.split()[1][0] != "Z"]    # zombies: reaped by init
        assert not left, f"processes of the report still running: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
