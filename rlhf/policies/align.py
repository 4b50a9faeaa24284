"""``rlhf.align``: a policy from preference data by a registered method, with its metrics.

:func:`align_batch` fits one policy per seed as one tensor program (each seed its own dataset, or
one dataset for all); :func:`align` is a batch of one, so ``align(task, data_k, seed=k)`` equals
element k of ``align_batch(task, [data_0, …], seeds=[0, …])`` bit for bit. On population data
(:meth:`rlhf.PreferenceData.population`) a method is solved to its exact optimum instead
(:mod:`rlhf.policies.newton`), unless ``exact=False``. Rankings (:class:`rlhf.RankingData`) go to a
method that takes them (``pl-dpo``); every method takes pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from ..core.keys import Keys
from .data import PreferenceData, per_seed
from .evaluation import policy_metrics
from .methods import ALIGNMENT_METHODS
from .ranking_data import RankingData
from .reference import reference_policy


@dataclass(frozen=True)
class AlignOptions:
    """How a method is fitted (every method reads these; a method's own hyperparameters are separate)."""

    steps: int = 1000
    """Full-batch optimiser steps on sampled data (Adam, as the reward learner's)."""
    lr: float = 0.05
    """Adam's learning rate on the logits (or on the reward parameters, for ``rlhf``)."""
    time_indexed: bool = False
    """Fit a policy per step ``[H, S, A]`` (trajectories then start at step 0) rather than a stationary ``[S, A]``."""
    exact: bool | None = None
    """Minimise the data's loss exactly (Newton, :mod:`rlhf.policies.newton`) rather than by the optimiser:
    None does so whenever every dataset is a population; True on any data (its empirical optimum)."""
    tolerance: float = 1e-10
    """The exact solver's stopping rule: ``max |∇L| <= tolerance``."""
    max_iterations: int = 200
    """The exact solver's most Newton steps (per smoothing level of a hinge)."""

    def __post_init__(self) -> None:
        for name in ("steps", "max_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not isinstance(self.time_indexed, bool):
            raise ValueError(f"time_indexed must be True or False, got {self.time_indexed!r}")
        if self.exact not in (None, True, False):
            raise ValueError(f"exact must be None, True or False, got {self.exact!r}")


@dataclass(frozen=True)
class AlignProblem:
    """What a method's ``fit`` gets: one dataset per seed and everything else shared."""

    task: Any
    data: tuple[PreferenceData, ...]
    """One dataset per seed (a method of rankings also gets :class:`rlhf.RankingData`)."""
    seeds: tuple[int, ...]
    keys: Keys
    """``[K]`` one key per seed (a method that draws, e.g. a random initialisation, folds its own purpose)."""
    beta: float
    reference: torch.Tensor
    """``pi_ref[S, A]`` float64."""
    params: dict[str, Any]
    """The method's hyperparameters (its defaults, overridden by the call's)."""
    options: AlignOptions

    @property
    def exact(self) -> bool:
        """Whether to solve exactly: every dataset is a population, unless ``exact`` says otherwise."""
        if self.options.exact is None:
            return all(d.is_population for d in self.data)
        return self.options.exact


@dataclass(frozen=True)
class AlignFit:
    """What a method's ``fit`` returns."""

    policies: torch.Tensor
    """``[K, S, A]`` or ``[K, H, S, A]``: one policy per seed."""
    extra: list[dict[str, float]]
    """Per seed, the method's own numbers (its final loss, the solver's report)."""


@dataclass(frozen=True)
class AlignResult:
    """One seed's aligned policy and its metrics."""

    method: str
    seed: int
    beta: float
    policy: torch.Tensor
    """``pi[S, A]`` or time-indexed ``pi[H, S, A]`` (``pi[0]`` the first step)."""
    reference: torch.Tensor
    """``pi_ref[S, A]`` it was aligned against."""
    metrics: dict[str, float]
    """:func:`rlhf.policies.evaluation.policy_metrics` and the method's own (``loss``; ``solver_*`` when
    solved exactly)."""


def align(task: Any, data: PreferenceData | RankingData, method: str = "dpo", beta: float = 0.1,
          reference: Any = None, seed: int = 0, **options: Any) -> AlignResult:
    """A policy from ``data`` by ``method`` (a name in :data:`rlhf.ALIGNMENT_METHODS`) at KL strength
    ``beta`` against ``reference`` (None: uniform; an ``[S, A]`` table; ``"sft"``, ``"sft:N[:BEHAVIOUR]"``).
    ``options``: the method's hyperparameters (``label_smoothing=`` for ``cdpo``, ...) and
    :class:`AlignOptions` fields (``steps=``, ``lr=``, ``time_indexed=``, ``exact=``, ...). ``seed`` names
    the run's key: a method that draws (``rlhf``'s reward-model initialisation) draws under it; direct
    methods start at the reference and draw nothing (their data is what a seed changes:
    :meth:`rlhf.PreferenceData.sampled` with that seed)."""
    return align_batch(task, [data], method, beta, reference, seeds=[seed], **options)[0]


def align_batch(task: Any, data: PreferenceData | RankingData | Sequence[PreferenceData | RankingData],
                method: str = "dpo", beta: float = 0.1, reference: Any = None, seeds: Sequence[int] = (0,),
                **options: Any) -> list[AlignResult]:
    """:func:`align` for many seeds at once, seed k on ``data[k]`` (or every seed on one dataset): one
    tensor program, and element k is ``align(task, data[k], ..., seed=seeds[k])`` bit for bit. The
    reference (an ``sft`` one draws its demonstrations with seed 0) is shared."""
    found = ALIGNMENT_METHODS.lookup(method)
    seeds, datasets = per_seed(data, seeds, rankings=True)
    if not found.accepts_rankings and not all(isinstance(d, PreferenceData) for d in datasets):
        raise ValueError(f"method {method!r} fits pairs (rlhf.PreferenceData), got rankings (rlhf.RankingData): "
                         f"fit them with a method of rankings "
                         f"({', '.join(ALIGNMENT_METHODS.names(lambda m: m.accepts_rankings))})")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta < math.inf:
        raise ValueError(f"beta must be a number in (0, inf), got {beta!r}")
    option_names = {f.name for f in fields(AlignOptions)}
    unknown = sorted(set(options) - option_names - set(found.params))
    if unknown:
        raise TypeError(f"align: unknown option {unknown[0]!r} for method {method!r} (its parameters: "
                        f"{', '.join(found.params) or 'none'}; options: {', '.join(sorted(option_names))})")
    settings = AlignOptions(**{k: v for k, v in options.items() if k in option_names})
    params = dict(found.params) | {k: v for k, v in options.items() if k in found.params}
    ref = reference_policy(task, reference)
    problem = AlignProblem(task, datasets, seeds, Keys.from_seeds(seeds), float(beta), ref, params, settings)
    with torch.inference_mode(False):
        fitted = found.fit(problem)
    results = []
    for k, seed in enumerate(seeds):
        policy = fitted.policies[k]
        metrics = policy_metrics(task, policy, ref, float(beta), datasets[k]) | fitted.extra[k]
        results.append(AlignResult(method, seed, float(beta), policy, ref, metrics))
    return results
