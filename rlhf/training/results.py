"""What a run gives back: a round's record for callbacks, and each seed's result."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.rollout import Trajectories
from ..learning.rewards import LearnedReward
from ..preferences.labeller import Labels
from .config import TrainConfig

HISTORY_KEYS = ("true_return", "loss", "entropy", "answered")
"""What :attr:`RunResult.history` holds per round."""


@dataclass(frozen=True)
class RoundRecord:
    """What one round saw; passed to ``on_round`` callbacks (e.g. for figures).

    From :func:`rlhf.train` it holds one seed's tensors; from :func:`rlhf.train_batch` the
    batch's, with the seed dimension in front (``record[k]`` is seed k's). Its
    tensors are inference-mode tensors (the loop runs under ``torch.inference_mode``):
    read them freely, ``clone()`` to keep and modify."""

    index: int
    first: Trajectories
    """``[..., n, T]`` the round's pairs' first segments."""
    second: Trajectories
    """``[..., n, T]`` their second segments."""
    labels: Labels
    """The labeller's answers, ``[..., n]``."""
    reward_model: LearnedReward
    """The learned model after the round's update (the ensemble's mean where there is one)."""
    segments: Trajectories | None = None
    """``[..., n, K, T]`` every segment of the round's rankings (``rank > 2``; ``first`` and ``second``
    are its segments 0 and 1), None for pairs."""

    def __getitem__(self, k: int) -> RoundRecord:
        return RoundRecord(self.index, self.first[k], self.second[k], self.labels[k], self.reward_model[k],
                           None if self.segments is None else self.segments[k])


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`rlhf.train` for one seed."""

    config: TrainConfig
    seed: int
    history: dict[str, list[float]]
    """Per round: ``true_return`` (exact expected true return of the policy acting on the learned
    model after the round's update), ``loss`` (Bradley–Terry, or the ranking or tie learner's, last
    epoch), ``entropy`` (the labeller's mean preference entropy, nats), ``answered`` (pairs, or
    rankings, labelled)."""
    metrics: dict[str, float]
    """Task metrics (see the task's ``convergence_metrics``; for a learner whose model is not a
    reward, its preference model's :meth:`~rlhf.preferences.models.PreferenceModel.metrics`) plus
    ``pref_accuracy``; with a tie model (``ties``), ``fitted_tie_param``: the learner's θ or ν (fitted,
    with ``tie_fit="learned"``; the members' mean in an ensemble; not ``tie_param``, the configuration
    field it starts from, which a sweep's table keeps beside the metrics); for a learner that fits a
    reward on pairs (partial, regret; one model per seed, no rankings or ties), ``loss_gap``: its final
    model's mean Bradley–Terry loss on the pairs its last update fitted (``fit="round"``: the last round's;
    ``"all"``: every pair so far; answered ones) minus the true reward's, scored through the learner's
    preference model (its summed reward; its optimal advantages A*), float64, and ``loss_above_truth``:
    1.0 where that gap is > 0, else 0.0 (:func:`rlhf.training.phases.truth_loss_metrics`)."""
    reward: torch.Tensor
    """The final learned reward (or, for the regret learner, Â), [S] or [S, A]."""


def history_rows(history: dict[str, list[torch.Tensor]], rounds: int) -> dict[str, list[list[float]]]:
    """``{key: [per seed: the first `rounds` values]}`` of a batch's history (one ``[B]`` tensor a round)."""
    return {k: torch.stack(v[:rounds], -1).tolist() for k, v in history.items()}
