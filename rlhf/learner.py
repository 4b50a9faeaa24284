"""Bradley–Terry reward learning from (soft) preference labels.

For pairs of equally long segments the preference logit is linear in the
reward parameters: ``z = R₁ − R₂ = C·θ`` with ``C[i, j]`` the number of times
feature j occurs in segment 1 of pair i minus in segment 2 (the log-partition
of ``log_softmax`` cancels). The loss and its gradient are then closed-form::

    L = mean_i [softplus(z_i) − y_i·z_i],   ∇θ L = Cᵀ(σ(z) − y) / B

which is what autograd would compute, at a fraction of the cost; the
optimisers are torch's Adam and SGD updates written out on that gradient.
``tests/rlhf/test_learner.py`` checks both against autograd and torch.optim.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .rewards import RewardModel
from .rollout import Trajectories, step_rewards

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
_ALL_FEATURES_MAX = 4096


@dataclass(frozen=True)
class LearnerConfig:
    """How the reward model is fitted each round."""

    optimizer: str = "adam"
    """``"adam"`` (the gridworld seed) or ``"sgd"`` (the string seed)."""
    lr: float = 1e-2
    """Learning rate >= 0 (0 freezes the model: a planted regression)."""
    epochs: int = 50
    """Passes over each round's pairs."""
    batch_size: int = 0
    """Pairs per optimiser step, in collection order; 0 = the whole round."""

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr >= 0:
            raise ValueError(f"lr must be a number >= 0, got {self.lr!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 0:
            raise ValueError(f"batch_size must be an integer >= 0, got {self.batch_size!r}")


def bradley_terry_loss(logit: torch.Tensor, prefer_first: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``P(first) = σ(logit)``, ``logit = R₁ − R₂``, in logit space.

    ``prefer_first[B]`` may be soft (0.5 for "equal").
    """
    return -(prefer_first * F.logsigmoid(logit) + (1 - prefer_first) * F.logsigmoid(-logit)).mean()


def preference_logits(reward: torch.Tensor, first: Trajectories, second: Trajectories) -> torch.Tensor:
    """``[B]`` ``R₁ − R₂`` of each pair under ``reward`` ([S] or [S, A])."""
    return step_rewards(reward, first).sum(-1) - step_rewards(reward, second).sum(-1)


def count_differences(
    features_1: torch.Tensor, features_2: torch.Tensor, num_features: int
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(support[U], C[B, U])``: the features used, and per pair their count in
    segment 1 minus segment 2 (``features_i[B, T]`` index a flat parameter vector
    of ``num_features``). Small models get every feature (``support`` None): no
    gather and scatter in the optimiser's inner loop."""
    B, T = features_1.shape
    both = torch.cat([features_1, features_2], dim=1)
    if num_features <= _ALL_FEATURES_MAX:
        support, inverse, width = None, both, num_features
    else:
        support, inverse = torch.unique(both, return_inverse=True)
        width = support.numel()
    counts = torch.zeros(B, width)
    ones = torch.ones(B, T)
    counts.scatter_add_(1, inverse[:, :T], ones).scatter_add_(1, inverse[:, T:], -ones)
    return support, counts


class RewardLearner:
    """Fits a reward model round after round; optimiser state persists (as in both seeds)."""

    def __init__(self, model: RewardModel, config: LearnerConfig) -> None:
        self.model, self.config = model, config
        theta = model.theta
        self._exp_avg = torch.zeros_like(theta)
        self._exp_avg_sq = torch.zeros_like(theta)
        self._steps_taken = 0
        self._grad = torch.zeros_like(theta)

    def update(self, first: Trajectories, second: Trajectories, prefer_first: torch.Tensor) -> float:
        """Fit one round's pairs; returns the mean pre-step loss over the last epoch."""
        f1, f2 = self.model.features(first), self.model.features(second)
        if f1.shape != f2.shape:
            raise ValueError(f"segments must have equal shapes, got {tuple(f1.shape)} and {tuple(f2.shape)}")
        support, counts = count_differences(f1, f2, self.model.theta.numel())
        n = counts.shape[0]
        size = self.config.batch_size or n
        batches = [(counts[lo:lo + size], prefer_first[lo:lo + size]) for lo in range(0, n, size)]
        # ∇ = (Cᵀ/B)(σ(z) − y) = (Cᵀ/B)·σ(z) − (Cᵀ/B)·y: the second term is fixed per batch.
        scaled = []
        for c, y in batches:
            c_t = c.T / c.shape[0]
            scaled.append((c, c_t, -(c_t @ y)))
        theta, last = self.model.theta, self.config.epochs - 1
        grad = self._grad if support is None else torch.empty(support.numel())
        step = self._optimizer_step(support, grad)
        # Adam's step counts for the whole update at once (torch.optim keeps one tensor and adds 1).
        total = self.config.epochs * len(scaled)
        numbers = torch.arange(self._steps_taken + 1, self._steps_taken + total + 1, dtype=torch.float32)
        steps = iter(numbers.unbind(0))
        self._steps_taken += total
        last_logits = []
        for epoch in range(self.config.epochs):
            for c, c_t_scaled, offset in scaled:
                z = torch.mv(c, theta if support is None else theta[support])
                if epoch == last:
                    last_logits.append(z)
                torch.addmv(offset, c_t_scaled, torch.sigmoid(z), out=grad)
                step(next(steps))
        z = torch.cat(last_logits)
        return float((F.softplus(z) - prefer_first * z).mean())

    # ------------------------------------------------------------ optimisers
    def _optimizer_step(self, support: torch.Tensor | None, grad: torch.Tensor):
        """``step(number)``: one step (Adam's step ``number``) on the gradient the loop
        writes into ``grad`` (over the support). Bound once per update: the inner loop
        is dispatch-bound, so it makes no call it can avoid."""
        theta, lr = self.model.theta, self.config.lr
        if self.config.optimizer == "sgd":     # zero gradient off the support: touch it only
            if support is None:
                return lambda _: theta.add_(grad, alpha=-lr)
            return lambda _: theta.index_add_(0, support, grad, alpha=-lr)
        adam = _adam(theta, self._grad, self._exp_avg, self._exp_avg_sq, lr)
        if support is None:                   # grad is self._grad
            return adam

        def scatter_then_adam(number: torch.Tensor) -> None:
            self._grad.zero_().index_copy_(0, support, grad)
            adam(number)
        return scatter_then_adam


def _release(version: str) -> tuple[int, ...]:
    """``(major, minor)`` of a version string such as ``"2.4.0a0+git1234"`` (its base version)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    assert match is not None, f"not a version: {version!r}"
    return tuple(int(part) for part in match.groups())


# The kernel behind torch.optim.Adam(fused=True); torch 2.1–2.3 have it for CUDA only, not on CPU.
_FUSED_ADAM = hasattr(torch, "_fused_adam_") and _release(torch.__version__) >= (2, 4)


def _adam(theta, grad, exp_avg, exp_avg_sq, lr: float):
    """``step(number)``: Adam step ``number`` (1-based, a scalar tensor) of torch's Adam
    (no weight decay, no amsgrad) on whatever ``grad`` holds, in place."""
    beta1, beta2 = ADAM_BETAS
    if _FUSED_ADAM:
        params, grads, avgs, avgs_sq = [theta], [grad], [exp_avg], [exp_avg_sq]
        return lambda number: torch._fused_adam_(
            params, grads, avgs, avgs_sq, [], [number], amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
            weight_decay=0.0, eps=ADAM_EPS, maximize=False)

    def step(number: torch.Tensor) -> None:
        t = float(number)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** t)).add_(ADAM_EPS)
        theta.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** t))
    return step
