"""The preference-learning loop's entry points: train one seed, a batch of seeds, or a learning
curve, and the pairs a labelling session shows.

Each runs the phases of :mod:`rlhf.training.phases` (query → label → update → plan → evaluate) for
the configuration's rounds, under inference mode on one torch thread.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.planning import soft_optimal_policy
from ..core.rollout import Trajectories
from ..core.truths import TaskTruths
from ..learning.queries import QUERY_RULES
from ..preferences.kinds import resolve_teacher_spec
from ..preferences.labeller import Labeller
from . import phases
from .config import TrainConfig
from .protocol import Task
from .results import HISTORY_KEYS, RoundRecord, RunResult


def plan(task: Task, reward: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """``pi[..., s, a]``, the soft-optimal policy for ``reward`` over the task's horizon."""
    return soft_optimal_policy(task.mdp, reward, task.horizon, config.discount, config.temperature)


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

    Settings come from ``config`` (default: the task's defaults, its preset's), then
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
    :class:`rlhf.RecordedTeacher` can answer that training run. Only for a query rule whose pairs do
    not depend on the learned model (``query="uniform"``), so they are known before any answer."""
    if config.rank > 2:
        raise ValueError(f"a labelling session shows pairs: rank must be 2, got {config.rank}")
    if not QUERY_RULES[config.query].uniform:
        raise ValueError(f"a labelling session's pairs must not depend on the answers: query must be 'uniform', "
                         f"got {config.query!r}")
    pairs = []
    with single_threaded(), torch.inference_mode():
        setting = phases.prepare(task, config, [seed], Keys.from_seeds([seed], device=task.mdp.start.device))
        state = phases.start(setting)
        for index in range(config.rounds):
            first, second = phases.query_pairs(setting, state, index)
            pairs += [(first[0][i], second[0][i]) for i in range(len(first[0]))]
    return pairs


def _config(task: Task, config: TrainConfig | None, teacher: str | Labeller | None, budget: int | None,
            overrides: dict[str, object]) -> TrainConfig:
    if teacher is not None:
        overrides["teacher"] = teacher
    if budget is not None:
        overrides["budget"] = budget
    cfg = (config or task.defaults).replace(**overrides)
    # a registered kind's spec (recorded:DIR) made canonical: the store's path and digest
    return cfg.replace(teacher=resolve_teacher_spec(cfg.teacher)) if isinstance(cfg.teacher, str) else cfg


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
        setting = phases.prepare(task, cfg, seeds, keys)
        state = phases.start(setting)
        history: dict[str, list[torch.Tensor]] = {k: [] for k in HISTORY_KEYS}
        results: dict[int, list[RunResult]] = {}
        for index in range(cfg.rounds):
            state, record, entries = phases.run_round(setting, state, index)
            for key in HISTORY_KEYS:
                history[key].append(entries[key])
            if on_round is not None:
                on_round(record)
            pairs = index * cfg.round_size + cfg.pairs_in_round(index)
            if pairs in checkpoints:
                results[pairs] = phases.seed_results(setting, state, history, index + 1, cfg.replace(budget=pairs))
        return results


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


def on_device(task: Task, device: torch.device | str | None) -> Task:
    """The task with its tensors (and its MDP's) on ``device``, and truths of its own there; the task
    itself when they are there."""
    if device is None or task.mdp.start.device == torch.device(device):
        return task
    moved = copy.copy(task)
    for name, value in vars(task).items():
        if isinstance(value, torch.Tensor | TabularMDP):
            setattr(moved, name, value.to(device))
    if isinstance(getattr(task, "truths", None), TaskTruths):
        moved.truths = TaskTruths.of(moved)                    # type: ignore[attr-defined]
    return moved
