"""Tasks registered in one place (#23): a user's task is swept, reported, gated and labelled like a
built-in, and bench spells no built-in task's name."""

import ast
import asyncio
import json
import os
import sqlite3
from pathlib import Path

import chain_task
import pytest
from helpers import ROOT, run_cli

import rlhf
from bench.sweep import config
from bench.sweep.cell import groups, run_group
from bench.sweep.modules import recorded_imports
from bench.sweep.store import Store

BUILT_IN = ("gridworld", "strings", "random-gridworld", "gymnasium", "seals")
CHAIN_CONFIG = f"""
imports = ["chain_task"]
name = "chain"
[{chain_task.NAME}]
sizes = [4, 6]
budgets = [100, 300]
teachers = ["boltzmann:1"]
seeds = 3
[{chain_task.NAME}.train]
heldout_pairs = 50
"""
WITH_CHAIN = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "_support")])}
"""What makes the user's module importable: the directory it is in, on PYTHONPATH."""


def test_the_built_in_tasks_are_registered_with_their_axes():
    assert rlhf.registered_tasks()[:5] == BUILT_IN
    assert rlhf.registered_tasks(render=True)[:2] == ("gridworld", "strings")
    assert rlhf.registered_tasks(tag="environment") == ("gymnasium", "seals")
    grid = rlhf.task_spec("gridworld")
    assert grid.keys == ("sizes", "slips", "starts", "horizon") and [a.key for a in grid.axes if a.required] == [
        "sizes", "slips"]
    assert grid.label({"size": 7}) == "N=7" and rlhf.task_spec("strings").label({"size": 3}) == "L=3"
    assert grid.defaults == rlhf.GridWorld.defaults
    preset = rlhf.preset_task("seed-gridworld")
    fields = grid.instance_of(preset)
    assert fields["start"] == "corner" and fields["size"] == 5
    again = grid.make(fields)
    assert (again.mdp.start == preset.mdp.start).all() and (again.true_reward == preset.true_reward).all()
    with pytest.raises(ValueError, match="not a sweep's"):
        grid.instance_of(rlhf.GridWorld(size=5, goal=[(0, 4)]))
    with pytest.raises(ValueError, match="a sweep's string task"):
        rlhf.task_spec("strings").instance_of(rlhf.StringTask("ABC", "CAB"))


def test_a_name_is_registered_once_and_a_bad_registration_names_its_field():
    with pytest.raises(ValueError, match="'gridworld' is already registered"):
        rlhf.register_task("gridworld", factory=chain_task._make, axes=(), defaults=chain_task.chain().defaults)
    with pytest.raises(ValueError, match=f"'{chain_task.NAME}' is already registered \\(by chain_task\\)"):
        rlhf.register_task(chain_task.NAME, factory=chain_task._make, axes=(), defaults=chain_task.chain().defaults)
    assert rlhf.registered_tasks().count(chain_task.NAME) == 1
    with pytest.raises(ValueError, match=r"field must be one of size, .*, got 'length'"):
        rlhf.Axis("lengths", "length")
    with pytest.raises(ValueError, match="kind of field 'slip' must be float, got 'int'"):
        rlhf.Axis("slips", "slip", int)
    with pytest.raises(ValueError, match="other than budgets"):
        rlhf.Axis("seeds", "world")
    with pytest.raises(ValueError, match="not one of name, check, imports, got 'check'"):
        rlhf.register_task("check", factory=chain_task._make, axes=(), defaults=chain_task.chain().defaults)
    with pytest.raises(ValueError, match="unknown task 'atari' \\(registered: gridworld, strings"):
        rlhf.task_spec("atari")
    assert "check" not in rlhf.registered_tasks()


def test_a_configs_imports_make_a_users_task_sweepable(tmp_path):
    path = tmp_path / "chain.toml"
    path.write_text(CHAIN_CONFIG)
    sweep = config.load(path)
    assert sweep.imports == ("chain_task",) and len(sweep.cells) == 2 * 2 * 3
    cell = sweep.cells[0]
    assert (cell.task, cell.size, cell.slip, cell.start, cell.horizon) == (chain_task.NAME, 4, 0.0, "", 0)
    assert cell.train == chain_task.chain().defaults.replace(budget=100, heldout_pairs=50)
    assert cell.make_task().mdp.num_states == 4 and config.instance_label(cell.fields()) == "S=4"
    assert all(g.imports == ("chain_task",) for g in groups(sweep.cells, imports=sweep.imports))
    bad = tmp_path / "bad.toml"
    bad.write_text(CHAIN_CONFIG.replace("sizes = [4, 6]", "sizes = [1]"))
    with pytest.raises(config.ConfigError, match=f"{chain_task.NAME}.sizes = 1: must be an integer >= 2"):
        config.load(bad)


def test_a_worker_imports_the_sweeps_modules_before_it_rebuilds_a_task(tmp_path, monkeypatch):
    """The group carries the imports (a spawned or Dask worker has only what the group says)."""
    path = tmp_path / "chain.toml"
    path.write_text(CHAIN_CONFIG)
    sweep = config.load(path)
    group = groups(sweep.cells[:1])[0]          # no imports: a worker could not know the task ...
    imported = []
    monkeypatch.setattr("bench.sweep.cell.import_modules", imported.extend)
    run_group(group)
    assert imported == []
    run_group(groups(sweep.cells[:1], imports=sweep.imports)[0])
    assert imported == ["chain_task"]
    with Store(tmp_path / "run") as store:        # ... and the store records them for the readers
        store.set_meta(imports=json.dumps(list(sweep.imports)))
    assert recorded_imports(tmp_path / "run", "results.sqlite") == ["chain_task"]
    assert recorded_imports(tmp_path / "nothing", "results.sqlite") == []


def test_a_users_task_goes_through_run_report_baseline_and_check(tmp_path):
    """The README's chain, registered in tests/_support/chain_task.py, through the command line with
    the process executor, and no change to bench."""
    cfg = tmp_path / "chain.toml"
    cfg.write_text(CHAIN_CONFIG)
    run, to, baseline = tmp_path / "run", tmp_path / "report", tmp_path / "baseline.json"
    result = run_cli("run", "--config", str(cfg), "--out", str(run), "--executor", "process", "--workers", "2",
                     "--no-progress", env=WITH_CHAIN)
    assert result.returncode == 0, result.stderr
    assert "12 total, 12 run" in result.stdout and "0 failed" in result.stdout
    with sqlite3.connect(run / "results.sqlite") as db:
        rows = db.execute("SELECT config, status FROM cells").fetchall()
    assert {json.loads(c)["task"] for c, _ in rows} == {chain_task.NAME} and {s for _, s in rows} == {"done"}
    result = run_cli("report", "--run", str(run), "--to", str(to), env=WITH_CHAIN)
    assert result.returncode == 0, result.stderr
    text = (to / "README.md").read_text() + "".join(p.read_text() for p in to.glob("*.md"))
    assert f"{chain_task.NAME} S = 4" in text and f"{chain_task.NAME} S = 6" in text
    assert (to / f"sample_efficiency_{chain_task.NAME}.png").is_file()
    result = run_cli("baseline", "--run", str(run), "--config", str(cfg), "--out", str(baseline), env=WITH_CHAIN)
    assert result.returncode == 0, result.stderr
    result = run_cli("check", "--run", str(run), "--baseline", str(baseline), env=WITH_CHAIN)
    assert result.returncode == 0 and "convergence gate: ok, 4 configurations" in result.stdout, result.stderr
    body = json.loads(baseline.read_text())
    for entry in body["configurations"]:        # a planted regression: the gate names the instance by its label
        entry["epic"] -= 1.0
    baseline.write_text(json.dumps(body))
    result = run_cli("check", "--run", str(run), "--baseline", str(baseline), env=WITH_CHAIN)
    assert result.returncode == 1 and f"{chain_task.NAME} S=4 slip=0 budget=100" in result.stdout
    # a reader that cannot import the run's module says so in one line (the store recorded the imports)
    result = run_cli("check", "--run", str(run), "--baseline", str(baseline))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "imports chain_task: no such module" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_import_is_a_one_line_error_and_writes_nothing(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(CHAIN_CONFIG.replace('"chain_task"', '"chain_tsak"'))
    out = tmp_path / "out"
    result = run_cli("run", "--config", str(path), "--out", str(out), env=WITH_CHAIN)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{path}: imports = 'chain_tsak': no such module" in result.stderr and not out.exists()
    path.write_text('imports = "chain_task"\n' + CHAIN_CONFIG.split("\n", 2)[2])
    with pytest.raises(config.ConfigError, match="imports = 'chain_task': must be a list of module names"):
        config.load(path)
    path.write_text(CHAIN_CONFIG.replace('imports = ["chain_task"]', ""))      # the table, without the import
    result = run_cli("run", "--config", str(path), "--out", str(out), env=WITH_CHAIN)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and not out.exists()
    assert f"{chain_task.NAME} = " in result.stderr
    assert "unknown task or key (tasks: gridworld, strings, random-gridworld, gymnasium, seals)" in result.stderr


def test_a_users_task_with_a_render_hook_can_be_labelled(tmp_path):
    pytest.importorskip("textual")
    from bench.labelling.app import LabelApp
    from bench.labelling.session import Session, SessionSpec
    session = Session(SessionSpec(chain_task.NAME, pairs=12, size=5), tmp_path)
    assert session.store.config == {"task": chain_task.NAME, "pairs": 12, "seed": 0, "size": 5}

    async def sitting():
        app = LabelApp(session, train_every=1)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press(*"12" * 6)
            assert "learned: go" in str(app.query_one("#learned").render())
    asyncio.run(sitting())
    assert session.answered == 12
    session.close()
    result = run_cli("label", "--import", "chain_task", "--task", chain_task.NAME, "--size", "5", "--pairs", "12",
                     "--out", str(tmp_path), "--fit", env=WITH_CHAIN)
    assert result.returncode == 0, result.stderr
    assert "partial:" in result.stdout and "regret:" in result.stdout
    result = run_cli("label", "--task", chain_task.NAME, "--out", str(tmp_path / "none"))
    assert result.returncode == 2 and "invalid choice" in result.stderr       # not imported: not offered


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_bench_spells_no_built_in_task_name_outside_the_registry():
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "bench").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("bench/hotpaths/"):      # benchmarks time a named task on purpose
            continue
        hits = [f"{line}: {value!r}" for line, value in _string_constants(path) if value in BUILT_IN]
        if hits:
            found[relative] = hits
    assert not found, "\n".join(f"{p}: {h}" for p, h in found.items())
