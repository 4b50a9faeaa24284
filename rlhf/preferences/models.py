"""Preference models: what a segment is worth to whoever compares two of them (Knox et al., 2022,
"Models of human preference for learning reward functions").

A preference model gives each step a score ``s[S]`` or ``s[S, A]`` and compares two segments
σ₁, σ₂ of equal length by their summed scores, Bradley–Terry::

    m = Σ_t s(σ₁_t) − Σ_t s(σ₂_t)          P(σ₁ ≻ σ₂) = σ(β·m)          H = −p ln p − (1 − p) ln(1 − p)

* ``partial`` (partial return, the default): s is the true reward r.
* ``regret``: s is the true reward's optimal advantage A*(s, a) = Q*(s, a) − max_b Q*(s, b) ≤ 0, so
  m is minus the difference of the segments' regrets.

A teacher scores steps with its model's :meth:`PreferenceModel.step_scores`. How a learner fits
labels under a model and acts on what it fitted is a *learner model*
(:mod:`rlhf.learning.learner_models`: ``partial``; Knox et al.'s 2024 ``advantage`` and 2022
``regret`` learners both assume the regret model). Adding a preference model: a subclass here and one
:func:`register_preference_model` call; teacher specs then name it (``regret+boltzmann:1``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..core import batched
from ..core.registry import Registry
from ..core.truths import TaskTruths


def bradley_terry(margin: torch.Tensor) -> torch.Tensor:
    """``P(first preferred) = σ(m)`` of margins ``m[...]`` (Bradley–Terry), batch-invariant
    (:func:`rlhf.core.batched.sigmoid`)."""
    return batched.sigmoid(margin)


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """``H(p) = −p·ln p − (1 − p)·ln(1 − p)`` in nats of ``p[...]`` (0 at p = 0 and 1)."""
    q = 1 - p
    return -(torch.xlogy(p, p) + torch.xlogy(q, q))


def score_margins(table: torch.Tensor, features_1: torch.Tensor, features_2: torch.Tensor) -> torch.Tensor:
    """``[..., n]`` the Bradley–Terry logit of a learned score table: ``Σ_t table[f₁_t] − Σ_t table[f₂_t]``.

    ``table[..., F]``: scores by feature (a learned reward or Â, flattened; leading dimensions seeds,
    or seeds and ensemble members); ``features_i[..., n, T]``: the feature of every step of each pair's
    segment i (a reward model's ``features``), broadcast against the table's leading dimensions. Each
    segment's sum is over a contiguous ``[..., n, T]``, so it is the same wherever the pair sits.
    """
    *lead, _ = table.shape
    n, T = features_1.shape[-2:]

    def returns(features: torch.Tensor) -> torch.Tensor:
        index = features.reshape(*features.shape[:-2], n * T).expand(*lead, n * T)
        return torch.gather(table, -1, index).view(*lead, n, T).sum(-1)

    return returns(features_1) - returns(features_2)


@dataclass(frozen=True)
class PreferenceModel(ABC):
    """A preference model (see the module docstring). Subclasses set ``name`` and say what a step is
    worth (:meth:`step_scores`); the Bradley–Terry probability and its entropy are shared."""

    name: ClassVar[str]
    """What teacher specs call it (``regret+boltzmann:1``)."""

    def __str__(self) -> str:
        return self.name

    @abstractmethod
    def step_scores(self, truths: TaskTruths, discount: float = 1.0) -> torch.Tensor:
        """``s[S]`` or ``s[S, A]``: what a step is worth to a teacher with this model (γ: the discount
        the truth is planned with, where the scores depend on it)."""

    @abstractmethod
    def score_range(self, truths: TaskTruths, discount: float = 1.0) -> tuple[float, float]:
        """(worst, best) step score, for normalising a teacher's returns (its ``skip`` and ``equal``)."""

    def probability(self, margin: torch.Tensor) -> torch.Tensor:
        """``P(first preferred)`` of score margins ``m[...]`` (β already applied): Bradley–Terry."""
        return bradley_terry(margin)

    def entropy(self, p_first: torch.Tensor) -> torch.Tensor:
        """The entropy (nats) of the preference distribution ``P(first) = p[...]``."""
        return binary_entropy(p_first)


@dataclass(frozen=True)
class PartialReturn(PreferenceModel):
    """Partial return: a segment is worth its summed true reward."""

    name: ClassVar[str] = "partial"

    def step_scores(self, truths: TaskTruths, discount: float = 1.0) -> torch.Tensor:
        return truths.true_reward

    def score_range(self, truths: TaskTruths, discount: float = 1.0) -> tuple[float, float]:
        return truths.reward_range


@dataclass(frozen=True)
class Regret(PreferenceModel):
    """Regret: a segment is worth its summed optimal advantage A* of the true reward (minus its regret)."""

    name: ClassVar[str] = "regret"

    def step_scores(self, truths: TaskTruths, discount: float = 1.0) -> torch.Tensor:
        return truths.optimal_advantages(discount)

    def score_range(self, truths: TaskTruths, discount: float = 1.0) -> tuple[float, float]:
        return float(truths.optimal_advantages(discount).min()), 0.0


PREFERENCE_MODELS: Registry[PreferenceModel] = Registry("preference model")
"""Every registered preference model by name, in registration order (a read-only mapping)."""


def register_preference_model(model: PreferenceModel) -> PreferenceModel:
    """Make ``model`` known by its name to configurations and teacher specs; returns it."""
    return PREFERENCE_MODELS.register(model.name, model)


def preference_model(name: str | PreferenceModel) -> PreferenceModel:
    """The registered model of that name (a model is returned as it is); ValueError naming the known ones."""
    if isinstance(name, PreferenceModel):
        return name
    return PREFERENCE_MODELS.lookup(name)


PARTIAL_RETURN = register_preference_model(PartialReturn())
REGRET = register_preference_model(Regret())
