"""Preference data as a value: a fixed set of labelled pairs of trajectories.

:class:`PreferenceData` holds N distinct trajectories ``[N, T]`` (each starting at step 0, as a
rollout's do) and P pairs of them, each with the probability that its first trajectory is
preferred and its weight in a loss, and the probability that its answer is "equal" (a tie: ``tie``,
zeros unless the data says so; ``prefer_first`` counts a tie as ½, so methods that ignore ties read
it alone). Four ways to make one:

* :meth:`PreferenceData.from_pairs`: offline pairs written by hand (action sequences, strings of a
  string task's tokens; preferred first; optional label probabilities);
* :meth:`PreferenceData.sampled`: pairs rolled out from a policy (the uniform one by default) and
  labelled by any teacher (a spec, an :class:`rlhf.Teacher` or any :class:`rlhf.Labeller`), all draws
  counter-based (:class:`rlhf.Keys`), so a seed's data is a pure function of the seed;
* :meth:`PreferenceData.from_store`: a person's answers in a labels store (:class:`rlhf.LabelStore`);
* :meth:`PreferenceData.population`: for a task small enough to enumerate, *every* pair of
  trajectories with its exact probability under a sampling policy and its exact teacher probability
  (no label is drawn): the population a method's loss is an expectation over, so its optimum can be
  computed rather than estimated.

Rankings of K trajectories are :class:`rlhf.RankingData` (:mod:`.ranking_data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.enumeration import enumerate_trajectories
from ..core.keys import Keys
from ..core.planning import uniform_policy
from ..core.rollout import Trajectories, rollout, step_rewards
from ..core.truths import truths_of
from ..preferences.kinds import labeller_from_spec, resolve_teacher_spec
from ..preferences.labeller import Labeller, Query
from ..preferences.models import PARTIAL_RETURN, preference_model
from ..preferences.recorded import LabelStore
from ..preferences.teachers import Teacher
from ..preferences.ties import log_tie_param, tie_probabilities
from .exact import exact_preferences

SAMPLE, TEACHER = 1, 2
"""Purposes of :meth:`PreferenceData.sampled`'s random streams (:meth:`rlhf.Keys.fold`)."""


@dataclass(frozen=True)
class PreferenceData:
    """Labelled pairs of trajectories (see the module docstring)."""

    trajectories: Trajectories
    """``[N, T]`` the distinct trajectories the pairs are made of (states, executed actions)."""
    first: torch.Tensor
    """``[P]`` int64: each pair's first trajectory (an index into ``trajectories``)."""
    second: torch.Tensor
    """``[P]`` int64: each pair's second trajectory."""
    prefer_first: torch.Tensor
    """``[P]`` float64 in [0, 1]: the probability (or label) that the first is preferred."""
    weight: torch.Tensor
    """``[P]`` float64 >= 0, summing to 1: each pair's weight in a loss (0: unanswered)."""
    is_population: bool = False
    """Whether this is a task's whole population (every pair, exact weights and probabilities):
    methods then solve for their exact optimum."""
    source: str = ""
    """How the data was made, e.g. ``sampled(boltzmann:1, 100 pairs, seed 0)``."""
    tie: torch.Tensor | None = None
    """``[P]`` float64 in [0, 1]: the probability (or label) that the pair's answer is "equal"; None (the
    default) is zeros. ``prefer_first`` counts a tie as ½, so the three outcomes are first
    ``prefer_first − tie/2``, second ``1 − prefer_first − tie/2`` and tie ``tie`` (both >= 0, to 10⁻⁹).
    Read only by methods that model ties (``rk-dpo``, ``davidson-dpo``); the rest read ``prefer_first``,
    i.e. a tie as the soft label ½."""

    def __post_init__(self) -> None:
        n, P = self.trajectories.states.shape[0], self.first.shape[0]
        object.__setattr__(self, "tie", torch.zeros(P, dtype=torch.float64) if self.tie is None
                           else torch.as_tensor(self.tie).double())
        for name in ("first", "second", "prefer_first", "weight"):
            if getattr(self, name).shape != (P,):
                raise ValueError(f"{name} must have shape [{P}], got {tuple(getattr(self, name).shape)}")
        if P and (int(torch.minimum(self.first, self.second).min()) < 0
                  or int(torch.maximum(self.first, self.second).max()) >= n):
            raise ValueError(f"pair indices must lie in [0, {n})")
        if P and not bool(((self.prefer_first >= 0) & (self.prefer_first <= 1)).all()):
            raise ValueError("prefer_first must lie in [0, 1]")
        if P and bool((self.weight < 0).any()):
            raise ValueError("weights must be >= 0")
        tie = self.tie
        assert tie is not None
        if tie.shape != (P,):
            raise ValueError(f"tie must have shape [{P}], got {tuple(tie.shape)}")
        if P and bool(tie.any()):
            half, y = tie / 2, self.prefer_first.double()
            if not bool(((tie >= 0) & (tie <= 1)).all()) or bool(((y - half < -1e-9) | (1 - y - half < -1e-9)).any()):
                raise ValueError("tie must lie in [0, 1] with tie/2 <= prefer_first <= 1 − tie/2 (a tie counts ½)")

    def __len__(self) -> int:
        return self.first.shape[0]

    def __repr__(self) -> str:
        return (f"PreferenceData({len(self)} pairs of {self.trajectories.states.shape[0]} trajectories of "
                f"{self.length} steps{', population' if self.is_population else ''}: {self.source})")

    @property
    def length(self) -> int:
        """T, the steps of every trajectory."""
        return self.trajectories.states.shape[-1]

    @property
    def answered(self) -> torch.Tensor:
        """``[P]`` bool: the pairs with positive weight."""
        return self.weight > 0

    def pairs(self) -> tuple[Trajectories, Trajectories]:
        """``([P, T], [P, T])``: each pair's first and second trajectory."""
        t = self.trajectories
        return (Trajectories(t.states[self.first], t.actions[self.first]),
                Trajectories(t.states[self.second], t.actions[self.second]))

    # ------------------------------------------------------------- makers
    @classmethod
    def of(cls, first: Trajectories, second: Trajectories, prefer_first: torch.Tensor,
           answered: torch.Tensor | None = None, source: str = "", tie: torch.Tensor | None = None) -> PreferenceData:
        """Data from pairs ``([P, T], [P, T])`` and their labels ``[P]``: distinct trajectories are kept
        once, unanswered pairs get weight 0 and the others equal weights; ``tie[P]``: the pairs' tie
        probabilities or flags (default none)."""
        P, T = first.states.shape
        rows = torch.cat([torch.cat([first.states, first.actions], -1),
                          torch.cat([second.states, second.actions], -1)])
        unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
        answered = torch.ones(P, dtype=torch.bool) if answered is None else answered.cpu().bool()
        weight = answered.double() / max(int(answered.sum()), 1)
        return cls(Trajectories(unique[:, :T].contiguous(), unique[:, T:].contiguous()), inverse[:P], inverse[P:],
                   torch.as_tensor(prefer_first).double().cpu(), weight, source=source,
                   tie=None if tie is None else torch.as_tensor(tie).double().cpu())

    @classmethod
    def from_pairs(cls, task: Any, pairs: Sequence[tuple[Any, Any]],
                   probabilities: Sequence[float] | None = None) -> PreferenceData:
        """Offline pairs ``[(preferred, other), ...]``. Each side is a string of the task's tokens
        (a :class:`rlhf.StringTask`), a sequence of actions (states follow from a deterministic MDP
        with one start state), a ``(states, actions)`` tuple, or a ``[T]`` :class:`rlhf.Trajectories`.
        ``probabilities``: P(first preferred) of each pair (default 1: the first is preferred)."""
        if not pairs:
            raise ValueError("pairs must not be empty")
        sides = [_trajectory(task, side) for pair in pairs for side in _two(pair)]
        lengths = {s.states.shape[0] for s in sides}
        if len(lengths) != 1:
            raise ValueError(f"every trajectory must have the same length, got lengths {sorted(lengths)}")
        first, second = stack(sides[0::2]), stack(sides[1::2])
        labels = torch.ones(len(pairs), dtype=torch.float64) if probabilities is None else \
            torch.as_tensor(list(probabilities), dtype=torch.float64)
        if labels.shape != (len(pairs),):
            raise ValueError(f"probabilities must have one value per pair ({len(pairs)}), got {tuple(labels.shape)}")
        return cls.of(first, second, labels, source=f"from_pairs({len(pairs)} pairs)")

    @classmethod
    def sampled(cls, task: Any, teacher: str | Labeller, pairs: int, *, seed: int = 0, keys: Keys | None = None,
                policy: torch.Tensor | None = None, length: int | None = None) -> PreferenceData:
        """``pairs`` pairs rolled out from ``policy`` (``[S, A]`` or time-indexed ``[H, S, A]``; default
        uniform) over ``length`` steps (default the task's horizon), answered by ``teacher``. The draws
        are under ``keys`` (a single key; default ``Keys.from_seeds([seed])[0]``): the rollout under
        ``keys.fold(1)``, the teacher under ``keys.fold(2)``. Unanswered pairs (a skipping teacher) stay,
        with weight 0. A simulated teacher's (:class:`rlhf.Teacher`'s) labels are draws of 1, 0 or ½
        ("equal": a tie model's tie, an ``equal`` part, the oracle's ``"half"`` ties), so its ½ labels are
        marked ``tie``; any other labeller's labels may be soft, and none is marked."""
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"pairs must be an integer >= 1, got {pairs!r}")
        mdp = task.mdp
        keys = Keys.from_seeds([seed], device=mdp.start.device)[0] if keys is None else keys
        if keys.shape != ():
            raise ValueError(f"keys must be a single key (shape ()), got shape {tuple(keys.shape)}")
        labeller = labeller_from_spec(resolve_teacher_spec(teacher)) if isinstance(teacher, str) else teacher
        behaviour = uniform_policy(mdp) if policy is None else torch.as_tensor(policy)
        T = length or task.horizon
        first, second = rollout(mdp, behaviour, 2 * pairs, T, keys.fold(SAMPLE)).split()
        model = preference_model(getattr(labeller, "preference_model", PARTIAL_RETURN))
        truths = truths_of(task)
        scores = model.step_scores(truths)
        labels = labeller.answer(Query(first, second, step_rewards(scores, first), step_rewards(scores, second),
                                       model.score_range(truths), keys.fold(TEACHER)))
        y = labels.prefer_first.expand(pairs)
        answered = labels.answered.expand(pairs)
        tie = (y == 0.5).double() if isinstance(labeller, Teacher) else None
        return cls.of(first, second, y, answered, source=f"sampled({teacher}, {pairs} pairs)", tie=tie)

    @classmethod
    def from_store(cls, directory: str | Path) -> PreferenceData:
        """A person's answers in the labels store in ``directory`` (``1``: first preferred, ``2``: second,
        ``=``: 0.5, marked ``tie``; skipped answers stay with weight 0)."""
        with LabelStore(directory) as store:
            answers = store.answers()
        if not answers:
            raise ValueError(f"{directory}: the labels store holds no answers")
        first, second = stack([a.first for a in answers]), stack([a.second for a in answers])
        labels = [a.prefer_first for a in answers]
        y = torch.tensor([0.0 if v is None else v for v in labels], dtype=torch.float64)
        answered = torch.tensor([v is not None for v in labels])
        return cls.of(first, second, y, answered, source=f"from_store({directory})", tie=(y == 0.5) & answered)

    @classmethod
    def population(cls, task: Any, teacher: str | Teacher = "boltzmann:1", *, policy: torch.Tensor | None = None,
                   length: int | None = None, scores: torch.Tensor | None = None,
                   max_pairs: int = 1 << 25) -> PreferenceData:
        """Every pair of distinct trajectories of ``length`` steps (default the horizon) that ``policy``
        (default uniform; ``[S, A]`` or ``[H, S, A]``) rolls out, each pair {i, j} once with weight
        ``p_i·p_j`` normalised over the pairs (the probability that two independent rollouts are i and j,
        given they differ), and ``prefer_first`` the simulated teacher's *exact* probability of preferring
        i (:func:`~rlhf.policies.exact.exact_preferences`; a skipped pair gets weight 0). ``scores``:
        the teacher's step scores ``[S]``, ``[S, A]`` or time-indexed ``[T, S, A]`` (default its preference
        model's). ValueError when the task is too large to enumerate.

        A teacher with a tie model (``rao-kupper:θ``, ``davidson:ν``) answers each pair first, second or
        equal with the model's exact probabilities of ``β·margin`` (after ``equal``, which makes the pair
        a tie, and ``mistake``, which swaps first and second and leaves a tie a tie, as its draws do):
        ``tie`` is P(equal) and ``prefer_first`` is P(first) + P(equal)/2, the mean of its labels."""
        labeller = Teacher.parse(teacher) if isinstance(teacher, str) else teacher
        if not isinstance(labeller, Teacher):
            raise ValueError(f"a population needs a simulated teacher's exact probabilities (an rlhf.Teacher or "
                             f"its spec), got {teacher!r}")
        mdp, T = task.mdp, length or task.horizon
        trajectories, probs = enumerate_trajectories(mdp, policy, T)
        N = probs.shape[0]
        if max_pairs < N * (N - 1) // 2:
            raise ValueError(f"{N} trajectories make {N * (N - 1) // 2} pairs, more than max_pairs={max_pairs}")
        truths = truths_of(task)
        table = labeller.preference_model.step_scores(truths) if scores is None else torch.as_tensor(scores)
        step_scores = _time_indexed_scores(table, trajectories) if table.dim() == 3 and scores is not None \
            else step_rewards(table, trajectories)
        low, high = (float(table.min()), float(table.max())) if scores is not None else \
            labeller.preference_model.score_range(truths)
        i, j = torch.triu_indices(N, N, 1)
        p_first, answered = exact_preferences(labeller, step_scores, i, j, (low, high))
        tie = None
        if labeller.tie_model != "none":
            p_first, tie = exact_tie_outcomes(labeller, step_scores, i, j, (low, high))
        weight = probs[i] * probs[j] * answered
        total = float(weight.sum())
        return cls(trajectories, i, j, p_first, weight / total if total > 0 else weight, is_population=True,
                   source=f"population({labeller}, {N} trajectories)", tie=tie)


def exact_tie_outcomes(teacher: Teacher, step_scores: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                       score_range: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prefer_first[P], tie[P])`` float64, exact, of a teacher with a tie model on pairs ``(first[p],
    second[p])`` of trajectories with step scores ``step_scores[N, T]``: its three outcomes' probabilities
    (:func:`rlhf.preferences.ties.tie_probabilities` of ``β·m``, m the myopic-weighted margin), a pair
    within the ``equal`` threshold tied, then mistakes swapping first and second; ``prefer_first`` counts
    a tie as ½ (see :meth:`PreferenceData.population`)."""
    T = step_scores.shape[-1]
    scores = step_scores.double()
    plain = scores.sum(-1)
    weighted = plain if teacher.myopic == 1.0 else \
        (scores * teacher.myopic ** torch.arange(T - 1, -1, -1, dtype=torch.float64)).sum(-1)
    win, lose, tie = tie_probabilities(teacher.tie_model, teacher.beta * (weighted[first] - weighted[second]),
                                       log_tie_param(teacher.tie_model, teacher.tie_param))
    if teacher.equal:
        low, high = score_range
        scale = T * (high - low) if high > low else 1.0
        normalised = (plain - T * low) / scale
        equal = (normalised[first] - normalised[second]).abs() < teacher.equal
        win, lose, tie = torch.where(equal, 0.0, win), torch.where(equal, 0.0, lose), torch.where(equal, 1.0, tie)
    if teacher.mistake:
        win, lose = win + teacher.mistake * (lose - win), lose + teacher.mistake * (win - lose)
    return win + tie / 2, tie


def per_seed(data: Any, seeds: Sequence[int], rankings: bool = False) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """``(seeds, datasets)``: one dataset per seed (``data`` repeated when it is one), validated:
    :class:`PreferenceData`, or with ``rankings`` also :class:`rlhf.RankingData`."""
    from .ranking_data import RankingData  # it imports this module

    kinds: tuple[type, ...] = (PreferenceData, RankingData) if rankings else (PreferenceData,)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    datasets = (data,) * len(seeds) if isinstance(data, kinds) else tuple(data)
    if len(datasets) != len(seeds):
        raise ValueError(f"one dataset per seed: {len(datasets)} datasets for {len(seeds)} seeds")
    if not all(isinstance(d, kinds) for d in datasets):
        raise ValueError("data must be rlhf.PreferenceData" + (" or rlhf.RankingData" if rankings else "")
                         + " (or one per seed)")
    return seeds, datasets


def stack(trajectories: Sequence[Trajectories]) -> Trajectories:
    """``[n, ...]``: equally shaped trajectories stacked along a new first dimension."""
    return Trajectories(torch.stack([t.states for t in trajectories]), torch.stack([t.actions for t in trajectories]))


def _two(pair: Any) -> tuple[Any, Any]:
    if isinstance(pair, str) or len(pair) != 2:
        raise ValueError(f"each pair must be (preferred, other), got {pair!r}")
    return pair[0], pair[1]


def _trajectory(task: Any, side: Any) -> Trajectories:
    """One ``[T]`` trajectory from a pair's side (see :meth:`PreferenceData.from_pairs`)."""
    mdp = task.mdp
    if isinstance(side, Trajectories):
        return Trajectories(side.states.long(), side.actions.long())
    if isinstance(side, str):
        vocab = getattr(task, "vocab", None)
        if vocab is None:
            raise ValueError(f"a string {side!r} names tokens of a string task; {task!r} has no vocab")
        unknown = sorted(set(side) - set(vocab))
        if unknown:
            raise ValueError(f"{side!r} has tokens outside vocab {vocab!r}: {''.join(unknown)!r}")
        side = [vocab.index(c) for c in side]
    if isinstance(side, tuple) and len(side) == 2 and not isinstance(side[0], int):
        states, actions = (torch.as_tensor(list(x), dtype=torch.int64) for x in side)
        if states.shape != actions.shape:
            raise ValueError(f"states and actions must have the same length, got {tuple(states.shape)} and "
                             f"{tuple(actions.shape)}")
        return Trajectories(states, actions)
    actions = torch.as_tensor(list(side), dtype=torch.int64)
    if actions.dim() != 1 or actions.numel() == 0:
        raise ValueError(f"an action sequence must be a non-empty sequence of integers, got {side!r}")
    if bool((actions < 0).any()) or bool((actions >= mdp.num_actions).any()):
        raise ValueError(f"actions must lie in [0, {mdp.num_actions}), got {actions.tolist()}")
    starts = torch.nonzero(mdp.start > 0).squeeze(-1)
    if not mdp.deterministic or starts.numel() != 1:
        raise ValueError("actions alone fix the states only in a deterministic MDP with one start state: "
                         "give (states, actions)")
    visited = [int(starts[0])]
    for a in actions[:-1].tolist():
        visited.append(int(mdp.action_successors[a, visited[-1]]))
    return Trajectories(torch.tensor(visited, dtype=torch.int64), actions)


def _time_indexed_scores(table: torch.Tensor, traj: Trajectories) -> torch.Tensor:
    """``[N, T]`` scores ``table[t, s_t, a_t]`` of a time-indexed table ``[T', S, A]`` (``T' >= T``)."""
    N, T = traj.states.shape
    if table.shape[0] < T:
        raise ValueError(f"time-indexed scores need at least {T} steps, got {tuple(table.shape)}")
    t = torch.arange(T).expand(N, T)
    return table[t, traj.states, traj.actions]
