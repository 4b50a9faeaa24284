"""Learner models: how a learner fits preferences and acts on what it fitted (``learner_model=``).

A preference model (:mod:`rlhf.preferences.models`) says what a teacher's labels mean; a learner
model is a learner's strategy under one of them: the model it fits (the task's reward model, or a
free table), the fitter, the scores its Bradley–Terry margins sum, how it acts, and which metrics
describe it. Two learners can assume the same preference model and still fit different things:

* ``partial``: Bradley–Terry on segments' summed learned reward (partial return), planned on with
  soft value iteration, ``softmax(τ·Q)`` (both seeds' learner; the default);
* ``advantage`` (Knox et al., 2024, "Learning optimal advantage from preferences and mistaking it
  for reward"): the regret preference model fitted directly on a free table Â[S, A] of optimal
  advantages, summed over a segment's steps, and acted on without planning, ``softmax(τ·Â)``;
* ``regret`` (Knox et al., 2022, "Models of human preference for learning reward functions"; in
  :mod:`rlhf.learning.regret`): a reward fitted through the regret preference model, the
  segments' summed optimal advantages *under the learned reward*, then planned on like ``partial``.

Adding one: a subclass (one file) and one :func:`register_learner_model` call; configurations then
name it (``learner_model="..."``, a sweep's ``learner_models`` axis).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.planning import soft_optimal_policy, soft_policy
from ..core.registry import Registry
from ..core.rollout import Trajectories
from ..core.truths import TaskTruths
from ..metrics import advantage_metrics
from .learner import RewardLearner
from .rankings import RankingLearner
from .rewards import LearnedReward, RewardModel, TableReward

if TYPE_CHECKING:    # types only: the task protocol and the configuration live in a higher layer
    from ..training.config import TrainConfig
    from ..training.protocol import Task

Features = Callable[[Trajectories], torch.Tensor]
"""``features(traj) -> [..., n, T]`` int64: each step's index into a flat score table."""


@dataclass(frozen=True)
class LearnerModel(ABC):
    """A learner's strategy (see the module docstring). The defaults are the partial-return
    learner's: the task's reward model, fitted by the closed-form :class:`RewardLearner` on its summed
    reward, planned on, scored by the task's own metrics."""

    name: ClassVar[str]
    """What configurations call it (``learner_model=``)."""
    preference_model: ClassVar[str]
    """The preference model it assumes (a name in :data:`rlhf.PREFERENCE_MODELS`): its held-out
    ``pref_accuracy`` is agreement with that model's noiseless teacher."""

    def __str__(self) -> str:
        return self.name

    def new_model(self, task: Task, keys: Keys) -> RewardModel:
        """A fresh model per key (``theta[*keys.shape, F]``): the task's reward model."""
        return task.new_reward_model(keys)

    truth_loss: ClassVar[bool] = True
    """Whether a run's metrics compare its fit with the truth on the pairs it last fitted (``loss_gap``,
    ``loss_above_truth``: :func:`rlhf.training.phases.truth_loss_metrics`): for a learner whose
    table is a reward (the task's reward model), scored like the true reward through its preference
    model. Off for the advantage learner: its table is a free Â, its Bradley–Terry loss is convex (linear
    margins, as the partial learner's: the comparison the metric needs), and its metrics describe an
    advantage (:func:`rlhf.metrics.advantage_metrics`)."""

    ranks: ClassVar[bool] = True
    """Whether it fits rankings and ties (``rank > 2`` or ``ties``: its fitter is then a
    :class:`~rlhf.learning.rankings.RankingLearner`); a configuration refuses them otherwise."""

    def learner(self, model: RewardModel, task: Task, config: TrainConfig, may_skip: bool,
                may_tie: bool = True) -> RewardLearner:
        """The fitter of ``model`` under ``config`` (its ``learner`` settings and ``fit``; for rankings
        and ties, its ``rank``, ``rank_learner`` and tie fields, ``may_tie``: whether the labeller's
        rankings can hold ties)."""
        if config.ranked:
            return RankingLearner(model, config.learner, rank=config.rank, rule=config.rank_learner,
                                  ties=config.ties, tie_param=config.tie_param, tie_fit=config.tie_fit,
                                  may_tie=may_tie, may_skip=may_skip, fit=config.fit)
        return RewardLearner(model, config.learner, may_skip=may_skip, fit=config.fit)

    def scores(self, learned: LearnedReward, task: Task, config: TrainConfig, batch_dims: int,
               ) -> tuple[torch.Tensor, Features]:
        """``(table[..., F], features)``: what this learner's Bradley–Terry margins sum, a segment's
        ``Σ_t table[features_t]`` (leading ``batch_dims`` dimensions: seeds, or seeds and members).
        By default the learned table itself, indexed by the model's features."""
        return learned.reward().flatten(batch_dims), learned.features

    def policy(self, mdp: TabularMDP, learned: torch.Tensor, horizon: int, discount: float,
               temperature: float) -> torch.Tensor:
        """``pi[..., S, A]``: how it acts on its learned table ``learned[..., S, A or 1]``; by default
        ``softmax(τ·Q)`` of soft value iteration on it (planning on a reward)."""
        return soft_optimal_policy(mdp, learned, horizon, discount, temperature)

    def metrics(self, task: Task, truths: TaskTruths, reward_model: Any, config: TrainConfig) -> dict[str, float]:
        """One seed's convergence metrics of its model (``reward_model[k]``); by default the task's own
        (:meth:`~rlhf.Task.convergence_metrics`): the learned table is a reward."""
        return task.convergence_metrics(reward_model, config)


@dataclass(frozen=True)
class PartialLearner(LearnerModel):
    """Partial return: fit a reward by Bradley–Terry on segments' summed learned reward; plan on it."""

    name: ClassVar[str] = "partial"
    preference_model: ClassVar[str] = "partial"


@dataclass(frozen=True)
class AdvantageLearner(LearnerModel):
    """Knox et al. (2024): fit a free table Â[S, A] by Bradley–Terry on segments' summed Â (the regret
    model with Â standing in for A*), and act on it directly, ``softmax(τ·Â)`` (greedy at τ = ∞)."""

    name: ClassVar[str] = "advantage"
    preference_model: ClassVar[str] = "regret"
    truth_loss: ClassVar[bool] = False

    def new_model(self, task: Task, keys: Keys) -> RewardModel:
        """A free ``[S, A]`` table (standard normal draws), whatever the task's reward model."""
        return TableReward(task.mdp.num_states, task.mdp.num_actions, keys)

    def policy(self, mdp: TabularMDP, learned: torch.Tensor, horizon: int, discount: float,
               temperature: float) -> torch.Tensor:
        """The Boltzmann policy ``softmax(τ·Â)`` (no planning: Â is already what planning would give)."""
        return soft_policy(learned, temperature)

    def metrics(self, task: Task, truths: TaskTruths, reward_model: Any, config: TrainConfig) -> dict[str, float]:
        """The greedy policy's and the distance from A* (:func:`rlhf.metrics.advantage_metrics`): a learned
        advantage is not a reward, so the task's reward metrics do not describe it."""
        return advantage_metrics(truths, reward_model.reward(), config.discount)


LEARNER_MODELS: Registry[LearnerModel] = Registry("learner model")
"""Every registered learner model by name, in registration order (a read-only mapping)."""


def register_learner_model(model: LearnerModel) -> LearnerModel:
    """Make ``model`` known by its name to configurations (``learner_model=``); returns it."""
    return LEARNER_MODELS.register(model.name, model)


def learner_model(name: str | LearnerModel) -> LearnerModel:
    """The registered learner model of that name (a model is returned as it is); ValueError naming the
    known ones."""
    return name if isinstance(name, LearnerModel) else LEARNER_MODELS.lookup(name)


PARTIAL = register_learner_model(PartialLearner())
ADVANTAGE = register_learner_model(AdvantageLearner())
