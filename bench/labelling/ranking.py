"""A ranking session: a person ranks K segments at a time (``python -m bench label --rank K``).

The engine behind the ranking program (:mod:`bench.labelling.rank_app` is its terminal UI), as
:class:`bench.labelling.Session` is the pair program's. A session is a task, a training configuration
with ``rank=K``, ``rank_cost="query"`` (``--pairs N`` asks N rankings) and ``query="uniform"``, and a
seed, so its queries are fixed before any answer (:func:`session_rankings`: the queries ``rlhf.train``
asks with that configuration and seed): resuming, undoing and replaying are exact, and
``rlhf.train(session.task, teacher=rlhf.RecordedTeacher(DIR), config=session.config, seed=session.spec.seed)``
learns from the person's rankings.

Every ranking is one row of the labels store's ``rankings`` table, committed (one SQLite transaction,
``synchronous=FULL``) the moment its last item is placed: a ``kill -9`` loses at most the ranking being
typed. A query whose K segments are all the same (nothing to compare) is never shown: the session
ranks it all tied for the person (:meth:`RankingSession.answer_identical`), as the pair session answers
an identical pair ``=``.

Agreement (the status line): over the person's rankings so far, the share of their ordered pairs of
positions (s ahead of t, not tied; C(K, 2) a ranking without ties) whose segments the learned reward
orders the same way (a higher learned return for the one ranked ahead); pairs the person tied are left
out, and pairs the learned reward gives equal returns count half.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

import rlhf
from rlhf.core.keys import Keys
from rlhf.core.rollout import step_rewards
from rlhf.learning.queries import QUERY_RULES
from rlhf.preferences.fit import MIN_RANKINGS
from rlhf.preferences.recorded import RecordedRanking, ranking_key
from rlhf.tasks.render import ranking_view
from rlhf.training import phases
from rlhf.training.loop import single_threaded

from .. import provenance
from .session import Queue, SessionSpec


@dataclass(frozen=True)
class RankSpec(SessionSpec):
    """A ranking session: :class:`SessionSpec`'s task, options and seed, ``pairs`` the number of rankings,
    and ``rank`` K, the segments of a query."""

    rank: int = 3

    def drawing(self):
        """``(draw, most)``: how the task draws K segments and the most it fits in 80 x 24 (ValueError
        when its ``render`` hook has no ranking drawing)."""
        view = ranking_view(self.render.pair)
        if view is None:
            raise ValueError(f"--rank: task {self.task!r} draws pairs only (its render hook has no ranking drawing)")
        return view

    def check_rank(self) -> None:
        """ValueError naming ``--rank`` unless 2 ≤ K ≤ the most the task draws in 80 x 24."""
        most = self.drawing()[1]
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or not 2 <= self.rank <= most:
            raise ValueError(f"--rank must be in [2, {most}] to draw {self.task} segments in an 80x24 terminal, "
                             f"got {self.rank}")

    def train_config(self, task: rlhf.Task) -> rlhf.TrainConfig:
        """The pair session's configuration (:meth:`SessionSpec.train_config`) asking ``pairs`` rankings of
        ``rank`` segments (each costs one query of the budget)."""
        return super().train_config(task).replace(rank=self.rank, rank_cost="query")

    def fields(self) -> dict:
        """What the store records and checks on resume: the pair session's fields and ``rank``."""
        return super().fields() | {"rank": self.rank}


def session_rankings(task: rlhf.Task, config: rlhf.TrainConfig, seed: int = 0) -> list[rlhf.Trajectories]:
    """The queries :func:`rlhf.train` asks with ``config`` (``rank=K``) and ``seed``, in order, one ``[K, T]``
    each (at K = 2: :func:`rlhf.session_pairs`' pairs, stacked). Only for a uniform query rule."""
    if not QUERY_RULES[config.query].uniform:
        raise ValueError(f"a ranking session's queries must not depend on the answers: query must be 'uniform', "
                         f"got {config.query!r}")
    queries: list[rlhf.Trajectories] = []
    with single_threaded(), torch.inference_mode():
        setting = phases.prepare(task, config.replace(teacher="boltzmann:1"), [seed],
                                 Keys.from_seeds([seed], device=task.mdp.start.device))
        state = phases.start(setting)
        for index in range(config.rounds):
            if config.queries_in_round(index) == 0:
                continue
            segments = phases.query_rankings(setting, state, index)                 # [1, n, K, T]
            queries += [rlhf.Trajectories(segments.states[0, i], segments.actions[0, i])
                        for i in range(segments.states.shape[1])]
    return queries


def all_identical(segments: rlhf.Trajectories) -> bool:
    """Whether the K segments ``[K, T]`` are all the same: nothing for a person to rank."""
    return bool((segments.states == segments.states[:1]).all() and (segments.actions == segments.actions[:1]).all())


def identical_items(segments: rlhf.Trajectories) -> list[tuple[int, int]]:
    """The pairs of items (numbered from 1, as on screen) whose segments are the same."""
    K = segments.states.shape[0]
    return [(i + 1, j + 1) for i, j in itertools.combinations(range(K), 2)
            if torch.equal(segments.states[i], segments.states[j])
            and torch.equal(segments.actions[i], segments.actions[j])]


class Entry:
    """A ranking being typed: items pressed best first; ``=`` ties the next item pressed to the previous;
    ``u`` undoes the last key (:meth:`undo`)."""

    def __init__(self, K: int, order: list[int] | None = None, tied: list[bool] | None = None,
                 pending: bool = False) -> None:
        self.K = K
        self.order: list[int] = list(order or [])
        """Items placed (0-based segment indices), best first."""
        self.tied: list[bool] = list(tied or [])
        """Per placed item after the first: tied to the one before it."""
        self.pending = pending
        """``=`` pressed: the next item pressed is tied to the last placed."""

    @property
    def complete(self) -> bool:
        return len(self.order) == self.K

    @property
    def empty(self) -> bool:
        return not self.order and not self.pending

    def press(self, key: str) -> bool:
        """Apply a key (an item's number ``1``…``K`` or ``=``); whether it changed anything (a placed
        item, ``=`` with nothing placed or already pending, or another key, is ignored)."""
        if key == "=":
            if not self.order or self.pending or self.complete:
                return False
            self.pending = True
            return True
        if not (len(key) == 1 and key.isdigit() and 1 <= int(key) <= self.K):
            return False
        item = int(key) - 1
        if item in self.order:
            return False
        if self.order:
            self.tied.append(self.pending)
        self.pending = False
        self.order.append(item)
        return True

    def undo(self) -> bool:
        """Undo the last key: a pending ``=``, else the last item placed (a ``=`` before it is pending
        again); False when nothing is typed."""
        if self.pending:
            self.pending = False
            return True
        if not self.order:
            return False
        self.order.pop()
        if self.tied:
            self.pending = self.tied.pop()
        return True

    def text(self) -> str:
        """What is typed, items numbered from 1: ``3 > 1 = 2 > _``."""
        if not self.order:
            return "_"
        out = str(self.order[0] + 1)
        for item, tie in zip(self.order[1:], self.tied, strict=True):
            out += (" = " if tie else " > ") + str(item + 1)
        if not self.complete:
            out += " = _" if self.pending else " > _"
        return out

    @classmethod
    def before_last_key(cls, ranking: RecordedRanking) -> Entry:
        """A stored ranking as typed, less its last key (the last item placed): what ``u`` leaves."""
        order, tied = ranking.order.tolist(), ranking.tied.tolist()
        return cls(len(order), order[:-1], tied[:-1], pending=bool(tied[-1]) if tied else False)


class RankingSession(Queue):
    """A person's ranking session: the queries, the store, and what the rankings so far teach the model."""

    def __init__(self, spec: RankSpec, directory: str | Path) -> None:
        spec.check_rank()
        self.spec, self.directory = spec, Path(directory)
        self.task = spec.make_task()
        self.config = spec.train_config(self.task)
        self.queries = self.items = session_rankings(self.task, self.config, spec.seed)
        self.draw = spec.drawing()[0]
        self.store = rlhf.LabelStore(directory, spec.fields())
        self.fingerprint = provenance.code_fingerprint()
        self.identical = [all_identical(q) for q in self.queries]
        """Per query: whether its K segments are all the same (never shown; ranked all tied for the person)."""
        for ranking, query in zip(self.store.rankings(), self.queries, strict=False):     # resume: the same queries
            if ranking_key(ranking.segments) != ranking_key(query):
                raise ValueError(f"{directory}: ranking {ranking.position} is of another query than this session "
                                 "draws (recorded by other code?): use another directory")

    @property
    def K(self) -> int:
        return self.spec.rank

    def current(self) -> rlhf.Trajectories:
        """The query on screen (``[K, T]``): the first unranked one whose segments are not all the same."""
        return self.queries[self._shown()]

    def drawn(self) -> str:
        """The query on screen as the task draws K segments."""
        return self.draw(self.task, self.current())

    def answer_identical(self) -> int:
        """Rank (and commit) all tied the unranked all-identical queries before the one on screen."""
        added = 0
        while self.answered < len(self.queries) and self.identical[self.answered]:
            self.store.append_ranking(self.queries[self.answered], list(range(self.K)), [True] * (self.K - 1),
                                      self.fingerprint)
            added += 1
        return added

    def commit(self, order: list[int], tied: list[bool]) -> None:
        """Store (and commit) the person's ranking of the query on screen, then rank the all-identical
        queries that follow it."""
        if self.done:
            raise ValueError("every query of this session is ranked")
        self.answer_identical()
        self.store.append_ranking(self.current(), order, tied, self.fingerprint)
        self.answer_identical()

    def undo(self) -> RecordedRanking | None:
        """Remove the person's last ranking (its query is asked again next), and the rankings given for
        them after it; returns it, or None when the person has given none."""
        if all(self.identical[: self.answered]):
            return None
        while self.identical[self.answered - 1]:
            self.store.undo_ranking()
        return self.store.undo_ranking()

    def _persons_rankings(self) -> list[RecordedRanking]:
        return [r for r in self.store.rankings() if not self.identical[r.position]]

    def learned(self) -> rlhf.RunResult:
        """The model trained on the rankings so far (unranked queries skipped), with the session's
        configuration and seed."""
        teacher = rlhf.RecordedTeacher(self.directory, missing="skip")
        return rlhf.train(self.task, teacher=teacher, config=self.config, seed=self.spec.seed)

    def agreement(self, result: rlhf.RunResult | None = None) -> tuple[float, int]:
        """``(agreement, pairs)``: the share of the person's ordered (untied) position pairs the learned
        reward orders alike, equal learned returns counting half (NaN before any; module docstring),
        and how many such pairs there are."""
        rankings = self._persons_rankings()
        if not rankings:
            return math.nan, 0
        reward = (result or self.learned()).reward
        total, agree = 0, 0.0
        for ranking in rankings:
            returns = step_rewards(reward, ranking.segments).double().sum(-1)[ranking.order]      # by position
            groups = [0, *itertools.accumulate(int(not t) for t in ranking.tied.tolist())]
            for s, t in itertools.combinations(range(self.K), 2):
                if groups[s] == groups[t]:
                    continue
                total += 1
                agree += 1.0 if returns[s] > returns[t] else 0.5 if returns[s] == returns[t] else 0.0
        return (agree / total if total else math.nan), total

    def fit(self, resamples: int = 200) -> dict[str, rlhf.RankingTeacherFit]:
        """Which Plackett–Luce teacher the person's rankings resemble (:func:`rlhf.fit_ranking_teacher`),
        per preference model; with ties in them, also each tie model's fit (keys ``MODEL+TIES``)."""
        rankings = self._persons_rankings()
        if len(rankings) < MIN_RANKINGS:
            raise ValueError(f"fit_ranking_teacher needs at least {MIN_RANKINGS} answered rankings, "
                             f"got {len(rankings)}")
        segments = rlhf.Trajectories(torch.stack([r.segments.states for r in rankings]),
                                     torch.stack([r.segments.actions for r in rankings]))
        order = torch.stack([r.order for r in rankings])
        tied = torch.stack([r.tied for r in rankings])
        out: dict[str, rlhf.RankingTeacherFit] = {}
        for ties in ("none", "rao-kupper", "davidson"):
            if ties != "none" and not bool(tied.any()):
                continue
            fits = rlhf.fit_ranking_teacher(self.task, segments, order, tied, ties=ties, resamples=resamples,
                                            discount=self.config.discount)
            out |= {(name if ties == "none" else f"{name}+{ties}"): fit for name, fit in fits.items()}
        return out

    def fit_lines(self, resamples: int = 200) -> list[str]:
        """``--fit``'s report for rankings: one line per fit (:meth:`fit`), with its bootstrap CIs."""
        lines = []
        for name, fit in self.fit(resamples).items():
            ci = ", ".join(f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in fit.ci.items())
            lines.append(f"{name}: {fit.spec} ({ci}); log-likelihood {fit.log_likelihood:.3f} per ranking over "
                         f"{fit.rankings} rankings of {fit.rank}")
        return lines


__all__ = ["Entry", "RankSpec", "RankingSession", "session_rankings"]
