"""The task protocol: what the loop, the teachers and the harness need of a task."""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..learning.rewards import RewardModel
from .config import TrainConfig

M = TypeVar("M", bound=RewardModel)
"""A task's reward model type: what its ``new_reward_model`` makes and its ``convergence_metrics`` reads."""


@runtime_checkable
class Task(Protocol[M]):
    """A finite-horizon tabular preference-learning task.

    Shapes: S states, A actions; rewards ``[S]`` (state) or ``[S, A]``.
    ``isinstance(obj, rlhf.Task)`` checks that the members exist (not their types).

    A task may also hold its :class:`~rlhf.core.truths.TaskTruths` as ``truths`` (the built-in
    tasks do: ``TaskTruths.of(self)``), so that its metrics and every run on it share the values
    derived from the true reward; otherwise each run makes its own.
    """

    name: str
    mdp: TabularMDP
    horizon: int
    true_reward: torch.Tensor
    """[S] or [S, A], what the teacher scores segments with."""
    defaults: TrainConfig
    """The task's default configuration (for the two teaching examples' tasks, their presets')."""

    def new_reward_model(self, keys: Keys) -> M:
        """A fresh learned reward per key, parameters ``theta[*keys.shape, F]`` on ``keys.device``
        (the task's parametrisation; a random initialisation draws from ``keys``)."""
        ...

    def reward_range(self) -> tuple[float, float]:
        """(worst, best) true step reward, for normalising returns."""
        ...

    def convergence_metrics(self, reward_model: M, config: TrainConfig) -> dict[str, float]:
        """Task-specific metrics of one seed's learned reward (``reward_model[k]``, or the mean of an
        ensemble of them), including ``converged`` (0/1)."""
        ...
