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

import torch

from ..core.regularized import kl_regularized_policy
from ..learning.learner import LearnerConfig, RewardLearner
from .align import AlignFit, AlignProblem
from .data import stack
from .fitting import feature_counts, solver_metrics
from .methods import AlignmentMethod, register_alignment_method
from .newton import Problem, solve

INIT = 0
"""The purpose of the reward model's initial draw (:meth:`rlhf.Keys.fold`), as in :func:`rlhf.train`."""


def fit_rlhf(problem: AlignProblem) -> AlignFit:
    task, opts = problem.task, problem.options
    model = task.new_reward_model(problem.keys.fold(INIT))
    extra: list[dict[str, float]]
    if problem.exact:
        # Bradley–Terry on the learned return margin is DPO's loss at β = 1 (imported here: importing dpo
        # registers it, and the methods register in builtins' order)
        from .dpo import make_dpo
        extra, thetas = [], []
        F = model.theta.shape[-1]
        for d in problem.data:
            X = feature_counts(model.features(d.trajectories), F, torch.float64)
            theta, report = solve(Problem(X, torch.zeros(X.shape[0], dtype=torch.float64), d.first, d.second,
                                          d.prefer_first, d.weight, None),
                                  make_dpo(1.0, 0), torch.zeros(F, dtype=torch.float64), opts.tolerance,
                                  opts.max_iterations)
            thetas.append(theta)
            extra.append(solver_metrics(report))
        model.theta = torch.stack(thetas)           # float64: the reward, and so the plan, exact
    else:
        shapes = {(len(d), d.length) for d in problem.data}
        if len(shapes) != 1:
            raise ValueError(f"a batch of seeds needs datasets of equal size and length, got {sorted(shapes)}")
        pairs = [d.pairs() for d in problem.data]
        first, second = stack([p[0] for p in pairs]), stack([p[1] for p in pairs])
        answered = torch.stack([d.answered for d in problem.data])
        skips = not bool(answered.all())
        learner = RewardLearner(model, LearnerConfig("adam", opts.lr, opts.steps, 0), may_skip=skips)
        prefer = torch.stack([d.prefer_first for d in problem.data]).float()
        loss = learner.update(first, second, prefer, answered if skips else None)
        extra = [{"loss": float(v)} for v in torch.as_tensor(loss).reshape(-1)]
    reward = model.reward()
    reward = reward.unsqueeze(-1) if reward.dim() == 2 else reward              # [K, S] -> [K, S, 1]
    policies = kl_regularized_policy(task.mdp, reward.detach(), task.horizon, problem.beta, problem.reference)
    return AlignFit(policies, extra)


RLHF = register_alignment_method(AlignmentMethod(
    "rlhf", fit_rlhf, description="Bradley–Terry reward learner, then the exact KL-regularised policy on it"))
