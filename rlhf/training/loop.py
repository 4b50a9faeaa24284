"""The preference-learning loop: plan → roll out pairs → teacher labels → reward update."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.planning import expected_returns, optimal_advantages, soft_policy, soft_value_iteration, uniform_policy
from ..core.rollout import Trajectories, rollout, step_rewards
from ..learning import queries
from ..learning.ensemble import Ensemble, bootstrap_weights, member_keys
from ..learning.learner import RewardLearner
from ..learning.rewards import RewardModel, TableReward
from ..metrics import advantage_metrics, preference_accuracies
from ..preferences.teachers import Labeller, Labels, PairLabeller, Teacher
from .config import TrainConfig
from .protocol import Task

HISTORY_KEYS = ("true_return", "loss", "entropy", "answered")


@dataclass(frozen=True)
class RoundRecord:
    """What one round saw; passed to ``on_round`` callbacks (e.g. for figures).

    From :func:`train` it holds one seed's tensors; from :func:`train_batch` the
    batch's, with the seed dimension in front (``record[k]`` is seed k's). Its
    tensors are inference-mode tensors (the loop runs under ``torch.inference_mode``):
    read them freely, ``clone()`` to keep and modify."""

    index: int
    first: Trajectories
    second: Trajectories
    labels: Labels
    model: RewardModel | Ensemble

    def __getitem__(self, k: int) -> RoundRecord:
        labels = self.labels
        return RoundRecord(self.index, self.first[k], self.second[k],
                           Labels(labels.prefer_first[k], labels.answered[k], labels.entropy[k]), self.model[k])


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`train` for one seed."""

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


INIT, SAMPLE, TEACHER, HELDOUT, BOOTSTRAP = range(5)
"""Purposes of the random streams (:meth:`Keys.fold`): a new teacher leaves the sampled states alone."""
_HELDOUT_KEYS = Keys.from_seeds([0])[0]
"""The held-out pairs' key: the same for every seed."""


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
    device: torch.device | str | None = None,
    **overrides: object,
) -> RunResult:
    """Learn the task's reward from ``budget`` preference pairs, for one seed.

    Settings come from ``config`` (default: the task's seed defaults), then
    ``teacher`` (a spec such as ``"boltzmann:1"``, a :class:`Teacher`, or any
    :class:`Labeller`), ``budget`` and any other flat :class:`TrainConfig` field
    given as a keyword (``lr=0.05``, ``optimizer="sgd"``: the keys a sweep's TOML
    accepts); an unknown keyword raises ``TypeError`` naming it.

    Equal, bit for bit, to the seed's element of :func:`train_batch` over any seeds.
    Deterministic: the same arguments give bit-identical results; no global RNG is read
    or advanced. Runs on one torch thread (the loop is dispatch-bound: a thread pool on
    tiny tensors only adds synchronisation, and one thread makes results independent of
    the caller's setting), restoring the caller's thread count on return. ``device``:
    where the tensors live (default: the task's, i.e. the CPU).
    """
    callback = None if on_round is None else (lambda record: on_round(record[0]))
    return train_batch(task, [seed], teacher, budget, config=config, on_round=callback, device=device,
                       **overrides)[0]


def train_batch(
    task: Task,
    seeds: Sequence[int],
    teacher: str | Labeller | None = None,
    budget: int | None = None,
    *,
    config: TrainConfig | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
    device: torch.device | str | None = None,
    **overrides: object,
) -> list[RunResult]:
    """:func:`train` for many seeds in one tensor program: element k is ``train(task, seed=seeds[k])``.

    Planner, rollouts, teacher, learner and metrics run on ``[len(seeds), ...]`` tensors.
    Random numbers are counter-based (:class:`rlhf.Keys`) and every kernel's result for a
    seed is independent of the batch around it, so a seed's result does not depend on
    which other seeds share its batch. ``on_round`` gets the batch's :class:`RoundRecord`.
    """
    cfg = _config(task, config, teacher, budget, overrides)
    return _run(task, cfg, seeds, [cfg.budget], on_round, device)[cfg.budget]


def train_checkpoints(
    task: Task,
    seeds: Sequence[int],
    budgets: Sequence[int],
    teacher: str | Labeller | None = None,
    *,
    config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    **overrides: object,
) -> dict[int, list[RunResult]]:
    """``{budget: [result per seed]}``, each equal bit for bit to :func:`train_batch` with that budget.

    The budgets that are multiples of ``pairs_per_round`` are checkpoints of one run to the
    largest of them (a run to budget B is the first B / pairs_per_round rounds of any longer
    run: its draws are keyed by round, not by position in a stream), so a learning curve
    costs one run. Any other budget (and every budget when ``pairs_per_round`` is 0, all
    pairs in one round) gets a run of its own.
    """
    cfg = _config(task, config, teacher, None, overrides)
    wanted = sorted(set(budgets))
    per = cfg.pairs_per_round
    shared = [b for b in wanted if per and b % per == 0]
    out: dict[int, list[RunResult]] = {}
    if shared:
        out |= _run(task, cfg.replace(budget=shared[-1]), seeds, shared, None, device)
    for b in wanted:
        if b not in out:
            out |= _run(task, cfg.replace(budget=b), seeds, [b], None, device)
    return {b: out[b] for b in budgets}


def session_pairs(task: Task, config: TrainConfig, seed: int = 0) -> list[tuple[Trajectories, Trajectories]]:
    """The pairs :func:`train` asks with ``config`` and ``seed``, in order, one ``([T], [T])`` pair
    each: what a person labels in a session (``python -m bench label``), so that
    :class:`rlhf.RecordedTeacher` can answer that training run. Only for ``query="uniform"``,
    whose pairs do not depend on the learned reward, so they are known before any answer."""
    if config.query != "uniform":
        raise ValueError(f"a labelling session's pairs must not depend on the answers: query must be 'uniform', "
                         f"got {config.query!r}")
    loop = _Loop(task, config, Keys.from_seeds([seed], device=task.mdp.start.device), [seed])
    uniform = uniform_policy(task.mdp)
    pairs = []
    with single_threaded(), torch.inference_mode():
        for index in range(config.rounds):
            first, second = loop._query(index, config.pairs_in_round(index), uniform)
            pairs += [(first[0][i], second[0][i]) for i in range(len(first[0]))]
    return pairs


def _config(task: Task, config: TrainConfig | None, teacher: str | Labeller | None, budget: int | None,
            overrides: dict[str, object]) -> TrainConfig:
    if teacher is not None:
        overrides["teacher"] = teacher
    if budget is not None:
        overrides["budget"] = budget
    return (config or task.defaults).replace(**overrides)


def _run(task: Task, cfg: TrainConfig, seeds: Sequence[int], checkpoints: list[int],
         on_round: Callable[[RoundRecord], None] | None, device: torch.device | str | None,
         ) -> dict[int, list[RunResult]]:
    seeds = list(seeds)
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not seeds:
        raise ValueError("seeds must name at least one seed, got []")
    task = on_device(task, device)
    keys = Keys.from_seeds(seeds, device=task.mdp.start.device)
    # No autograd anywhere in the loop (the learner's gradient is closed-form); inference
    # mode skips autograd's bookkeeping on every op, about 13% of a seed run's time.
    with single_threaded(), torch.inference_mode():
        return _Loop(task, cfg, keys, seeds).run(checkpoints, on_round)


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


class _Loop:
    """The loop itself, over a batch of seeds: plan → roll out pairs → label → update."""

    def __init__(self, task: Task, cfg: TrainConfig, keys: Keys, seeds: list[int]) -> None:
        self.task, self.cfg, self.keys, self.seeds = task, cfg, keys, seeds
        self.judge = cfg.labeller()
        # a custom labeller may skip unless it says otherwise (a recorded teacher knows)
        judge = self.judge
        self.may_skip = judge.skip > 0 if isinstance(judge, Teacher) else getattr(judge, "may_skip", True)
        self.learns_advantages = cfg.learner_model == "regret"
        self.model: RewardModel | Ensemble
        if cfg.ensemble == 1:
            self.members = self.model = self._new_model(keys.fold(INIT))
        else:                          # members [B, E, F]: the learner fits them as rows, like seeds
            self.members = self._new_model(member_keys(keys.fold(INIT), cfg.ensemble))
            self.model = Ensemble(self.members)
        self.learner = RewardLearner(self.members, cfg.learner, may_skip=self.may_skip)
        self.length = cfg.segment_length or task.horizon
        self.history: dict[str, list[torch.Tensor]] = {k: [] for k in HISTORY_KEYS}
        self.scores, self.score_range = self._teacher_scores()

    def run(self, checkpoints: list[int], on_round: Callable[[RoundRecord], None] | None,
            ) -> dict[int, list[RunResult]]:
        task, cfg, keys = self.task, self.cfg, self.keys
        batch = keys.shape
        uniform = uniform_policy(task.mdp)
        policy = self._plan()
        results: dict[int, list[RunResult]] = {}
        for index in range(cfg.rounds):
            n = cfg.pairs_in_round(index)
            first, second = self._query(index, n, uniform if cfg.query == "uniform" else policy)
            answers = self._label(index, first, second)
            labels = Labels(answers.prefer_first.expand(*batch, n), answers.answered.expand(*batch, n),
                            torch.as_tensor(answers.entropy).expand(batch))      # a custom labeller's shapes too
            loss = self._update(index, first, second, labels)
            policy = self._plan()
            self.history["true_return"].append(expected_returns(task.mdp, policy, task.true_reward, self.length))
            self.history["loss"].append(torch.as_tensor(loss))
            self.history["entropy"].append(labels.entropy)
            self.history["answered"].append(labels.answered.sum(-1).double())
            if on_round is not None:
                on_round(RoundRecord(index, first, second, labels, self.model))
            pairs = index * cfg.round_size + n
            if pairs in checkpoints:
                results[pairs] = self._results(index + 1, cfg.replace(budget=pairs))
        return results

    def _label(self, index: int, first: Trajectories, second: Trajectories) -> Labels:
        """The judge's answers to the round's pairs (given the pairs themselves where it asks for them)."""
        scored = (step_rewards(self.scores, first), step_rewards(self.scores, second), self.score_range,
                  self.keys.fold(TEACHER, index))
        if isinstance(self.judge, PairLabeller):
            return self.judge.label_pairs(first, second, index * self.cfg.round_size, *scored)
        return self.judge.label(*scored)

    def _new_model(self, keys: Keys) -> RewardModel:
        """The task's reward model, or for the regret learner an optimal-advantage table Â[S, A]."""
        if not self.learns_advantages:
            return self.task.new_reward_model(keys)
        return TableReward(self.task.mdp.num_states, self.task.mdp.num_actions, keys)

    def _teacher_scores(self) -> tuple[torch.Tensor, tuple[float, float]]:
        """What a step is worth to the teacher, and the range of that: the true reward, or for a
        regret teacher the true reward's optimal advantages A* (at most 0)."""
        if getattr(self.judge, "model", "partial") != "regret":
            return self.task.true_reward, self.task.reward_range()
        return self._true_advantages, (float(self._true_advantages.min()), 0.0)

    @functools.cached_property
    def _true_advantages(self) -> torch.Tensor:
        """A*[S, A] of the true reward over the task's horizon: the regret teacher's step scores,
        and what the regret learner's Â is measured against."""
        task = self.task
        return optimal_advantages(task.mdp, task.true_reward, task.horizon, self.cfg.discount)

    def _query(self, index: int, n: int, behaviour: torch.Tensor) -> tuple[Trajectories, Trajectories]:
        """The round's n pairs ``[B, n, T]``: rolled out from ``behaviour``, or chosen by an
        active rule from a pool of ``oversample · n`` rolled out from it (:mod:`rlhf.queries`)."""
        cfg, keys = self.cfg, self.keys.fold(SAMPLE, index)
        if cfg.query in queries.SAMPLED_QUERIES:
            return rollout(self.task.mdp, behaviour, 2 * n, self.length, keys).split()
        pool_1, pool_2 = rollout(self.task.mdp, behaviour, 2 * cfg.oversample * n, self.length, keys).split()
        members = self.members.reward().flatten(self.members.theta.dim() - 1)          # [B, (E,) F]
        table = members if cfg.ensemble > 1 else members.unsqueeze(-2)
        chosen = queries.select(cfg.query, n, self.members.features(pool_1), self.members.features(pool_2), table)
        return pool_1.pick(chosen), pool_2.pick(chosen)

    def _update(self, index: int, first: Trajectories, second: Trajectories, labels: Labels) -> torch.Tensor:
        """Fit the round's labels; ``[B]`` the last epoch's loss (the members' mean in an ensemble,
        each member fitted on its own bootstrap resample of the pairs)."""
        answered = labels.answered if self.may_skip else None
        if self.cfg.ensemble == 1:
            return torch.as_tensor(self.learner.update(first, second, labels.prefer_first, answered))
        weights = bootstrap_weights(self.keys.fold(BOOTSTRAP, index), self.cfg.ensemble,
                                    labels.prefer_first.shape[-1])                     # [B, E, n]
        loss = self.learner.update(first, second, labels.prefer_first, answered, weights=weights)
        return queries.member_mean(torch.as_tensor(loss), -1)

    def _plan(self) -> torch.Tensor:
        """``pi[B, s, a]`` for each seed's current learned reward, or for the regret learner the
        Boltzmann policy ``softmax(τ·Â)`` of its learned advantages (no planning: Â is already
        what planning would give)."""
        reward = self.model.reward()
        if self.learns_advantages:
            return soft_policy(reward, self.cfg.temperature)
        if reward.dim() == self.keys.key.dim() + 1:        # state rewards [B, S] -> [B, S, 1]
            reward = reward.unsqueeze(-1)
        return plan(self.task, reward, self.cfg)

    def _results(self, rounds: int, cfg: TrainConfig) -> list[RunResult]:
        """Each seed's result after ``rounds`` rounds (its history so far, metrics now)."""
        history = {k: torch.stack(v[:rounds], -1).tolist() for k, v in self.history.items()}
        accuracy = self._heldout_accuracy().tolist()
        out = []
        for k, seed in enumerate(self.seeds):
            model = self.model[k]
            metrics = self._metrics(model, cfg)
            metrics["pref_accuracy"] = accuracy[k]
            # a clone outside inference mode is a normal tensor
            with torch.inference_mode(False):
                reward = model.reward().clone()
            out.append(RunResult(cfg, seed, {key: rows[k] for key, rows in history.items()}, metrics, reward))
        return out

    def _metrics(self, model: RewardModel | Ensemble, cfg: TrainConfig) -> dict[str, float]:
        """One seed's metrics: the task's for a learned reward; for learned advantages, which the
        task's reward metrics do not describe, the greedy policy's (:func:`advantage_metrics`)."""
        if not self.learns_advantages:
            return self.task.convergence_metrics(model, cfg)
        task = self.task
        return advantage_metrics(task.mdp, model.reward(), task.true_reward, self._true_advantages, task.horizon)

    def _heldout_accuracy(self) -> torch.Tensor:
        """``[B]`` agreement with the noiseless teacher of the learner's own preference model on
        held-out pairs (summed true reward, or summed A* for the regret learner)."""
        first, second, truth = self._heldout_pairs
        learned = self._learned_returns(first) - self._learned_returns(second)
        return preference_accuracies(learned, truth.expand_as(learned))

    @functools.cached_property
    def _heldout_pairs(self) -> tuple[Trajectories, Trajectories, torch.Tensor]:
        """The held-out pairs and their true margins R₁ − R₂: one set for every seed and budget
        (a key of its own, not the seed's), so accuracies compare learned rewards on one test set.
        Drawn once per run: checkpoints differ only in budget, which the pairs do not depend on.

        Each trajectory comes, by a fair coin, from the soft-optimal policy for the
        true reward or from uniformly random actions, so pairs span good and bad
        behaviour; pairs the truth ranks equal are left out of the accuracy. The true margins are
        float64 sums of the float32 step scores, exact unless the scores' magnitudes span more than
        about 2²⁴, so segments of equal true return tie exactly, whatever the order of their steps.
        """
        task, cfg, n = self.task, self.cfg, 2 * self.cfg.heldout_pairs
        keys = Keys(_HELDOUT_KEYS.fold(HELDOUT).key.to(self.keys.device))
        expert = rollout(task.mdp, plan(task, task.true_reward, cfg), n, self.length, keys.fold(0))
        random = rollout(task.mdp, uniform_policy(task.mdp), n, self.length, keys.fold(1))
        coin = (keys.fold(2).uniform(n) < 0.5).unsqueeze(-1)
        mixed = Trajectories(torch.where(coin, expert.states, random.states),
                             torch.where(coin, expert.actions, random.actions))
        first, second = mixed.split()
        scores = self._true_advantages if self.learns_advantages else task.true_reward
        truth = step_rewards(scores, first).double().sum(-1) - step_rewards(scores, second).double().sum(-1)
        return first, second, truth

    def _learned_returns(self, traj: Trajectories) -> torch.Tensor:
        """``[B, n]`` each seed's learned return of the trajectories ``[n, T]``."""
        features = self.model.features(traj)                              # [n, T]
        table = self.model.reward().flatten(self.keys.key.dim())         # [B, F], indexed by features
        return table[:, features].sum(-1)


def on_device(task: Task, device: torch.device | str | None) -> Task:
    """The task with its tensors (and its MDP's) on ``device``; the task itself when they are there."""
    if device is None or task.mdp.start.device == torch.device(device):
        return task
    moved = copy.copy(task)
    for name, value in vars(task).items():
        if isinstance(value, torch.Tensor | TabularMDP):
            setattr(moved, name, value.to(device))
    return moved
