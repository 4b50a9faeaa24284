"""Knox et al.'s (2022) regret learner ("Models of human preference for learning reward functions"):
a reward r̂ fitted through the regret preference model, then planned on like any reward.

Under the regret model a segment σ is worth minus its regret, which for deterministic transitions is
its summed optimal advantage, ``−regret(σ) = Σ_t A*_r(s_t, a_t)`` (Knox et al., 2022), taken *under
the reward being learned*; the Bradley–Terry logit of a pair and the loss are::

    z = Σ_t A_κ[r̂](σ₁_t) − Σ_t A_κ[r̂](σ₂_t)        L = mean_i [softplus(z_i) − y_i·z_i]

with ``A_κ[r̂] = Q_H − V_H`` from finite-horizon backward induction over the task's horizon H on r̂
(:func:`rlhf.core.advantages.soft_advantages`: the planner's recurrence with a soft max at
temperature κ; κ = ∞, the default, is the hard max and then ``A_∞[r̂]`` is exactly
:func:`rlhf.optimal_advantages` of the learned reward). Planning sits inside the loss, so the loss
is not linear in the parameters: each optimiser step runs the backward induction forward, the
closed-form Bradley–Terry gradient with respect to A (``Cᵀ(σ(z) − y)/n``, C the pairs' (s, a) count
differences), and the induction's vector–Jacobian product back to the reward
(:func:`~rlhf.core.advantages.advantage_vjp`; at κ = ∞ a subgradient, the gradient wherever the
maxima are unique). No autograd: the same deterministic operations for one seed and for a batch.
Where every action has one sure successor, without action noise, at κ = ∞ and γ = 1 (Knox's
random worlds, the deterministic gridworlds) a step is two compiled calls instead
(:mod:`rlhf.core._numba_regret`: the same recurrence summed in an order of its own, the same bits
on every CPU) around torch's sigmoid and optimiser step: about 4× the partial learner's round on the
seed gridworld (3.7–4.4× in the quiet timings runs) instead of 30–50×, 1.2–2.1× on random worlds
(``bench/hotpaths/test_learner_models.py``; ``reports/timings.md`` has the latest figures).

The reward is the task's reward model (the gridworld's ``log_softmax(θ)`` over states, a string's
or tabular task's ``[S, A]`` table), as Knox et al. fit the same reward class under both preference
models: the partial-return and regret learners differ in the preference model alone, and the
learned reward is scored by the task's own metrics. A* is invariant to adding a constant to every
reward, so the log-partition of ``log_softmax`` drops out of the gradient, as it does for the
partial learner.

**Non-convexity.** A*[r̂] is piecewise linear in r̂ (a max of linear functions), so the loss has
local minima and flat regions (every Q ties at a constant reward). Two warm starts handle it: the
first update begins with the partial-return fit of its pairs (``epochs`` steps of the closed-form
:class:`~rlhf.learning.learner.RewardLearner`, whose loss is convex; for deterministic transitions a
segment's summed A* is its partial return plus a difference of optimal values, so that fit is
close), then runs ``epochs`` regret steps; every later update continues from the previous one's
parameters and Adam moments. A finite κ smooths the loss (every action gets gradient); κ → ∞
recovers the hard max (``0 ≤ V^κ − V^∞ ≤ H·log(A)/κ``), which is what the regret teacher scores
with. Measured (with the torch steps) on Knox's random worlds 0–29 × 3 seeds, 3,000 uniform 3-step
pairs, ``fit="all"``: with Boltzmann regret labels from the truth (the model well specified) 18/90
fits end above the true reward's loss on their pairs at 50 epochs a round, 9/90 at 200 (the convex
partial learner on partial labels: 3/90); with noiseless labels 33/90 and 21/90, as often as the
partial learner's 24/90 and 20/90 (there the truth's margins are large and any fit's scale lags).
Without the warm start the Boltzmann rate rose (10/30 against 8/30 on worlds 0–9), and annealing κ
from 0.3 or 3 to ∞ over the rounds did not lower it (12/30, 7/30), so the default is the hard max
throughout (``tests/rlhf/test_regret_learner.py`` keeps a check). Every run now records it per seed
(``loss_above_truth`` and ``loss_gap``, for this learner and the partial one:
:func:`rlhf.training.phases.truth_loss_metrics`), and the report's preference-model section
tabulates the share of well-specified fits that end above the truth's loss. """

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..core import batched, compiled
from ..core.advantages import advantage_vjp, soft_advantages
from ..core.mdp import TabularMDP
from ..core.rollout import Trajectories
from .learner import LearnerConfig, RewardLearner, batch_shares
from .learner_models import Features, LearnerModel, register_learner_model
from .rewards import LearnedReward, RewardModel

if TYPE_CHECKING:    # types only: the task protocol and the configuration live in a higher layer
    from ..training.config import TrainConfig
    from ..training.protocol import Task


def action_major(reward: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """``[..., A or 1, S]``: a learned reward ``[..., S]`` (state reward) or ``[..., S, A]`` with
    ``batch_dims`` leading dimensions, as the backward induction takes it (a view)."""
    return reward.unsqueeze(-2) if reward.dim() == batch_dims + 1 else reward.transpose(-1, -2)


def step_indices(mdp: TabularMDP) -> Features:
    """``features(traj)``: each step's action-major index ``a·S + s`` into a flattened ``A[..., A, S]``."""
    S = mdp.num_states
    return lambda traj: traj.actions * S + traj.states


def step_count_differences(index_1: torch.Tensor, index_2: torch.Tensor, width: int) -> torch.Tensor:
    """``C[..., n, width]``: per pair, how often each step index occurs in segment 1 minus segment 2
    (``index_i[..., n, T]``; dense at any width, unlike the partial learner's
    :func:`~rlhf.learning.learner.count_differences`)."""
    counts = torch.zeros(*index_1.shape[:-1], width, device=index_1.device)
    one = (1,) * counts.dim()
    plus = torch.ones(one, device=counts.device).expand(index_1.shape)
    minus = torch.full(one, -1.0, device=counts.device).expand(index_2.shape)
    return counts.scatter_add_(-1, index_1, plus).scatter_add_(-1, index_2, minus)


class RegretRewardLearner(RewardLearner):
    """Fits a reward model through the regret preference model (the module docstring), round after
    round, with the optimiser of :class:`~rlhf.learning.learner.RewardLearner` (Adam or SGD on padded
    rows, state kept between rounds) and its options: minibatches, unanswered pairs, ensemble members'
    bootstrap weights, ``fit="all"``. A step costs two passes of H backups over ``[rows, A, S]``.

    ``mdp``, ``horizon``, ``discount``: the backward induction's (the task's MDP and horizon, the
    planning discount); ``kappa``: its soft-max temperature (∞: the hard max); ``warm_start``: begin
    the first update with the partial-return fit of its pairs.
    """

    def __init__(self, model: RewardModel, config: LearnerConfig, mdp: TabularMDP, horizon: int,
                 discount: float = 1.0, kappa: float = math.inf, warm_start: bool = True,
                 may_skip: bool = False, fit: str = "round") -> None:
        if not kappa > 0:
            raise ValueError(f"kappa must be > 0 (math.inf: the hard max), got {kappa!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        super().__init__(model, config, may_skip=may_skip, fit=fit)
        self.mdp, self.horizon, self.discount, self.kappa = mdp, horizon, discount, kappa
        self.warm_start = warm_start
        self._updates = 0
        A, S = mdp.num_actions, mdp.num_states
        steps = Trajectories(torch.arange(S).repeat(A), torch.arange(A).repeat_interleave(S))
        self._features = model.features(steps).to(model.theta.device)   # [A·S]: (a, s) -> model feature
        self._view = copy.copy(model)          # the model on the optimiser's padded rows [rows, F]
        self._view.theta = self._theta
        self._steps_of = step_indices(mdp)
        self._compiled = (compiled.available(self._theta) and math.isinf(kappa) and discount == 1.0
                          and not mdp.action_noise and mdp.next_states.shape[-1] == 1 and bool((mdp.probs == 1).all()))
        """Whether the steps run compiled (:meth:`_compiled_steps`): one sure successor per action, no
        action noise, the hard max, γ = 1, on the CPU; elsewhere the torch recurrence (:meth:`_regret_steps`)."""

    def update(self, first: Trajectories, second: Trajectories, prefer_first: torch.Tensor,
               answered: torch.Tensor | None = None, weights: torch.Tensor | None = None,
               ) -> torch.Tensor | float:
        """As :meth:`RewardLearner.update`: fit the round's pairs (or every pair so far), ``epochs``
        passes of regret steps (after the partial-return warm start on the first update)."""
        i1, i2 = self._steps_of(first), self._steps_of(second)
        if i1.shape != i2.shape:
            raise ValueError(f"segments must have equal shapes, got {tuple(i1.shape)} and {tuple(i2.shape)}")
        n, T = i1.shape[-2:]
        A, S = self.mdp.num_actions, self.mdp.num_states
        y = prefer_first.reshape(-1, n)
        answered = None if answered is None else answered.reshape(-1, n)
        if answered is not None and not self.may_skip and not bool(answered.all()):
            raise ValueError("unanswered pairs given to a learner made with may_skip=False")
        answered = answered if self.may_skip else None
        counts = step_count_differences(i1.reshape(-1, n, T), i2.reshape(-1, n, T), A * S)   # [B, n, A·S]
        if self.buffer is not None:
            counts, y, answered = self.buffer.add(counts, y, answered)
        pairs = y.shape[-1]
        rows = self._theta.shape[0]
        members = None if weights is None else weights.reshape(counts.shape[0], -1, pairs)   # [B, E, N]
        if self._updates == 0 and self.warm_start:
            features = counts.new_zeros(*counts.shape[:-1], self._theta.shape[-1]).index_add_(
                -1, self._features, counts)                                  # partial return's C
            if members is None:
                self._update(features, y, answered)
            else:
                self._update_members(features, y, answered, members)
        self._updates += 1
        if members is not None:          # rows = seeds × members, each with its seed's pairs
            E = members.shape[1]
            counts = counts.unsqueeze(1).expand(-1, E, -1, -1).reshape(rows, pairs, A * S)
            y = y.unsqueeze(1).expand(-1, E, -1).reshape(rows, pairs)
            w = members.float() if answered is None else members.float() * answered.unsqueeze(1)
            pair_weights: torch.Tensor | None = w.reshape(rows, pairs)
        else:
            pair_weights = None if answered is None else answered.float()
        loss = self._regret_steps(counts, y, pair_weights)
        self._model_theta.copy_(self._theta)
        return float(loss[0]) if self._unbatched else loss.view(self._batch)

    def _reward(self) -> torch.Tensor:
        """``[rows, A or 1, S]``: the reward of the current parameters (the model's, on the padded rows)."""
        return action_major(self._view.reward(), 1)

    def _regret_steps(self, counts: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """``epochs`` passes of regret steps over ``counts[R, N, A·S]`` (labels ``y[R, N]``, pair weights
        ``w[R, N]`` or None: all count once), in minibatches of ``batch_size`` pairs in order; returns
        each row's weighted mean pre-step loss over the last epoch."""
        if self._compiled:
            return self._compiled_steps(counts, y, w)
        R, N, AS = counts.shape
        A, S, F = self.mdp.num_actions, self.mdp.num_states, self._theta.shape[-1]
        size = self.config.batch_size or N
        batches = []
        for lo in range(0, N, size):
            c, y_b = counts[:, lo:lo + size], y[:, lo:lo + size]
            if w is None:
                rows, active = c / c.shape[1], None
            else:
                share, active = batch_shares(w[:, lo:lo + size])
                rows = c * share.unsqueeze(-1)
            # −z = A·(−Cᵀ), ∇_A = σ(z)·C/n − y·C/n (row vector times matrix, as the partial learner)
            batches.append((c.transpose(1, 2).neg().contiguous(), rows.contiguous(),
                            batched.vecmat(y_b, rows).neg_(), active))
        step = self._step_all(w is not None, self.config.epochs * len(batches))
        grad = self._grad[:, :F]
        last_logits = []
        for epoch in range(self.config.epochs):
            for minus_c_t, rows, offset, active in batches:
                advantages, policies = soft_advantages(self.mdp, self._reward(), self.horizon, self.discount,
                                                       self.kappa)
                minus_z = batched.vecmat(advantages.reshape(R, AS), minus_c_t)
                if epoch == self.config.epochs - 1:
                    last_logits.append(minus_z.neg())
                g_a = torch.add(batched.vecmat(minus_z.exp_().add_(1.0).reciprocal_(), rows), offset)
                g_r = advantage_vjp(self.mdp, policies, g_a.view(R, A, S), self.discount)
                grad.zero_().index_add_(-1, self._features, g_r.reshape(R, AS))
                step(active)
        return _weighted_loss(torch.cat(last_logits, dim=1), y, w)

    def _compiled_steps(self, counts: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """:meth:`_regret_steps` as two compiled calls a step (:mod:`rlhf.core._numba_regret`, its
        order of operations) around torch's sigmoid and optimiser step: the pairs as sparse rows of
        their nonzero count differences, built once an update. A segment of T steps has at most 2T."""
        kernels = compiled.regret_kernels()
        R, N, _ = counts.shape
        A, S, H = self.mdp.num_actions, self.mdp.num_states, self.horizon
        width = max(int((counts != 0).sum(-1).max()), 1) if N else 1
        index = torch.empty(R, N, width, dtype=torch.int64)
        count = torch.empty(R, N, width)
        kernels.sparse_pairs(counts.contiguous().numpy(), index.numpy(), count.numpy())
        successor = self.mdp.next_states.reshape(-1).numpy()
        features = self._features.numpy()
        advantages, policies = torch.empty(R, A, S), torch.empty(H, R, A, S)
        size = self.config.batch_size or N
        batches = []
        for lo in range(0, N, size):
            hi = min(lo + size, N)
            if w is None:
                weight, active = torch.full((R, hi - lo), 1.0 / (hi - lo)), None
            else:
                share, active = batch_shares(w[:, lo:hi])
                weight = share.contiguous()
            minus_z, sigma = torch.empty(R, hi - lo), torch.empty(R, hi - lo)
            batches.append((index[:, lo:hi].numpy(), count[:, lo:hi].numpy(), y[:, lo:hi].contiguous().numpy(),
                            weight.numpy(), active, minus_z, sigma, minus_z.numpy(), sigma.numpy()))
        step = self._step_all(w is not None, self.config.epochs * len(batches))
        # numpy views of the buffers the kernels write, made once (the step loop is dispatch-bound)
        grad = self._grad[:, :self._theta.shape[-1]].numpy()
        advantages_out, policies_out = advantages.numpy(), policies.numpy()
        last_logits = []
        for epoch in range(self.config.epochs):
            for index_b, count_b, y_b, weight_b, active, minus_z, sigma, minus_z_out, sigma_out in batches:
                kernels.advantages_and_logits(self._reward().numpy(), successor, advantages_out, policies_out,
                                              index_b, count_b, minus_z_out)
                if epoch == self.config.epochs - 1:
                    last_logits.append(minus_z.neg())
                torch.exp(minus_z, out=sigma).add_(1.0).reciprocal_()         # σ(z) = 1 / (1 + exp(−z))
                kernels.regret_gradient(sigma_out, y_b, weight_b, index_b, count_b, policies_out, successor,
                                        features, grad)
                step(active)
        return _weighted_loss(torch.cat(last_logits, dim=1), y, w)


def _weighted_loss(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Each row's Bradley–Terry loss of logits ``z[R, N]``, the mean or with pair weights ``w`` the
    weighted mean (NaN: nothing answered)."""
    losses = batched.softplus(z) - y * z
    if w is None:
        return losses.mean(-1)
    return (losses * w).sum(-1) / w.sum(-1)


@dataclass(frozen=True)
class RegretLearner(LearnerModel):
    """Knox et al. (2022): the task's reward model fitted by Bradley–Terry on segments' summed optimal
    advantages under it (:class:`RegretRewardLearner`), planned on like the partial learner's reward,
    and scored by the task's own metrics. ``kappa``: the loss's soft-max temperature (∞: the hard max,
    the regret teacher's A*); ``warm_start``: the first update begins with the partial-return fit."""

    name: ClassVar[str] = "regret"
    preference_model: ClassVar[str] = "regret"
    ranks: ClassVar[bool] = False
    kappa: float = math.inf
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not self.kappa > 0:
            raise ValueError(f"kappa must be > 0 (math.inf: the hard max), got {self.kappa!r}")

    def learner(self, model: RewardModel, task: Task, config: TrainConfig, may_skip: bool,
                may_tie: bool = True) -> RewardLearner:
        return RegretRewardLearner(model, config.learner, task.mdp, task.horizon, config.discount, self.kappa,
                                   self.warm_start, may_skip=may_skip, fit=config.fit)

    def scores(self, learned: LearnedReward, task: Task, config: TrainConfig, batch_dims: int,
               ) -> tuple[torch.Tensor, Features]:
        """The optimal advantages ``A_κ`` of the learned reward, flattened action-major, indexed by each
        step's ``a·S + s``: what the fit's margins sum (at κ = ∞, :func:`rlhf.optimal_advantages`)."""
        advantages, _ = soft_advantages(task.mdp, action_major(learned.reward(), batch_dims), task.horizon,
                                        config.discount, self.kappa)
        return advantages.flatten(batch_dims), step_indices(task.mdp)


REGRET = register_learner_model(RegretLearner())
