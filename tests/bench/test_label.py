"""``python -m bench label`` (#16): keys do what they say, answers survive a kill, sessions resume."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytest.importorskip("textual")
from helpers import ROOT, run_cli
from textual.events import Key
from textual.widgets import Static

from bench.labelling.app import LabelApp
from bench.labelling.session import Session, SessionSpec
from rlhf.tasks.render import grid_pair, strings_pair


def screen(app, widget):
    return str(app.query_one(f"#{widget}", Static).render())


def test_every_key_does_what_it_says_and_quit_then_resume_continues(tmp_path):
    spec = SessionSpec("strings", pairs=6, vocab="ABC", target="ABC")

    async def first_sitting():
        session = Session(spec, tmp_path)
        app = LabelApp(session, train_every=2)
        async with app.run_test(size=(80, 24)) as pilot:
            assert "answered 0/6" in screen(app, "status")
            await pilot.press("1", "2", "equals_sign", "s")
            assert [a.answer for a in session.store.answers()] == ["1", "2", "=", "s"]
            assert "answered 4/6" in screen(app, "status") and "learned string:" in screen(app, "learned")
            await pilot.press("u")                          # undo removes exactly the last answer
            assert [a.answer for a in session.store.answers()] == ["1", "2", "="]
            assert "answered 3/6" in screen(app, "status")
            shown = screen(app, "pair")
            stale = Key("1", "1")                          # pressed before the next pair was drawn
            await pilot.press("2")
            app.post_message(stale)
            await pilot.pause()
            assert [a.answer for a in session.store.answers()] == ["1", "2", "=", "2"]
            await pilot.press("u")
            await pilot.press("q")
        assert app.return_code == 0 or app.return_code is None
        session.close()
        return shown

    shown = asyncio.run(first_sitting())
    resumed = Session(spec, tmp_path)
    assert resumed.answered == 3
    first, second = resumed.current()
    assert strings_pair(resumed.task, first, second) in shown    # the pair on screen at quit comes back
    assert first is resumed.pairs[3][0]
    resumed.close()


def test_the_gridworld_pair_fits_an_80_by_24_terminal(tmp_path):
    large = Session(SessionSpec("gridworld", pairs=1, size=10), tmp_path / "large")
    lines = grid_pair(large.task, *large.current()).splitlines()
    assert len(lines) == 11 and max(len(line) for line in lines) + 20 + 8 <= 80      # beside a 20-wide heatmap
    large.close()
    session = Session(SessionSpec("gridworld", pairs=3, size=5), tmp_path)
    first, second = session.current()
    drawn = grid_pair(session.task, first, second)
    lines = drawn.splitlines()
    assert len(lines) == 6 and max(len(line) for line in lines) <= 80
    assert drawn.count("S") == 2 and "G" in drawn

    async def sitting():
        app = LabelApp(session, train_every=1)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("1")
            assert "learned reward" in screen(app, "learned") and "answered 1/3" in screen(app, "status")
    asyncio.run(sitting())
    session.close()


KILLED_SESSION = """
import sys, time
from bench.labelling.session import Session, SessionSpec
session = Session(SessionSpec("strings", pairs=200), sys.argv[1])
while not session.done:
    session.answer("12"[session.answered % 2])
    time.sleep(0.02)
"""


def test_answers_survive_sigkill_and_the_session_resumes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SESSION, str(tmp_path)], cwd=ROOT,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    store = tmp_path / "labels.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.exists():
            with sqlite3.connect(store) as db:
                if db.execute("SELECT name FROM sqlite_master WHERE name = 'answers'").fetchone() and \
                        db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= 10:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    session = Session(SessionSpec("strings", pairs=200), tmp_path)
    answered = session.answered
    assert 10 <= answered < 200
    assert [a.answer for a in session.store.answers()] == ["12"[i % 2] for i in range(answered)]
    session.answer("=")                                   # resumes at the next unanswered pair
    assert session.store.answers()[-1].position == answered
    session.close()


def test_bad_label_commands_are_one_line_and_write_nothing(tmp_path):
    out = tmp_path / "labels"
    result = run_cli("label", "--task", "strings", "--target", "XYZ", "--out", str(out))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "outside vocab" in result.stderr
    assert not out.exists()
    Session(SessionSpec("strings", pairs=5), out).close()
    result = run_cli("label", "--task", "strings", "--pairs", "6", "--out", str(out))
    assert result.returncode == 2 and "holds labels for pairs = 5, not 6" in result.stderr
    result = run_cli("label", "--task", "strings", "--pairs", "5", "--out", str(out), "--fit")
    assert result.returncode == 2 and "fit_teacher needs at least 10 answered pairs, got 0" in result.stderr
    result = run_cli("label", "--task", "strings", "--pairs", "0", "--out", str(tmp_path / "none"))
    assert result.returncode == 2 and "--pairs must be >= 1" in result.stderr
    result = run_cli("label", "--task", "gridworld", "--size", "11", "--out", str(tmp_path / "none"))
    assert result.returncode == 2 and "--size must be in [2, 10] to draw two grids in an 80x24 terminal" in result.stderr
    result = run_cli("label", "--task", "strings", "--seed", "-1", "--out", str(tmp_path / "none"))
    assert result.returncode == 2 and "--seed must be >= 0, got -1" in result.stderr
    result = run_cli("label", "--task", "strings", "--fit", "--out", str(tmp_path / "typo"))
    assert result.returncode == 2 and "has no labels store" in result.stderr
    assert not (tmp_path / "none").exists() and not (tmp_path / "typo").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "labels.sqlite").write_text("not a database")
    result = run_cli("label", "--task", "strings", "--out", str(broken))
    assert result.returncode == 2 and "is not a labels store" in result.stderr
