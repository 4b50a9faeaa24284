"""``rlhf``: the two stages of RLHF with a KL penalty (Ziegler et al., 2019; Ouyang et al., 2022),
without PPO's noise. First the Bradley–Terry reward learner of :func:`rlhf.train` (the task's reward
model, :class:`rlhf.RewardLearner`: full-batch Adam for ``steps`` epochs at ``lr``, the learner's
batched, seed-invariant kernels) fits a reward r̂ to the pairs; then the policy is the exact optimum
of ``E[Σ r̂] − β·KL(π ‖ π_ref)`` (:func:`rlhf.kl_regularized_policy`), what PPO's KL-penalised
objective converges to. The policy is time-indexed ``[H, S, A]``.

On population data the reward is the exact Bradley–Terry maximum-likelihood fit (damped Newton,
:mod:`rlhf.policies.newton`, from zero parameters, float64, planned in float64): its learned return
differences are the teacher's logits wherever the reward model can represent them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..core.keys import Keys
from ..core.regularized import kl_regularized_policy
from ..core.rollout import Trajectories
from ..learning.learner import LearnerConfig, RewardLearner
from ..learning.rewards import RewardModel
from .align import AlignFit, AlignOptions, AlignProblem
from .data import PreferenceData, stack
from .fitting import feature_counts, solver_metrics
from .methods import AlignmentMethod, register_alignment_method
from .newton import Problem, solve

INIT = 0
"""The purpose of the reward model's initial draw (:meth:`rlhf.Keys.fold`), as in :func:`rlhf.train`."""


def fit_rlhf(problem: AlignProblem) -> AlignFit:
    model, extra = fit_reward(problem.task, problem.data, problem.keys, problem.options, problem.exact)
    reward = model.reward()
    reward = reward.unsqueeze(-1) if reward.dim() == 2 else reward              # [K, S] -> [K, S, 1]
    policies = kl_regularized_policy(problem.task.mdp, reward.detach(), problem.task.horizon, problem.beta,
                                     problem.reference)
    return AlignFit(policies, extra)


def fit_reward(task: Any, data: Sequence[PreferenceData], keys: Keys, opts: AlignOptions,
               exact: bool) -> tuple[RewardModel, list[dict[str, float]]]:
    """The task's reward model fitted to each seed's data (``keys[K]``, one dataset per seed), as the
    ``rlhf`` method's first stage: by the exact Bradley–Terry fit (``exact``; float64) or by the
    learner's full-batch Adam (``opts.steps`` epochs at ``opts.lr``); and each seed's numbers."""
    model = task.new_reward_model(keys.fold(INIT))
    extra: list[dict[str, float]]
    if exact:
        # Bradley–Terry on the learned return margin is DPO's loss at β = 1 (imported here: importing dpo
        # registers it, and the methods register in builtins' order)
        from .dpo import make_dpo
        extra, thetas = [], []
        F = model.theta.shape[-1]
        for d in data:
            X = feature_counts(model.features(d.trajectories), F, torch.float64)
            theta, report = solve(Problem(X, torch.zeros(X.shape[0], dtype=torch.float64), d.first, d.second,
                                          d.prefer_first, d.weight, None),
                                  make_dpo(1.0, 0), torch.zeros(F, dtype=torch.float64), opts.tolerance,
                                  opts.max_iterations)
            thetas.append(theta)
            extra.append(solver_metrics(report))
        model.theta = torch.stack(thetas)           # float64: the reward, and so the plan, exact
    else:
        first, second, prefer, answered = stacked_pairs(data)
        skips = not bool(answered.all())
        learner = RewardLearner(model, LearnerConfig("adam", opts.lr, opts.steps, 0), may_skip=skips)
        loss = learner.update(first, second, prefer, answered if skips else None)
        extra = [{"loss": float(v)} for v in torch.as_tensor(loss).reshape(-1)]
    return model, extra


def stacked_pairs(data: Sequence[PreferenceData]) -> tuple[Trajectories, Trajectories, torch.Tensor, torch.Tensor]:
    """``(first[K, P, T], second[K, P, T], prefer_first[K, P] float32, answered[K, P])``: each seed's
    pairs, stacked (ValueError unless every dataset has the same size and length)."""
    shapes = {(len(d), d.length) for d in data}
    if len(shapes) != 1:
        raise ValueError(f"a batch of seeds needs datasets of equal size and length, got {sorted(shapes)}")
    pairs = [d.pairs() for d in data]
    first, second = stack([p[0] for p in pairs]), stack([p[1] for p in pairs])
    answered = torch.stack([d.answered for d in data])
    prefer = torch.stack([d.prefer_first for d in data]).float()
    return first, second, prefer, answered


RLHF = register_alignment_method(AlignmentMethod(
    "rlhf", fit_rlhf, description="Bradley–Terry reward learner, then the exact KL-regularised policy on it"))
