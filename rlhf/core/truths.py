"""What the true reward says about a task, computed once per task: the reference points every
metric, teacher and learner measures against.

* ``A*[s, a]`` (:meth:`TaskTruths.optimal_advantages`): the optimal advantages of the true reward,
  what a regret teacher scores steps with and what a regret learner's Â estimates;
* ``V*`` (:attr:`TaskTruths.optimal_return`) and ``J_uniform`` (:attr:`TaskTruths.uniform_return`):
  the optimum's and the uniform policy's expected true return, a scaled return's 1 and 0;
* ``J(π_true)`` (:meth:`TaskTruths.soft_optimal_return`): the return of planning softly on the
  truth, the normalised regret's 0;
* the held-out pairs (:meth:`TaskTruths.heldout_pairs`) that ``pref_accuracy`` is measured on, and
  their true margins under a preference model's step scores (:func:`true_margins`).

Returns are exact expected undiscounted returns over the task's horizon from its start
distribution (:func:`~rlhf.core.planning.policy_return`). Each value is computed on first use,
outside inference mode (a task's truths outlive the run that asked for them first), and kept:
the built-in tasks hold one :class:`TaskTruths` (``task.truths``), which their metrics and every
run on them share; :func:`truths_of` makes one for any other task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch

from .keys import Keys
from .mdp import TabularMDP
from .planning import (
    optimal_advantages,
    policy_return,
    single_reward_q,
    soft_optimal_policy,
    soft_policy,
    soft_value_iteration,
    uniform_policy,
)
from .rollout import Trajectories, rollout, step_rewards

T = TypeVar("T")

HELDOUT_KEYS = Keys.from_seeds([0])[0].fold(3)
"""The held-out pairs' keys: seed 0's key with purpose 3 (the training loop's ``HELDOUT``), the same
for every seed and run, so accuracies compare learned rewards on one test set."""


class TaskTruths:
    """The truths of one task: its MDP, true reward ``r[S]`` or ``r[S, A]``, horizon H and true
    step-reward range, and what follows from them (see the module docstring)."""

    def __init__(self, mdp: TabularMDP, true_reward: torch.Tensor, horizon: int,
                 reward_range: Callable[[], tuple[float, float]] | None = None) -> None:
        self.mdp, self.true_reward, self.horizon = mdp, true_reward, horizon
        self._reward_range = reward_range
        self._values: dict[Hashable, Any] = {}

    @classmethod
    def of(cls, task: Any) -> TaskTruths:
        """A new object for anything with the task protocol's ``mdp``, ``true_reward``, ``horizon`` and
        ``reward_range()``."""
        return cls(task.mdp, task.true_reward, task.horizon, task.reward_range)

    def _once(self, key: Hashable, build: Callable[[], T]) -> T:
        if key not in self._values:
            with torch.inference_mode(False):
                self._values[key] = build()
        return self._values[key]

    @property
    def reward_range(self) -> tuple[float, float]:
        """The task's (worst, best) true step reward (its ``reward_range()``; default: the reward's min
        and max), which normalises a partial-return teacher's returns."""
        true = self.true_reward
        return self._once("reward_range", self._reward_range or (lambda: (float(true.min()), float(true.max()))))

    @property
    def uniform_return(self) -> float:
        """``J(π_uniform)``: the uniform policy's expected return in H steps, every scaled metric's zero."""
        return self._once("uniform_return",
                          lambda: policy_return(self.mdp, uniform_policy(self.mdp), self.true_reward, self.horizon))

    @property
    def optimal_return(self) -> float:
        """``V*``: the optimal expected return in H steps, start-averaged ``max_a Q*(s, a)`` of the
        hard-max recurrence (the non-stationary optimum)."""
        def build() -> float:
            q_star = soft_value_iteration(self.mdp, torch.as_tensor(self.true_reward, dtype=torch.float32),
                                          self.horizon, 1.0, math.inf)
            return float((self.mdp.start.double() * q_star.amax(-1).double()).sum())
        return self._once("optimal_return", build)

    def optimal_advantages(self, discount: float = 1.0) -> torch.Tensor:
        """``A*[S, A] = Q*(s, a) − max_b Q*(s, b)`` (≤ 0) of the true reward over H steps at discount γ
        (:func:`~rlhf.core.planning.optimal_advantages`)."""
        return self._once(("optimal_advantages", discount),
                          lambda: optimal_advantages(self.mdp, self.true_reward, self.horizon, discount))

    def soft_optimal_return(self, discount: float = 1.0, temperature: float = 1.0) -> float:
        """``J(π_true)``: the expected true return in H steps of ``softmax(τ·Q)`` planned on the truth."""
        def build() -> float:
            q = single_reward_q(self.mdp, self.true_reward, self.horizon, discount, temperature)
            return policy_return(self.mdp, soft_policy(q, temperature), self.true_reward, self.horizon)
        return self._once(("soft_optimal_return", discount, temperature), build)

    def scaled(self, j: float) -> float:
        """A policy's return ``J`` scaled so that the uniform policy is 0 and the optimum 1 (Knox et al.,
        2022): ``(J − J_uniform) / (V* − J_uniform)``; NaN when the truth is no better than random."""
        j_star, j_uniform = self.optimal_return, self.uniform_return
        gap = j_star - j_uniform
        return (j - j_uniform) / gap if gap > 1e-9 * max(1.0, abs(j_star)) else float("nan")

    def heldout_pairs(self, pairs: int, length: int, discount: float = 1.0,
                      temperature: float = 1.0) -> tuple[Trajectories, Trajectories]:
        """``pairs`` held-out pairs ``([pairs, length], [pairs, length])`` under :data:`HELDOUT_KEYS`.

        Each trajectory comes, by a fair coin, from the soft-optimal policy for the true reward (at
        γ, τ) or from uniformly random actions, so pairs span good and bad behaviour."""
        def build() -> tuple[Trajectories, Trajectories]:
            n, mdp = 2 * pairs, self.mdp
            keys = Keys(HELDOUT_KEYS.key.to(mdp.start.device))
            expert_policy = soft_optimal_policy(mdp, self.true_reward, self.horizon, discount, temperature)
            expert = rollout(mdp, expert_policy, n, length, keys.fold(0))
            random = rollout(mdp, uniform_policy(mdp), n, length, keys.fold(1))
            coin = (keys.fold(2).uniform(n) < 0.5).unsqueeze(-1)
            mixed = Trajectories(torch.where(coin, expert.states, random.states),
                                 torch.where(coin, expert.actions, random.actions))
            return mixed.split()
        return self._once(("heldout_pairs", pairs, length, discount, temperature), build)


def true_margins(scores: torch.Tensor, first: Trajectories, second: Trajectories) -> torch.Tensor:
    """``[..., n]`` float64 ``Σ_t s(first_t) − Σ_t s(second_t)`` under step scores ``scores[S]`` or
    ``[S, A]``: float64 sums of the float32 scores, exact unless their magnitudes span more than about
    2²⁴, so segments of equal true worth tie exactly, whatever the order of their steps."""
    return step_rewards(scores, first).double().sum(-1) - step_rewards(scores, second).double().sum(-1)


def truths_of(task: Any) -> TaskTruths:
    """The task's own :class:`TaskTruths` (``task.truths``, as the built-in tasks have, so that their
    metrics and the loop share one), else a new one."""
    own = getattr(task, "truths", None)
    return own if isinstance(own, TaskTruths) else TaskTruths.of(task)
