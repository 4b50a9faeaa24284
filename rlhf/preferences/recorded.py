"""A person's answers to preference queries: the labels store and the teacher that replays it.

A *labels store* is one SQLite file (``labels.sqlite`` in a directory, one per labeller). It
holds the session's configuration and, one row per answer, the pair shown (both segments'
states and actions), the answer (``1``, ``2``, ``=`` or ``s`` for skip), when it was given and
the code fingerprint of the program that recorded it. Every answer is committed the moment it
is given, so a killed session loses at most the pair on screen.

A store of *rankings* (``python -m bench label --rank K``) holds, one row per ranking in a table
of its own (``rankings``), the K segments shown (states and actions of each), the ranking as
``order`` (the segments' indices, best first, JSON) and ``tied`` (K − 1 flags, JSON: positions j
and j + 1 equal; :mod:`rlhf.preferences.rankings`), when and by which code; one row, one commit.
A store holds pairs or rankings, never both; a pairs store is read and hashed exactly as before
(the rankings table is made by the first ranking stored). :meth:`LabelStore.rankings` reads them
back; :class:`RecordedTeacher` replays them to ranking queries (``rank=K``) by position and content.

:class:`RecordedTeacher` answers a training run's queries from a store, by the pairs' content:
the pairs a session showed are the ones :func:`rlhf.session_pairs` draws for its configuration
and seed, which are the ones ``rlhf.train`` asks with that configuration and seed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.rollout import Trajectories
from .kinds import TeacherKind, register_teacher
from .labeller import Labels, Query, mean_over_answered
from .models import binary_entropy
from .rankings import prefer_first_of

STORE_NAME = "labels.sqlite"
ANSWERS = {"1": 1.0, "2": 0.0, "=": 0.5, "s": None}
"""Keys of an answer and the label they mean (``None``: skipped)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    position      INTEGER PRIMARY KEY,
    pair          TEXT NOT NULL,
    answer        TEXT NOT NULL,
    answered_at   TEXT NOT NULL,
    fingerprint   TEXT NOT NULL
);
"""
_RANKINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS rankings (
    position      INTEGER PRIMARY KEY,
    segments      TEXT NOT NULL,
    ranking_order TEXT NOT NULL,
    ranking_tied  TEXT NOT NULL,
    answered_at   TEXT NOT NULL,
    fingerprint   TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Answer:
    """One stored answer: the pair (``[T]`` states and actions of each segment) and the key pressed."""

    position: int
    first: Trajectories
    second: Trajectories
    answer: str
    answered_at: str
    fingerprint: str

    @property
    def prefer_first(self) -> float | None:
        return ANSWERS[self.answer]


@dataclass(frozen=True)
class RecordedRanking:
    """One stored ranking: the K segments shown (``[K, T]`` states and actions), ``order[K]`` (int64,
    the segments' indices, best first) and ``tied[K − 1]`` (bool, positions j and j + 1 equal)."""

    position: int
    segments: Trajectories
    order: torch.Tensor
    tied: torch.Tensor
    answered_at: str
    fingerprint: str

    @property
    def rank(self) -> int:
        """K, the segments ranked."""
        return int(self.order.shape[0])

    def text(self) -> str:
        """The ranking as a person typed it, items numbered from 1 as on screen: ``3>1=2>4``."""
        out = str(int(self.order[0]) + 1)
        for item, tie in zip(self.order[1:].tolist(), self.tied.tolist(), strict=True):
            out += ("=" if tie else ">") + str(item + 1)
        return out


def label_tensors(values: list[float | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prefer_first, answered)`` of stored labels; a skip (None) is unanswered, with label 0."""
    return (torch.tensor([0.0 if v is None else v for v in values]),
            torch.tensor([v is not None for v in values]))


def pair_key(first: Trajectories, second: Trajectories) -> str:
    """A pair's identity by content (JSON of both segments' states and actions)."""
    return json.dumps([first.states.tolist(), first.actions.tolist(), second.states.tolist(),
                       second.actions.tolist()], separators=(",", ":"))


def ranking_key(segments: Trajectories) -> str:
    """A query's identity by content: JSON of its K segments' (``[K, T]``) states and actions, in turn
    (at K = 2 :func:`pair_key` of the two)."""
    return json.dumps([x for k in range(segments.states.shape[0])
                       for x in (segments.states[k].tolist(), segments.actions[k].tolist())], separators=(",", ":"))


def check_ranking(order: object, tied: object, K: int) -> tuple[list[int], list[bool]]:
    """``(order, tied)`` as lists, or ValueError: ``order`` must be a permutation of the K segments'
    indices and ``tied`` K − 1 flags."""
    order_list = [int(i) for i in (order.tolist() if isinstance(order, torch.Tensor) else order)]  # type: ignore[attr-defined]
    tied_list = [bool(t) for t in (tied.tolist() if isinstance(tied, torch.Tensor) else tied)]  # type: ignore[attr-defined]
    if sorted(order_list) != list(range(K)):
        raise ValueError(f"order must be a permutation of 0..{K - 1} (the {K} segments, best first), got {order_list}")
    if len(tied_list) != K - 1:
        raise ValueError(f"tied must hold {K - 1} flags (one per adjacent pair of positions), got {len(tied_list)}")
    return order_list, tied_list


class LabelStore:
    """The answers of one labeller (see the module docstring); ``with LabelStore(dir) as store``."""

    def __init__(self, directory: str | Path, config: dict | None = None) -> None:
        """Open (or create) the store in ``directory``. With ``config`` (the session's configuration,
        JSON-serialisable), a new store records it and an existing one must hold the same, else
        ``ValueError`` naming the first field that differs: one store, one session."""
        self.path = Path(directory) / STORE_NAME
        if config is None and not self.path.exists():
            raise ValueError(f"{directory}: no labels store ({STORE_NAME})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)     # autocommit: one answer, one commit
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ValueError(f"{self.path} is not a labels store ({exc})") from None
        stored = self._db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        if stored is None and config is not None:
            self._db.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(config, sort_keys=True),))
        elif stored is not None and config is not None:
            mine = json.loads(stored[0])
            for field in sorted(set(mine) | set(config)):
                if mine.get(field) != config.get(field):
                    self._db.close()
                    raise ValueError(f"{directory} holds labels for {field} = {mine.get(field)!r}, not "
                                     f"{config.get(field)!r}: use another directory for another session")
        self.config: dict = json.loads(self._db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        """Answers stored: pairs, or rankings in a store of rankings."""
        pairs = int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        return pairs + self._ranking_count()

    def _has_rankings_table(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rankings'"
                                ).fetchone() is not None

    def _ranking_count(self) -> int:
        if not self._has_rankings_table():
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM rankings").fetchone()[0])

    def append(self, first: Trajectories, second: Trajectories, answer: str, fingerprint: str = "") -> int:
        """Store (and commit) the answer to the next pair; returns its position."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, got {answer!r}")
        if self._ranking_count():
            raise ValueError(f"{self.path.parent} holds rankings: a store holds pairs or rankings, not both")
        position = len(self)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._db.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?)",
                         (position, pair_key(first, second), answer, stamp, fingerprint))
        return position

    def undo(self) -> Answer | None:
        """Remove (and commit) the last answer; returns it, or None when there is none."""
        answers = self.answers()
        if not answers:
            return None
        self._db.execute("DELETE FROM answers WHERE position = ?", (answers[-1].position,))
        return answers[-1]

    def append_ranking(self, segments: Trajectories, order: object, tied: object, fingerprint: str = "") -> int:
        """Store (and commit, one SQLite transaction) the ranking of the next query: its K segments
        ``[K, T]``, ``order`` (the segments' indices, best first) and ``tied`` (K − 1 flags); returns
        its position."""
        K = int(segments.states.shape[0])
        order_list, tied_list = check_ranking(order, tied, K)
        if int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]):
            raise ValueError(f"{self.path.parent} holds pairs: a store holds pairs or rankings, not both")
        self._db.executescript(_RANKINGS_SCHEMA)
        position = self._ranking_count()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._db.execute("INSERT INTO rankings VALUES (?, ?, ?, ?, ?, ?)",
                         (position, ranking_key(segments), json.dumps(order_list),
                          json.dumps([int(t) for t in tied_list]), stamp, fingerprint))
        return position

    def undo_ranking(self) -> RecordedRanking | None:
        """Remove (and commit) the last ranking; returns it, or None when there is none."""
        rankings = self.rankings()
        if not rankings:
            return None
        self._db.execute("DELETE FROM rankings WHERE position = ?", (rankings[-1].position,))
        return rankings[-1]

    def rankings(self) -> list[RecordedRanking]:
        """The stored rankings, in order (none in a store of pairs)."""
        if not self._has_rankings_table():
            return []
        out = []
        for position, segments, order, tied, stamp, fingerprint in self._db.execute(
                "SELECT position, segments, ranking_order, ranking_tied, answered_at, fingerprint FROM rankings "
                "ORDER BY position"):
            values = json.loads(segments)
            states = torch.tensor(values[0::2], dtype=torch.int64)
            actions = torch.tensor(values[1::2], dtype=torch.int64)
            out.append(RecordedRanking(position, Trajectories(states, actions),
                               torch.tensor(json.loads(order), dtype=torch.int64),
                               torch.tensor([bool(t) for t in json.loads(tied)], dtype=torch.bool), stamp, fingerprint))
        return out

    def ranking_tensors(self) -> tuple[Trajectories, torch.Tensor, torch.Tensor]:
        """Every stored ranking at once: ``(segments[n, K, T], order[n, K], tied[n, K − 1])`` (ValueError
        when the store holds none)."""
        rankings = self.rankings()
        if not rankings:
            raise ValueError(f"{self.path.parent}: the store holds no rankings")
        return (Trajectories(torch.stack([r.segments.states for r in rankings]),
                             torch.stack([r.segments.actions for r in rankings])),
                torch.stack([r.order for r in rankings]), torch.stack([r.tied for r in rankings]))

    def digest(self) -> str:
        """A hash of every answer (position, pair, key), or of every ranking: changes with any answer
        given or undone (a store of pairs hashes as it always has)."""
        rows = self._db.execute("SELECT position, pair, answer FROM answers ORDER BY position").fetchall()
        if self._ranking_count():
            rows = [rows, self._db.execute("SELECT position, segments, ranking_order, ranking_tied FROM rankings "
                                           "ORDER BY position").fetchall()]
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]

    def answers(self) -> list[Answer]:
        out = []
        for position, pair, answer, stamp, fingerprint in self._db.execute(
                "SELECT position, pair, answer, answered_at, fingerprint FROM answers ORDER BY position"):
            s1, a1, s2, a2 = (torch.tensor(v, dtype=torch.int64) for v in json.loads(pair))
            out.append(Answer(position, Trajectories(s1, a1), Trajectories(s2, a2), answer, stamp, fingerprint))
        return out


class RecordedTeacher:
    """A labeller that replays a person's answers from a labels store.

    The run's k-th pair gets the store's k-th answer, which must be to the same pair (its
    content is checked): a session's pairs are the run's, in order (:func:`rlhf.session_pairs`),
    so a pair shown twice keeps both of its answers. ``missing``: what to do with a pair past
    the last answer: ``"error"`` (the default) or ``"skip"`` (leave it unanswered, e.g. to train
    on a session's answers so far). An answer to another pair is always an error: the store was
    recorded for another configuration or seed. Skipped answers (``s``) are unanswered pairs;
    ``=`` is the label 0.5. ``digest``: the store's :meth:`LabelStore.digest` expected (a
    sweep's cell records it, so labels changed since then are refused, not silently used).
    """

    def __init__(self, directory: str | Path, missing: str = "error", digest: str | None = None) -> None:
        if missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
        self.directory, self.missing = str(directory), missing
        with LabelStore(directory) as store:
            answers = store.answers()
            if digest is not None and store.digest() != digest:
                raise ValueError(f"{directory}: its labels changed since this configuration was made "
                                 f"(digest {store.digest()}, expected {digest})")
            rankings = store.rankings()
            stored_rank = store.config.get("rank") if isinstance(store.config, dict) else None
        self._keys = [pair_key(a.first, a.second) for a in answers]
        self._labels = [a.prefer_first for a in answers]
        self._ranking_keys = [ranking_key(r.segments) for r in rankings]
        self._rankings = [(r.order, r.tied) for r in rankings]
        self.ranks = bool(rankings) or (isinstance(stored_rank, int) and stored_rank > 2)
        """Whether it answers ranking queries (``rank=K``): the store holds rankings, or is a session
        of rankings of K > 2 segments with none yet."""
        self.may_skip = missing == "skip" or any(v is None for v in self._labels)
        """Whether some pairs can come back unanswered (the training loop's learner then masks them)."""

    def __str__(self) -> str:
        return RECORDED.spec(self.directory)          # the spec a configuration reads back

    def answer(self, query: Query) -> Labels:
        """The stored answers to the run's pairs ``query.asked_before`` … (the query's segments
        ``[..., B, T]``; its step scores are not read)."""
        if query.segments is not None or self._rankings or self.ranks:
            return self._answer_rankings(query)
        first, second, asked_before = query.first, query.second, query.asked_before
        shape = first.states.shape[:-1]
        T = first.states.shape[-1]
        flat_1 = Trajectories(first.states.reshape(-1, T), first.actions.reshape(-1, T))
        flat_2 = Trajectories(second.states.reshape(-1, T), second.actions.reshape(-1, T))
        B = shape[-1]
        values: list[float | None] = []
        for j in range(flat_1.states.shape[0]):
            position = asked_before + j % B
            if position >= len(self._keys):
                if self.missing == "error":
                    raise ValueError(f"{self.directory}: no answer to pair {position} (the store has "
                                     f"{len(self._keys)}); pass missing='skip' to train on the answers so far")
                values.append(None)
                continue
            if pair_key(flat_1[j], flat_2[j]) != self._keys[position]:
                raise ValueError(f"{self.directory}: answer {position} is to another pair: the labels were "
                                 "recorded for another configuration or seed")
            values.append(self._labels[position])
        prefer, answered = (t.view(shape) for t in label_tensors(values))
        device = first.states.device
        entropy = mean_over_answered(binary_entropy(prefer), answered)
        return Labels(prefer.to(device), answered.to(device), entropy.to(device))

    def _answer_rankings(self, query: Query) -> Labels:
        """The stored rankings of the run's queries ``query.asked_before`` … (``query.segments[..., B, K, T]``),
        as ``Labels.ranking`` and ``tied`` and what they say of segments 0 and 1 (``prefer_first``); a pair
        query (K = 2, a store of rankings of two) gets that label alone. A query past the last ranking is
        unanswered with ``missing="skip"`` (segments in index order, untied)."""
        pairs = query.segments is None
        segments = query.segments if query.segments is not None else Trajectories(
            torch.stack([query.first.states, query.second.states], -2),
            torch.stack([query.first.actions, query.second.actions], -2))
        K, T = segments.states.shape[-2:]
        shape = segments.states.shape[:-2]
        B = shape[-1]
        flat = Trajectories(segments.states.reshape(-1, K, T), segments.actions.reshape(-1, K, T))
        orders, tieds, answered = [], [], []
        for j in range(flat.states.shape[0]):
            position = query.asked_before + j % B
            if position >= len(self._ranking_keys):
                if self.missing == "error":
                    raise ValueError(f"{self.directory}: no ranking of query {position} (the store has "
                                     f"{len(self._ranking_keys)}); pass missing='skip' to train on the rankings so far")
                orders.append(torch.arange(K))
                tieds.append(torch.zeros(K - 1, dtype=torch.bool))
                answered.append(False)
                continue
            if ranking_key(flat[j]) != self._ranking_keys[position]:
                raise ValueError(f"{self.directory}: ranking {position} is of another query: the labels were "
                                 "recorded for another configuration, seed or rank")
            order, tied = self._rankings[position]
            orders.append(order)
            tieds.append(tied)
            answered.append(True)
        device = segments.states.device
        order = torch.stack(orders).view(*shape, K).to(device)
        tied = torch.stack(tieds).view(*shape, K - 1).to(device)
        done = torch.tensor(answered).view(shape).to(device)
        prefer = prefer_first_of(order, tied).float()
        entropy = mean_over_answered(binary_entropy(prefer), done)
        if pairs:
            return Labels(prefer, done, entropy)
        return Labels(prefer, done, entropy, ranking=order, tied=tied)


def _parts(argument: str) -> tuple[str, str | None]:
    """``DIR[@DIGEST]`` as (DIR, DIGEST or None)."""
    head, _, tail = argument.rpartition("@")
    if head and len(tail) == 16 and set(tail) <= set("0123456789abcdef"):
        return head, tail
    return argument, None


def _canonical_store(argument: str) -> str:
    """``DIR`` made ``/absolute/DIR@DIGEST``: the directory the same from any working directory, and
    the digest of its answers (:meth:`LabelStore.digest`), so that a configuration, and a sweep
    cell's key, changes with the labels. One that has its digest (read back from a store of
    results) is kept; ValueError when DIR holds no labels store."""
    if _parts(argument)[1] is not None:
        return argument
    path = Path(argument).resolve()
    if not (path / STORE_NAME).is_file():
        raise ValueError(f"teacher 'recorded:{argument}': no labels store ({STORE_NAME}) in that directory")
    with LabelStore(path) as store:
        return f"{path}@{store.digest()}"


def _replay(argument: str) -> RecordedTeacher:
    directory, digest = _parts(argument)
    return RecordedTeacher(directory, digest=digest)


RECORDED = register_teacher(TeacherKind("recorded", make=_replay, resolve=_canonical_store))
"""``recorded:DIR``: a person's answers in the labels store in DIR, replayed by :class:`RecordedTeacher`."""
