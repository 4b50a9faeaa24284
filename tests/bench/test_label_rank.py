"""``python -m bench label --rank K`` (#26): a person ranks K segments by keys; every ranking is
committed as it is given and survives ``kill -9``; sessions resume; the screen fits 80 x 24."""

import asyncio
import fcntl
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time

import pytest
import torch

import rlhf

pytest.importorskip("textual")
from helpers import ROOT, run_cli
from textual.events import Key
from textual.widgets import Static

from bench.labelling.rank_app import RankApp
from bench.labelling.ranking import Entry, RankingSession, RankSpec, session_rankings
from bench.labelling.session import Session, SessionSpec
from rlhf.tasks.render import RANKING_WIDTH, grid_ranking

STRINGS = dict(pairs=5, vocab="ABC", target="ABC", seed=0, rank=4)
"""Five queries of four strings, none with two strings alike."""


def screen(app, widget):
    return str(app.query_one(f"#{widget}", Static).render())


def texts(session):
    return [r.text() for r in session.store.rankings()]


def test_the_typed_ranking_follows_the_keys():
    entry = Entry(4)
    assert not entry.press("=") and entry.text() == "_"              # nothing to tie to yet
    for key in "3=1":
        assert entry.press(key)
    assert entry.text() == "3 = 1 > _" and not entry.press("3") and not entry.press("5") and not entry.press("x")
    assert entry.press("=") and not entry.press("=") and entry.text() == "3 = 1 = _"
    assert entry.undo() and entry.text() == "3 = 1 > _"               # the pending = goes first
    assert entry.undo() and entry.text() == "3 = _"                    # then the item: its = is pending again
    assert entry.undo() and entry.undo() and entry.empty and not entry.undo()
    for key in "4=2=1":
        entry.press(key)
    assert not entry.complete and entry.press("3") and entry.complete and not entry.press("=")
    assert entry.order == [3, 1, 0, 2] and entry.tied == [True, True, False]


def test_keys_rank_tie_undo_quit_and_resume(tmp_path):
    spec = RankSpec("strings", **STRINGS)

    async def first_sitting():
        session = RankingSession(spec, tmp_path)
        assert not any(session.identical)
        app = RankApp(session, train_every=1)
        async with app.run_test(size=(80, 24)) as pilot:
            assert "ranked 0/5" in screen(app, "status") and "agreement —" in screen(app, "status")
            assert all(f"[{k}]" in screen(app, "items") for k in range(1, 5))
            await pilot.press("3", "equals_sign", "1", "u")            # u: the 1 goes, the = is pending again
            assert "your ranking: 3 = _" in screen(app, "items") and texts(session) == []
            await pilot.press("u", "equals_sign", "1", "4")
            assert "your ranking: 3 = 1 > 4 > _" in screen(app, "items") and len(session.store) == 0
            shown = session.current()
            await pilot.press("2")                                     # the K-th item commits the ranking
            assert texts(session) == ["3=1>4>2"] and session.current() is session.queries[1]
            stored = session.store.rankings()[0]
            assert torch.equal(stored.segments.actions, shown.actions)
            assert stored.order.tolist() == [2, 0, 3, 1] and stored.tied.tolist() == [True, False, False]
            assert "ranked 1/5" in screen(app, "status") and "of 5 pairs" in screen(app, "status")   # 6 less the tie
            assert "learned string:" in screen(app, "learned")
            stale = Key("1", "1")                                      # typed before the next query was drawn
            stale.time = app.shown_at - 1.0
            app.post_message(stale)
            await pilot.pause()
            assert "your ranking: _" in screen(app, "items")
            await pilot.press("2", "1")                                # half a ranking, then quit
            assert "your ranking: 2 > 1 > _" in screen(app, "items")
            await pilot.press("q")
        session.close()

    asyncio.run(first_sitting())

    async def second_sitting():
        session = RankingSession(spec, tmp_path)
        assert session.answered == 1 and session.current() is session.queries[1]     # the half ranking is not kept
        app = RankApp(session)
        async with app.run_test(size=(80, 24)) as pilot:
            assert "ranked 1/5" in screen(app, "status") and "of 5 pairs" in screen(app, "status")
            await pilot.press("u")               # nothing typed: the last ranking comes back, less its last key
            assert texts(session) == [] and "your ranking: 3 = 1 > 4 > _" in screen(app, "items")
            assert session.current() is session.queries[0]
            await pilot.press("u", "2", "4")
            assert texts(session) == ["3=1>2>4"]
            for keys in (("1", "2", "3", "4"), ("4", "equals_sign", "3", "equals_sign", "2", "equals_sign", "1")):
                await pilot.press(*keys)
            assert texts(session) == ["3=1>2>4", "1>2>3>4", "4=3=2=1"] and "ranked 3/5" in screen(app, "status")
            await pilot.press("q")
        session.close()

    asyncio.run(second_sitting())
    with rlhf.LabelStore(tmp_path) as store:
        segments, order, tied = store.ranking_tensors()
        assert segments.states.shape == (3, 4, 3) and order.tolist()[1] == [0, 1, 2, 3]
        assert tied.tolist()[2] == [True, True, True] and store.config["rank"] == 4


def test_four_grids_and_six_strings_fit_an_80_by_24_terminal(tmp_path):
    for size in (5, 10):
        session = RankingSession(RankSpec("gridworld", pairs=2, size=size, rank=4), tmp_path / f"grid{size}")
        lines = grid_ranking(session.task, session.current()).splitlines()
        assert len(lines) == size + 1 and max(map(len, lines)) <= RANKING_WIDTH, (size, lines)
        check_nothing_is_cut(session, expect="learned reward")
        session.close()
    session = RankingSession(RankSpec("strings", pairs=2, vocab="ABCD", target="DCBA", rank=6), tmp_path / "strings")
    check_nothing_is_cut(session, expect="learned string")
    session.close()


def check_nothing_is_cut(session, expect):
    """Every line of the K segments, the typed ranking and the status line shows whole in 80 x 24,
    after a ranking (the learned view beside them)."""
    async def sitting():
        app = RankApp(session, train_every=1)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press(*[str(k) for k in range(1, session.K + 1)])
            assert expect in screen(app, "learned")
            status = app.query_one("#status")
            for name in ("items", "learned", "status"):
                widget = app.query_one(f"#{name}")
                lines = screen(app, name).splitlines()
                region = widget.content_region
                assert region.right <= 80 and widget.region.bottom <= 24, (name, region)
                assert max(map(len, lines)) <= region.width and len(lines) <= region.height, (name, region, lines)
                if name != "status":
                    assert widget.region.bottom <= status.region.y, (name, widget.region, status.region)
            items = screen(app, "items")
            assert all(f"[{k}]" in items for k in range(1, session.K + 1)) and "your ranking: _" in items
    asyncio.run(sitting())


def test_rankings_of_two_are_the_pair_sessions_pairs(tmp_path):
    """At K = 2 a ranking session asks the pair session's pairs; its store replays to rlhf.train."""
    pairs = Session(SessionSpec("gridworld", pairs=6, size=4), tmp_path / "pairs")
    ranks = RankingSession(RankSpec("gridworld", pairs=6, size=4, rank=2), tmp_path / "ranks")
    for (first, second), query in zip(pairs.pairs, ranks.queries, strict=True):
        assert torch.equal(query.states, torch.stack([first.states, second.states]))
    for i in range(6):
        ranks.commit([i % 2, 1 - i % 2], [i == 3])
    result = rlhf.train(ranks.task, teacher=rlhf.RecordedTeacher(tmp_path / "ranks"), config=ranks.config)
    assert torch.isfinite(result.reward).all()
    pairs.close()
    ranks.close()


def test_stored_rankings_replay_as_the_teacher_that_gave_them(tmp_path):
    """Rankings a simulated teacher gives inside rlhf.train, stored, replay bit for bit through
    RecordedTeacher (the store keeps order, ties and the K segments exactly)."""
    spec = RankSpec("strings", pairs=12, vocab="ABCD", target="DABC", rank=3)
    task = spec.make_task()
    config = spec.train_config(task).replace(pairs_per_round=4)
    given = []
    simulated = rlhf.train(task, teacher="boltzmann:1+equal:0.2", config=config, seed=3,
                           on_round=lambda r: given.append((rlhf.Trajectories(r.segments.states.clone(),
                                                                              r.segments.actions.clone()),
                                                            r.labels.ranking.clone(), r.labels.tied.clone())))
    assert [q.states.tolist() for q in session_rankings(task, config, 3)] == \
        [s.tolist() for segments, _, _ in given for s in segments.states]
    with rlhf.LabelStore(tmp_path, spec.fields()) as store:
        for segments, order, tied in given:
            for i in range(order.shape[0]):
                store.append_ranking(rlhf.Trajectories(segments.states[i], segments.actions[i]), order[i], tied[i])
        assert any(r.tied.any() for r in store.rankings())
    recorded = rlhf.train(task, teacher=rlhf.RecordedTeacher(tmp_path), config=config, seed=3)
    assert torch.equal(recorded.reward, simulated.reward) and recorded.metrics == simulated.metrics
    with pytest.raises(ValueError, match="ranking 0 is of another query"):
        rlhf.train(task, teacher=rlhf.RecordedTeacher(tmp_path), config=config, seed=4)


def test_a_store_holds_pairs_or_rankings_and_pairs_hash_as_before(tmp_path):
    task = rlhf.StringTask("ABC", "ABC")
    pairs = rlhf.session_pairs(task, task.defaults.replace(budget=2), seed=0)
    with rlhf.LabelStore(tmp_path / "p", {"task": "strings"}) as store:
        store.append(*pairs[0], "1")
        before = store.digest()
        assert store.rankings() == [] and len(store) == 1
        with pytest.raises(ValueError, match="holds pairs"):
            other = rlhf.Trajectories(torch.stack([pairs[1][0].states, pairs[1][1].states]),
                                      torch.stack([pairs[1][0].actions, pairs[1][1].actions]))
            store.append_ranking(other, [0, 1], [False])
        assert store.digest() == before and len(store) == 1
    import hashlib
    import json
    rows = [[0, rlhf.preferences.recorded.pair_key(*pairs[0]), "1"]]
    assert before == hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]     # the pair digest, unchanged
    segments = rlhf.Trajectories(torch.stack([pairs[0][0].states, pairs[0][1].states]),
                                 torch.stack([pairs[0][0].actions, pairs[0][1].actions]))
    with rlhf.LabelStore(tmp_path / "r", {"task": "strings", "rank": 2}) as store:
        store.append_ranking(segments, [1, 0], [False])
        with pytest.raises(ValueError, match="holds rankings"):
            store.append(*pairs[1], "1")
        with pytest.raises(ValueError, match="order must be a permutation"):
            store.append_ranking(segments, [1, 1], [False])
        with pytest.raises(ValueError, match="tied must hold 1 flags"):
            store.append_ranking(segments, [1, 0], [False, True])
        assert [r.text() for r in store.rankings()] == ["2>1"] and store.undo_ranking().text() == "2>1"
        assert len(store) == 0


KILLED_SESSION = """
import sys, time
from bench.labelling.ranking import RankingSession, RankSpec
session = RankingSession(RankSpec("strings", pairs=200, rank=3), sys.argv[1])
while not session.done:
    n = session.answered
    session.commit([n % 3, (n + 1) % 3, (n + 2) % 3], [n % 2 == 0, False])
    time.sleep(0.02)
"""


def expected(session, position):
    """What the killed session committed at ``position``: the pattern, or all tied for identical queries."""
    if session.identical[position]:
        return [0, 1, 2], [True, True]
    return [position % 3, (position + 1) % 3, (position + 2) % 3], [position % 2 == 0, False]


def test_rankings_survive_sigkill_and_the_session_resumes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SESSION, str(tmp_path)], cwd=ROOT,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    wait_for_rankings(tmp_path, 10)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(tmp_path / "labels.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    session = RankingSession(RankSpec("strings", pairs=200, rank=3), tmp_path)
    answered = session.answered
    assert 10 <= answered < 200
    for ranking in session.store.rankings():
        assert (ranking.order.tolist(), ranking.tied.tolist()) == expected(session, ranking.position)
        assert torch.equal(ranking.segments.actions, session.queries[ranking.position].actions)
    shown = next(i for i in range(answered, 200) if not session.identical[i])
    assert session.current() is session.queries[shown]
    session.commit([2, 1, 0], [False, False])                       # resumes at the next unranked query
    assert session.store.rankings()[shown].order.tolist() == [2, 1, 0]
    session.close()


def wait_for_rankings(directory, count, timeout=60.0):
    store = directory / "labels.sqlite"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.exists():
            with sqlite3.connect(store) as db:
                if db.execute("SELECT name FROM sqlite_master WHERE name = 'rankings'").fetchone() and \
                        db.execute("SELECT COUNT(*) FROM rankings").fetchone()[0] >= count:
                    return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} rankings in {store} after {timeout} s")


class Terminal:
    """``python -m bench ARGS`` on an 80 x 24 pseudo-terminal: keys in, the screen's text out."""

    def __init__(self, *args):
        main, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = os.environ | {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdin=child,
                                     stdout=child, stderr=child, start_new_session=True)
        os.close(child)
        self.fd, self.seen = main, ""

    def read(self, timeout=0.1):
        while select.select([self.fd], [], [], timeout)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk.decode(errors="replace")

    def wait_for(self, text, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read()
            if text in self.seen:
                return
        raise AssertionError(f"{text!r} not on screen after {timeout} s")

    def type(self, keys):
        for key in keys:
            os.write(self.fd, key.encode())
            time.sleep(0.05)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.fd)


def test_a_ranking_session_in_a_terminal_killed_and_resumed(tmp_path):
    """The program itself, on a pseudo-terminal: rankings typed, ``kill -9``, every committed ranking kept,
    the same command resumes at the next query."""
    command = ("label", "--task", "gridworld", "--size", "5", "--rank", "4", "--pairs", "6", "--out", str(tmp_path))
    terminal = Terminal(*command)
    try:
        terminal.wait_for("ranked 0/6")
        for n, keys in enumerate(("4=213", "1234"), start=1):
            terminal.type(keys)
            terminal.wait_for(f"ranked {n}/6")
        terminal.type("21")                                  # half typed: lost with the kill, as it should be
        time.sleep(0.3)
        os.kill(terminal.proc.pid, signal.SIGKILL)
    finally:
        terminal.close()
    spec = RankSpec("gridworld", pairs=6, size=5, rank=4)
    session = RankingSession(spec, tmp_path)
    assert texts(session) == ["4=2>1>3", "1>2>3>4"] and session.current() is session.queries[2]
    session.close()
    terminal = Terminal(*command)
    try:
        terminal.wait_for("ranked 2/6")
        terminal.type("3=4=1=2")
        terminal.wait_for("ranked 3/6")
        terminal.type("q")
        assert terminal.proc.wait(timeout=30) == 0
    finally:
        terminal.close()
    session = RankingSession(spec, tmp_path)
    assert texts(session) == ["4=2>1>3", "1>2>3>4", "3=4=1=2"]
    session.close()


def test_bad_rank_is_one_line_and_writes_nothing(tmp_path):
    none = tmp_path / "none"
    for args, message in ((("--task", "gridworld", "--rank", "5"), "--rank must be in [2, 4] to draw gridworld"),
                          (("--task", "gridworld", "--rank", "1"), "--rank must be in [2, 4]"),
                          (("--task", "strings", "--rank", "7"), "--rank must be in [2, 6] to draw strings"),
                          (("--task", "strings", "--rank", "3", "--pairs", "0"), "--pairs must be >= 1, got 0"),
                          (("--task", "strings", "--rank", "3", "--target", "XYZ"), "outside vocab")):
        result = run_cli("label", *args, "--out", str(none))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, (args, result)
        assert "Traceback" not in result.stderr
    assert not none.exists()
    pairs = tmp_path / "pairs"
    Session(SessionSpec("strings", pairs=5), pairs).close()
    result = run_cli("label", "--task", "strings", "--pairs", "5", "--rank", "3", "--out", str(pairs))
    assert result.returncode == 2 and "holds labels for rank = None, not 3" in result.stderr
    result = run_cli("label", "--task", "strings", "--rank", "3", "--fit", "--out", str(none))
    assert result.returncode == 2 and "has no labels store" in result.stderr and not none.exists()


def test_fit_reads_the_persons_rankings(tmp_path):
    """``--rank K --fit``: one line per preference model, and per tie model when the rankings hold ties."""
    spec = RankSpec("strings", pairs=20, rank=3)
    session = RankingSession(spec, tmp_path)
    result = run_cli("label", "--task", "strings", "--pairs", "20", "--rank", "3", "--fit", "--out", str(tmp_path))
    assert result.returncode == 2 and "needs at least 10 answered rankings, got 0" in result.stderr
    target = session.task.target_tokens
    while not session.done:
        matches = [int((session.current().actions[k] == target).sum()) for k in range(3)]
        order = sorted(range(3), key=lambda k: -matches[k])
        session.commit(order, [matches[order[j]] == matches[order[j + 1]] for j in range(2)])
    session.close()
    result = run_cli("label", "--task", "strings", "--pairs", "20", "--rank", "3", "--fit", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("partial: oracle (beta [") for line in lines), lines    # a perfect labeller
    assert any(line.startswith("partial+rao-kupper: ") and "tie_param [" in line for line in lines), lines
