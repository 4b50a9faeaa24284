"""The one labeller protocol: what the training loop asks (a :class:`Query`) and what it gets back
(:class:`Labels`), for simulated teachers (:class:`rlhf.Teacher`), a person's recorded answers
(:class:`rlhf.RecordedTeacher`) and any labeller of a user's own.

Shapes: ``[..., B, T]`` for the B pairs' segments of T steps, leading dimensions seeds; a ranking
query (``rank=K > 2``) has ``[..., B, K, T]`` for its B queries of K segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from ..core.keys import Keys
from ..core.rollout import Trajectories


@dataclass(frozen=True)
class Labels:
    """A labeller's answers to B pairs, for each seed of a batch (leading dimensions)."""

    prefer_first: torch.Tensor
    """[..., B] float in [0, 1], soft label P(first preferred)."""
    answered: torch.Tensor
    """[..., B] bool, False where the labeller skipped the pair."""
    entropy: torch.Tensor
    """[...] mean entropy (nats) of the labeller's preference distribution over answered pairs
    (0 where none was answered)."""
    ranking: torch.Tensor | None = None
    """[..., B, K] int64 for a ranking query: each query's segments, best first (None for pairs:
    ``prefer_first`` says it; for a ranking ``prefer_first`` is what it says of segments 0 and 1)."""
    tied: torch.Tensor | None = None
    """[..., B, K − 1] bool for a ranking query: the segments at positions j and j + 1 of the ranking
    are equal (ties chain: :mod:`rlhf.preferences.rankings`)."""

    def __getitem__(self, index: int | slice | torch.Tensor) -> Labels:
        """Seed ``index``'s (or a selection of seeds') labels."""
        return Labels(self.prefer_first[index], self.answered[index], self.entropy[index],
                      None if self.ranking is None else self.ranking[index],
                      None if self.tied is None else self.tied[index])


@dataclass(frozen=True)
class Query:
    """One round's pairs, as a labeller is asked them."""

    first: Trajectories
    """[..., B, T] each pair's first segment."""
    second: Trajectories
    """[..., B, T] each pair's second segment."""
    scores_1: torch.Tensor
    """[..., B, T] what each step of the first segments is worth under the labeller's preference
    model (its ``preference_model``'s step scores: the true reward unless it says otherwise)."""
    scores_2: torch.Tensor
    """[..., B, T] the same for the second segments."""
    score_range: tuple[float, float]
    """(worst, best) step score of the task, for normalising returns."""
    keys: Keys
    """The labeller's random streams, one per seed (shape ``[...]``)."""
    asked_before: int = 0
    """Pairs the run asked in earlier rounds: these are its pairs ``asked_before`` … ``asked_before + B − 1``
    (queries, for a ranking query)."""
    segments: Trajectories | None = None
    """[..., B, K, T] for a ranking query (``rank=K > 2``): every segment of each query (``first`` and
    ``second`` are its segments 0 and 1); None for pairs."""
    segment_scores: torch.Tensor | None = None
    """[..., B, K, T] the step scores of ``segments`` (as ``scores_1``), None for pairs."""


def mean_over_answered(values: torch.Tensor, answered: torch.Tensor | None = None) -> torch.Tensor:
    """``[...]`` the mean of per-pair ``values[..., B]`` (a preference's entropy): over the answered pairs
    where ``answered`` is given (0 where none is), else over all of them."""
    if answered is None:
        return values.mean(-1)
    return torch.where(answered, values, 0.0).sum(-1) / answered.sum(-1).clamp(min=1)


@runtime_checkable
class Labeller(Protocol):
    """Anything that answers preference queries: a simulated teacher, a subclass of
    :class:`rlhf.Teacher`, recorded human labels, or an object of your own.

    The loop also reads optional attributes: ``preference_model`` (a
    :class:`~rlhf.preferences.models.PreferenceModel`: which step scores the query carries; default
    partial return, the true reward), ``may_skip`` (whether some pairs can come back unanswered,
    so the learner must mask them; default True), ``ranks`` (whether it answers ranking queries of
    K > 2 segments with ``Labels.ranking``; default False) and ``may_tie`` (whether an answer can be a
    tie, a label 0.5 or tied positions of a ranking; default True).
    """

    def answer(self, query: Query) -> Labels:
        """Answer the query's B pairs for each seed."""
        ...


class ScoresLabeller:
    """A labeller written for the earlier protocol, ``label(scores_1, scores_2, score_range, keys) ->
    Labels`` (the step scores of the two segments ``[..., B, T]``, the task's score range, the keys),
    answering queries: :meth:`rlhf.TrainConfig.labeller` wraps such an object, so labellers written
    before :class:`Query` existed keep working. Its ``preference_model`` is the object's, or its older
    ``model`` name; ``may_skip`` and ``str()`` are the object's."""

    def __init__(self, labeller: object) -> None:
        self.labeller = labeller
        self.preference_model = getattr(labeller, "preference_model", getattr(labeller, "model", "partial"))
        self.may_skip = bool(getattr(labeller, "may_skip", True))

    def answer(self, query: Query) -> Labels:
        label = self.labeller.label  # type: ignore[attr-defined]
        return label(query.scores_1, query.scores_2, query.score_range, query.keys)

    def __str__(self) -> str:
        return str(self.labeller)


def answers_queries(labeller: object) -> bool:
    """Whether ``labeller`` can label pairs: it has ``answer(query)``, or the earlier ``label(...)``."""
    return isinstance(labeller, Labeller) or callable(getattr(labeller, "label", None))
