"""The preference-learning loop: plan → roll out pairs → teacher labels → reward update."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .learner import RewardLearner, preference_logits
from .metrics import preference_accuracy
from .planning import policy_return, soft_policy, soft_value_iteration, uniform_policy
from .rewards import RewardModel
from .rollout import Trajectories, rollout, step_rewards
from .task import Task, TrainConfig
from .teachers import Labeller, Labels

HISTORY_KEYS = ("true_return", "loss", "entropy", "answered")


@dataclass(frozen=True)
class RoundRecord:
    """What one round saw; passed to ``on_round`` callbacks (e.g. for figures).

    Its tensors are inference-mode tensors (the loop runs under
    ``torch.inference_mode``): read them freely, ``clone()`` to keep and modify."""

    index: int
    first: Trajectories
    second: Trajectories
    labels: Labels
    model: RewardModel


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`train`."""

    config: TrainConfig
    seed: int
    history: dict[str, list[float]]
    """Per round: ``true_return`` (exact expected true return of the policy planned on
    the learned reward after the round's update), ``loss`` (Bradley–Terry, last epoch),
    ``entropy`` (teacher's mean preference entropy, nats), ``answered`` (pairs labelled)."""
    metrics: dict[str, float]
    """Task metrics (see the task's ``convergence_metrics``) plus ``pref_accuracy``."""
    reward: torch.Tensor
    """The final learned reward, [S] or [S, A]."""


@dataclass(frozen=True)
class _Streams:
    init: torch.Generator
    sample: torch.Generator
    teacher: torch.Generator
    heldout: torch.Generator


def _streams(seed: int) -> _Streams:
    """Independent generators per purpose, so e.g. a new teacher leaves the sampled states alone."""
    children = np.random.SeedSequence(seed).spawn(4)
    gens = [torch.Generator().manual_seed(int(c.generate_state(1, np.uint64)[0])) for c in children]
    return _Streams(*gens)


def plan(task: Task, reward: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """``pi[s, a]``, the soft-optimal policy for ``reward`` over the task's horizon."""
    q = soft_value_iteration(task.mdp, reward, task.horizon, config.discount, config.temperature)
    return soft_policy(q, config.temperature)


def train(
    task: Task,
    teacher: str | Labeller | None = None,
    budget: int | None = None,
    seed: int = 0,
    *,
    config: TrainConfig | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
    **overrides: object,
) -> RunResult:
    """Learn the task's reward from ``budget`` preference pairs.

    Settings come from ``config`` (default: the task's seed defaults), then
    ``teacher`` (a spec such as ``"boltzmann:1"``, a :class:`Teacher`, or any
    :class:`Labeller`), ``budget`` and any other flat :class:`TrainConfig` field
    given as a keyword (``lr=0.05``, ``optimizer="sgd"``: the keys a sweep's TOML
    accepts); an unknown keyword raises ``TypeError`` naming it.

    Deterministic: the same arguments give bit-identical results; no global RNG
    is read or advanced. Runs on one torch thread (the loop is dispatch-bound:
    a thread pool on tiny tensors only adds synchronisation, and one thread makes
    results independent of the caller's setting), restoring the caller's thread
    count on return.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if teacher is not None:
        overrides["teacher"] = teacher
    if budget is not None:
        overrides["budget"] = budget
    cfg = (config or task.defaults).replace(**overrides)
    # No autograd anywhere in the loop (the learner's gradient is closed-form); inference
    # mode skips autograd's bookkeeping on every op, about 13% of a seed run's time.
    with single_threaded(), torch.inference_mode():
        history, metrics, reward = _train(task, cfg, _streams(seed), on_round)
    return RunResult(cfg, seed, history, metrics, reward.clone())   # a clone outside is a normal tensor


@contextmanager
def single_threaded() -> Iterator[None]:
    """torch on one intra-op thread inside the block; the caller's setting after it."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _train(task: Task, cfg: TrainConfig, streams: _Streams, on_round: Callable[[RoundRecord], None] | None,
           ) -> tuple[dict[str, list[float]], dict[str, float], torch.Tensor]:
    """The loop itself: per-round history, final metrics, final learned reward."""
    judge = cfg.labeller()
    model = task.new_reward_model(streams.init)
    learner = RewardLearner(model, cfg.learner)
    length = cfg.segment_length or task.horizon
    per_round = cfg.pairs_per_round or cfg.budget
    uniform = uniform_policy(task.mdp)
    policy = plan(task, model.reward(), cfg)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    for index in range(cfg.rounds):
        n = min(per_round, cfg.budget - index * per_round)
        behaviour = policy if cfg.sampler == "on-policy" else uniform
        first, second = rollout(task.mdp, behaviour, 2 * n, length, streams.sample).split()
        labels = judge.label(step_rewards(task.true_reward, first), step_rewards(task.true_reward, second),
                             task.reward_range(), streams.teacher)
        keep = labels.answered
        loss = float("nan")
        if keep.all():
            loss = learner.update(first, second, labels.prefer_first)
        elif keep.any():
            loss = learner.update(_select(first, keep), _select(second, keep), labels.prefer_first[keep])
        policy = plan(task, model.reward(), cfg)
        history["true_return"].append(policy_return(task.mdp, policy, task.true_reward, length))
        history["loss"].append(loss)
        history["entropy"].append(labels.entropy)
        history["answered"].append(float(keep.sum()))
        if on_round is not None:
            on_round(RoundRecord(index, first, second, labels, model))

    metrics = task.convergence_metrics(model, cfg)
    metrics["pref_accuracy"] = _heldout_accuracy(task, model, cfg, length, streams.heldout)
    return history, metrics, model.reward()


def _select(traj: Trajectories, mask: torch.Tensor) -> Trajectories:
    return Trajectories(traj.states[mask], traj.actions[mask])


def _heldout_accuracy(task: Task, model: RewardModel, cfg: TrainConfig, length: int,
                      generator: torch.Generator) -> float:
    """Agreement with the noiseless teacher on fresh pairs.

    Each trajectory comes, by a fair coin, from the soft-optimal policy for the
    true reward or from uniformly random actions, so pairs span good and bad
    behaviour; pairs the truth ranks equal are left out.
    """
    n = 2 * cfg.heldout_pairs
    expert = rollout(task.mdp, plan(task, task.true_reward, cfg), n, length, generator)
    random = rollout(task.mdp, uniform_policy(task.mdp), n, length, generator)
    coin = (torch.rand(n, generator=generator) < 0.5).unsqueeze(-1)
    mixed = Trajectories(torch.where(coin, expert.states, random.states),
                         torch.where(coin, expert.actions, random.actions))
    first, second = mixed.split()
    learned = preference_logits(model.reward(), first, second)
    truth = preference_logits(task.true_reward, first, second)
    return preference_accuracy(learned, truth)
