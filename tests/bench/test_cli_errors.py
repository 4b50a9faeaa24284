"""Bad input through the CLI: one line on stderr, exit 2, no traceback, nothing written."""

import os

import pytest
from helpers import BAD_CONFIGS as BAD
from helpers import ROOT, run_cli


@pytest.mark.parametrize("name,text,needle", BAD[:4] + BAD[-1:], ids=[b[0] for b in BAD[:4] + BAD[-1:]])
def test_bad_config_exits_2_with_one_line(tmp_path, name, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    result = run_cli("run", "--config", str(path), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_config_and_missing_run(tmp_path):
    result = run_cli("run", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no such file" in result.stderr and not (tmp_path / "o").exists()
    result = run_cli("report", "--run", str(tmp_path / "empty"), "--to", str(tmp_path / "rep"))
    assert result.returncode == 2 and "results.sqlite" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["run", "report"])
def test_workers_below_one_is_one_line(tmp_path, tiny_config, command):
    place = ["--config", str(tiny_config), "--out"] if command == "run" else ["--run", str(tmp_path / "r"), "--to"]
    result = run_cli(command, *place, str(tmp_path / "o"), "--workers", "0")
    assert result.returncode == 2 and result.stderr.strip() == "error: --workers must be >= 1, got 0"
    assert not (tmp_path / "o").exists()


def test_out_path_that_is_a_file(tmp_path, tiny_config):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    result = run_cli("run", "--config", str(tiny_config), "--out", str(blocker))
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"--out {blocker}: is a file, not a directory" in result.stderr and "Errno" not in result.stderr   # in words
    assert blocker.read_text() == "not a directory"
    result = run_cli("run", "--config", str(tiny_config), "--out", str(blocker / "run"))     # a file on the way
    assert result.returncode == 2 and "Not a directory" in result.stderr and "Errno" not in result.stderr


ONE_CELL = "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"


def _listing(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _one_line(result, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


def test_run_writes_only_into_a_new_or_empty_directory_or_one_of_its_runs(tmp_path):
    """As report --to: files rlhf-bench did not write are never touched; a run's own directory resumes."""
    cfg = tmp_path / "one.toml"
    cfg.write_text(ONE_CELL)
    theirs = tmp_path / "theirs"          # someone's cells.csv, no store beside it
    theirs.mkdir()
    (theirs / "cells.csv").write_text("my own table\n")
    result = run_cli("run", "--config", str(cfg), "--out", str(theirs))
    _one_line(result, f"--out {theirs}", "cells.csv", "did not write")
    assert _listing(theirs) == {"cells.csv": b"my own table\n"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("run", "--config", str(cfg), "--out", str(empty), "--no-progress").returncode == 0
    made = _listing(empty)
    assert set(made) == {"results.sqlite", "cells.csv"}
    (empty / "notes.txt").write_text("mine\n")          # a run's directory with a file of the user's
    result = run_cli("run", "--config", str(cfg), "--out", str(empty))
    _one_line(result, "notes.txt", "did not write")
    assert _listing(empty) == made | {"notes.txt": b"mine\n"}
    (empty / "notes.txt").unlink()
    again = run_cli("run", "--config", str(cfg), "--out", str(empty), "--no-progress")     # its own: resumes
    assert again.returncode == 0 and "0 run, 1 skipped" in again.stdout


def test_a_results_file_that_is_not_a_store_is_one_line_and_nothing_is_created(tmp_path):
    cfg = tmp_path / "one.toml"
    cfg.write_text(ONE_CELL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_text("not a database\n" * 20)
    result = run_cli("run", "--config", str(cfg), "--out", str(out))
    _one_line(result, str(out / "results.sqlite"), "not an SQLite database", "move it away")
    assert _listing(out) == {"results.sqlite": b"not a database\n" * 20}
    result = run_cli("report", "--run", str(out), "--to", str(tmp_path / "rep"))
    _one_line(result, str(out / "results.sqlite"), "not an SQLite database")
    assert not (tmp_path / "rep").exists() and _listing(out) == {"results.sqlite": b"not a database\n" * 20}
    import sqlite3
    other = tmp_path / "other"            # a database, but another program's
    other.mkdir()
    with sqlite3.connect(other / "results.sqlite") as db:
        db.execute("CREATE TABLE photos (name TEXT)")
    before = _listing(other)
    result = run_cli("run", "--config", str(cfg), "--out", str(other))
    _one_line(result, str(other / "results.sqlite"), "photos", "not a results store")
    assert _listing(other) == before


def test_label_without_the_human_extra_is_one_line_and_no_store(tmp_path):
    """textual unimportable (a broken package first on the path): the fix, exit 2, no labels.sqlite."""
    fake = tmp_path / "site" / "textual"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'textual'\", name='textual')\n")
    out = tmp_path / "labels"
    result = run_cli("label", "--task", "strings", "--out", str(out),
                     env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])})
    _one_line(result, "human extra", 'pip install -c constraints.txt -e ".[human]"')
    assert not out.exists()
