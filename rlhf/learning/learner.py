"""Bradley–Terry reward learning from (soft) preference labels.

For pairs of equally long segments the preference logit is linear in the
reward parameters: ``z = R₁ − R₂ = C·θ`` with ``C[i, j]`` the number of times
feature j occurs in segment 1 of pair i minus in segment 2 (the log-partition
of ``log_softmax`` cancels). The loss and its gradient are then closed-form::

    L = mean_i [softplus(z_i) − y_i·z_i],   ∇θ L = Cᵀ(σ(z) − y) / B

which is what autograd would compute, at a fraction of the cost; the
optimisers are torch's Adam and SGD updates written out on that gradient.
``tests/rlhf/test_learner.py`` checks both against autograd and torch.optim.

A learner fits each round's pairs (``fit="round"``, the gridworld seed's loop) or every pair asked
so far (``fit="all"``, as B-Pref and imitation keep a buffer of every labelled query): then it keeps
the pairs' count differences, labels and answered flags (:class:`PairBuffer`) and each round runs
its ``epochs`` passes over all of them, warm-started from the previous round's parameters and
optimiser state. A round costs O(pairs so far × features), no re-rollout; with one round both
are the same computation, bit for bit.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core import batched
from ..core.rollout import Trajectories
from .rewards import RewardModel

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
_ALL_FEATURES_MAX = 4096
_SIMD_BLOCK = 64
"""Floats per padded parameter row: a multiple of every SIMD loop's step (AVX-512: 16 floats, unrolled)."""
FITS = ("round", "all")
"""What a learner fits each round: the round's pairs, or every pair asked so far."""


@dataclass(frozen=True)
class LearnerConfig:
    """How the reward model is fitted each round."""

    optimizer: str = "adam"
    """``"adam"`` (the gridworld preset's) or ``"sgd"`` (the string preset's)."""
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


def count_differences(
    features_1: torch.Tensor, features_2: torch.Tensor, num_features: int
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(support[U], C[..., B, U])``: the features used, and per pair their count in
    segment 1 minus segment 2 (``features_i[..., B, T]`` index a flat parameter vector
    of ``num_features``). Small models get every feature (``support`` None): no
    gather and scatter in the optimiser's inner loop. Large ones (one seed at a
    time) get the features the pairs use."""
    *batch, B, T = features_1.shape
    if num_features <= _ALL_FEATURES_MAX:
        support, width, index_1, index_2 = None, num_features, features_1, features_2
    else:
        support, inverse = torch.unique(torch.cat([features_1, features_2], dim=-1), return_inverse=True)
        width, index_1, index_2 = support.numel(), inverse[..., :T], inverse[..., T:]
    counts = torch.zeros(*batch, B, width, device=features_1.device)
    one = (1,) * counts.dim()
    plus = torch.ones(one, device=counts.device).expand(index_1.shape)
    minus = torch.full(one, -1.0, device=counts.device).expand(index_2.shape)
    counts.scatter_add_(-1, index_1, plus).scatter_add_(-1, index_2, minus)
    return support, counts


class PairBuffer:
    """Every pair a learner has been given (``fit="all"``): per-pair count differences ``C[..., N, F]``,
    labels ``y[..., N]`` and answered flags ``[..., N]`` (None when every pair is answered), pairs
    in the order they were asked (leading dimensions: the rows the learner fits)."""

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.answered: torch.Tensor | None = None

    def add(self, counts: torch.Tensor, labels: torch.Tensor, answered: torch.Tensor | None,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Append a round's pairs; returns every pair so far ``(C, y, answered)``."""
        if self.counts is None or self.labels is None:
            self.counts, self.labels, self.answered = counts, labels, answered
        else:
            self.counts = torch.cat([self.counts, counts], dim=-2)
            self.labels = torch.cat([self.labels, labels], dim=-1)
            if answered is not None:
                assert self.answered is not None, "answered flags from some rounds only"
                self.answered = torch.cat([self.answered, answered], dim=-1)
        return self.counts, self.labels, self.answered

    @property
    def size(self) -> int:
        """N, the pairs held."""
        return 0 if self.labels is None else self.labels.shape[-1]


class RewardLearner:
    """Fits a reward model round after round; optimiser state persists (as in both teaching examples).

    The model may hold a batch of seeds (``theta[B, F]``): each seed is fitted on its own
    pairs, and what a seed gets does not depend on the other seeds in the batch (the
    kernels of :mod:`rlhf.batched`). Models above 4096 features are fitted one seed at a
    time, on the features each round uses.

    ``may_skip``: some pairs can come unanswered (a skipping teacher). Each seed then
    drops its unanswered pairs and batches the rest in collection order, with its own
    Adam step count; an update with nothing answered leaves that seed alone. Decided
    per configuration, not per round, so a seed's arithmetic never depends on its batch.
    """

    def __init__(self, model: RewardModel, config: LearnerConfig, may_skip: bool = False, fit: str = "round",
                 extra_columns: int = 0) -> None:
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        self.model, self.config, self.may_skip, self.fit = model, config, may_skip, fit
        self.buffer = PairBuffer() if fit == "all" else None
        """Every pair so far (``fit="all"``), else None."""
        theta = model.theta
        self._unbatched = theta.dim() == 1
        self._batch = theta.shape[:-1]        # seeds, or seeds and ensemble members: rows alike
        self._model_theta = theta.view(-1, theta.shape[-1])       # [B, F], shares storage
        # The optimiser works on rows padded to whole SIMD blocks: torch's fused Adam (like
        # sigmoid) rounds differently in its scalar tail, and with no tail at all an element's
        # update cannot depend on where its seed sits in the batch. Copied back after each update.
        # ``extra_columns`` parameters of the learner's own (a learned tie parameter) sit after the model's.
        B, F = self._model_theta.shape
        padded = torch.zeros(B, -(-(F + extra_columns) // _SIMD_BLOCK) * _SIMD_BLOCK, device=theta.device)
        self._theta = padded[:, :F]
        self._theta.copy_(self._model_theta)
        self._padded = padded
        self._exp_avg = torch.zeros_like(padded)
        self._exp_avg_sq = torch.zeros_like(padded)
        self._grad = torch.zeros_like(padded)
        self._steps = torch.zeros(self._theta.shape[0], 1, dtype=torch.float64, device=theta.device)
        """[B, 1] Adam steps each seed has taken."""

    def update(self, first: Trajectories, second: Trajectories, prefer_first: torch.Tensor,
               answered: torch.Tensor | None = None, weights: torch.Tensor | None = None,
               ) -> torch.Tensor | float:
        """Fit one round's pairs (``[*batch, n, T]``, labels ``[*batch, n]``, ``batch`` the model's
        leading dimensions: none or seeds), or with ``fit="all"`` those and every earlier round's;
        returns each row's mean pre-step loss over the last epoch (a float for an unbatched model;
        NaN for a row with nothing answered).

        ``weights[*batch, E, N]``: for a model whose last batch dimension holds E ensemble members
        (pairs then have the batch without it), how many times each member counts each of the N
        pairs it fits (this round's, or with ``fit="all"`` every pair so far: its bootstrap
        multiplicities; see :meth:`_update_members`)."""
        f1, f2 = self.model.features(first), self.model.features(second)
        if f1.shape != f2.shape:
            raise ValueError(f"segments must have equal shapes, got {tuple(f1.shape)} and {tuple(f2.shape)}")
        n, T = f1.shape[-2:]        # [*batch, n, T] -> [rows, n, T]
        f1, f2, prefer_first = f1.reshape(-1, n, T), f2.reshape(-1, n, T), prefer_first.reshape(-1, n)
        answered = None if answered is None else answered.reshape(-1, n)
        if answered is not None and not self.may_skip and not bool(answered.all()):
            raise ValueError("unanswered pairs given to a learner made with may_skip=False")
        answered = answered if self.may_skip else None
        dense = self._theta.shape[-1] <= _ALL_FEATURES_MAX
        if weights is not None and not dense:
            raise ValueError(f"an ensemble needs a model of at most {_ALL_FEATURES_MAX} features, "
                             f"got {self._theta.shape[-1]}")
        if self.buffer is not None and not dense:
            raise ValueError(f"fit='all' needs a model of at most {_ALL_FEATURES_MAX} features, "
                             f"got {self._theta.shape[-1]}")
        if dense:
            _, counts = count_differences(f1, f2, self._theta.shape[-1])          # [rows, n, F]
            if self.buffer is not None:                                        # every pair so far
                counts, prefer_first, answered = self.buffer.add(counts, prefer_first, answered)
            if weights is not None:
                loss = self._update_members(counts, prefer_first, answered,
                                            weights.reshape(counts.shape[0], -1, counts.shape[1]))
            else:
                loss = self._update(counts, prefer_first, answered)
        else:
            loss = torch.stack([self._update_one(b, f1[b], f2[b], prefer_first[b],
                                                 None if answered is None else answered[b])
                                for b in range(self._theta.shape[0])])
        self._model_theta.copy_(self._theta)
        return float(loss[0]) if self._unbatched else loss.view(self._batch)

    # ------------------------------------------------------------- all seeds
    def _update(self, counts: torch.Tensor, y: torch.Tensor, answered: torch.Tensor | None) -> torch.Tensor:
        """Every seed on its pairs' count differences ``counts[B, n, F]``."""
        n = y.shape[-1]
        valid = None
        if answered is not None:      # answered pairs first, in collection order; the rest weigh 0
            order = torch.argsort((~answered).to(torch.int8), dim=-1, stable=True)
            counts = torch.take_along_dim(counts, order.unsqueeze(-1), dim=1)
            y = torch.take_along_dim(y, order, dim=1)
            valid = torch.arange(n, device=y.device) < answered.sum(-1, keepdim=True)    # [B, n]
        size = self.config.batch_size or n
        batches = []
        for lo in range(0, n, size):
            c, y_b = counts[:, lo:lo + size], y[:, lo:lo + size]
            if valid is None:
                rows = c / c.shape[1]
                active = None
            else:
                share, active = batch_shares(valid[:, lo:lo + size].float())
                rows = c * share.unsqueeze(-1)
            # −z = θ·(−Cᵀ) and ∇ = σ(z)·C/B − y·C/B: row vector times matrix (batched.vecmat);
            # −z saves the negation in σ(z) = 1 / (1 + exp(−z)), and y·C/B is fixed per batch.
            batches.append((c.transpose(1, 2).neg().contiguous(), rows.contiguous(),
                            batched.vecmat(y_b, rows).neg_().unsqueeze(1), active,
                            torch.ones(c.shape[0], 1, c.shape[1], device=c.device)))
        # The loop is dispatch-bound, so it makes no call it can avoid: row vectors stay [B, 1, F]
        # (the shapes batched.vecmat hands bmm, so the same products) and 1 + exp(−z) adds a tensor
        # of ones (the same sums; adding a Python number costs 3x the dispatch).
        F = self._theta.shape[-1]
        theta, grad = self._theta.unsqueeze(1), self._grad[:, :F].unsqueeze(1)
        if valid is None and self.config.optimizer == "adam" and _FUSED_ADAM:     # every seed steps
            numbers = self._adam_numbers(self.config.epochs * len(batches))
            last_logits = _adam_epochs_compiled()(
                theta, grad, [b[0] for b in batches], [b[1] for b in batches], [b[2] for b in batches],
                [b[4] for b in batches], [self._padded], [self._grad], [self._exp_avg], [self._exp_avg_sq], numbers,
                self.config.epochs, self.config.lr, ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPS)
        else:
            step = self._step_all(valid is not None, self.config.epochs * len(batches))
            last = self.config.epochs - 1
            last_logits = []
            for epoch in range(self.config.epochs):
                for minus_c_t, rows, offset, active, ones in batches:
                    minus_z = batched.bmm(theta, minus_c_t)
                    if epoch == last:
                        last_logits.append(minus_z.neg().squeeze(1))
                    torch.add(batched.bmm(minus_z.exp_().add_(ones).reciprocal_(), rows), offset, out=grad)
                    step(active)
        z = torch.cat(last_logits, dim=1)
        losses = batched.softplus(z) - y * z
        if valid is None:
            return losses.mean(-1)
        return torch.where(valid, losses, 0.0).sum(-1) / valid.sum(-1)      # NaN: nothing answered

    # ------------------------------------------------------- ensemble members
    def _update_members(self, counts: torch.Tensor, y: torch.Tensor, answered: torch.Tensor | None,
                        weights: torch.Tensor) -> torch.Tensor:
        """Every member of every seed on its seed's pairs (count differences ``counts[B, n, F]``), member e of seed b
        weighting pair i by ``weights[b, e, i]`` (0 where unanswered): each batch's loss is the
        member's weighted mean, so with whole-round batches a member fits exactly its bootstrap
        resample (pair i counted w_i times); with mini-batches pairs stay in collection order,
        and a member skips a batch it gives no weight. The count matrix C is built once per seed
        and shared: a step is two ``[E, F] × [F, n]`` products per seed (``torch.bmm``, the same
        BLAS path at every batch size: tested), not E row-vector products."""
        B, E, n = weights.shape
        w = weights.float() if answered is None else weights.float() * answered.unsqueeze(-2)
        size = self.config.batch_size or n
        batches = []
        for lo in range(0, n, size):
            c, w_b = counts[:, lo:lo + size], w[..., lo:lo + size]
            total = w_b.sum(-1, keepdim=True)                                  # [B, E, 1]
            scale = (w_b / total.clamp(min=1)).contiguous()                    # [B, E, b]
            offset = batched.bmm(scale * y[:, None, lo:lo + size], c).neg_()     # −(w·y)·C / Σw
            batches.append((c.transpose(1, 2).neg().contiguous(), c.contiguous(), scale, offset,
                            (total > 0).view(B * E, 1), torch.ones_like(scale)))
        masked = self.may_skip or len(batches) > 1
        step = self._step_all(masked, self.config.epochs * len(batches))
        F, P = self._theta.shape[-1], self._padded.shape[-1]
        theta = self._padded.view(B, E, P)[..., :F]
        grad = self._grad.view(B, E, P)[..., :F]
        last_logits = []
        for epoch in range(self.config.epochs):
            for minus_c_t, c, scale, offset, active, ones in batches:
                minus_z = batched.bmm(theta, minus_c_t)                         # [B, E, b]
                if epoch == self.config.epochs - 1:
                    last_logits.append(minus_z.neg())
                sigma = minus_z.exp_().add_(ones).reciprocal_().mul_(scale)     # ones: as in _update
                torch.add(batched.bmm(sigma, c), offset, out=grad)
                step(active if masked else None)
        z = torch.cat(last_logits, dim=-1)
        losses = (batched.softplus(z) - y.unsqueeze(-2) * z) * w
        return (losses.sum(-1) / w.sum(-1)).view(-1)                          # NaN: no weight at all

    def _step_all(self, masked: bool, total: int):
        """``step(active)``: one of this update's ``total`` optimiser steps for every seed on
        ``self._grad`` (``active[B, 1]``: which seeds step, None = all). Bound once per update:
        the inner loop is dispatch-bound, so it makes no call it can avoid."""
        theta, grad, lr = self._padded, self._grad, self.config.lr
        if self.config.optimizer == "sgd":     # an inactive seed's gradient is 0: nothing moves
            return lambda active: theta.add_(grad, alpha=-lr)
        if masked:
            return lambda active: _masked_adam(theta, grad, self._exp_avg, self._exp_avg_sq, self._steps,
                                               active, lr)
        adam = _adam(theta, grad, self._exp_avg, self._exp_avg_sq, lr)
        steps = iter([[n] for n in self._adam_numbers(total)])
        return lambda active: adam(next(steps))

    def _adam_numbers(self, total: int) -> list[torch.Tensor]:
        """The numbers of this update's ``total`` Adam steps, all seeds stepping (torch.optim keeps one
        tensor and adds 1; here they are made at once), counted as taken."""
        done = int(self._steps[0, 0])           # every seed has taken the same steps on this path
        numbers = torch.arange(done + 1, done + total + 1, dtype=torch.float32, device=self._steps.device)
        self._steps.add_(total)
        return list(numbers.unbind(0))

    # ---------------------------------------------------------- large models
    def _update_one(self, b: int, f1: torch.Tensor, f2: torch.Tensor, y: torch.Tensor,
                    answered: torch.Tensor | None) -> torch.Tensor:
        """Seed ``b`` alone, on the features its pairs use (unanswered pairs dropped)."""
        if answered is not None:
            f1, f2, y = f1[answered], f2[answered], y[answered]
        n = y.shape[0]
        if n == 0:
            return torch.tensor(float("nan"))
        support, counts = count_differences(f1, f2, self._theta.shape[-1])
        assert support is not None
        theta = self._padded[b]
        size = self.config.batch_size or n
        batches = []
        for lo in range(0, n, size):
            c, y_b = counts[lo:lo + size], y[lo:lo + size]
            c_t = c.T / c.shape[0]
            batches.append((c, c_t, -(c_t @ y_b)))
        grad = torch.empty(support.numel(), device=theta.device)
        if self.config.optimizer == "sgd":
            def step() -> None:
                theta.index_add_(0, support, grad, alpha=-self.config.lr)
        else:
            full = self._grad[b]
            adam = _adam(theta, full, self._exp_avg[b], self._exp_avg_sq[b], self.config.lr)

            def step() -> None:
                full.zero_().index_copy_(0, support, grad)
                self._steps[b] += 1
                adam([self._steps[b, 0].float()])
        last_logits = []
        for epoch in range(self.config.epochs):
            for c, c_t, offset in batches:
                z = torch.mv(c, theta[support])
                if epoch == self.config.epochs - 1:
                    last_logits.append(z)
                torch.addmv(offset, c_t, batched.sigmoid(z), out=grad)
                step()
        z = torch.cat(last_logits)
        return (batched.softplus(z) - y * z).mean()


def _masked_adam(theta: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                 steps: torch.Tensor, active: torch.Tensor | None, lr: float) -> None:
    """torch's Adam (no weight decay, no amsgrad) with a step count per seed (``steps[B, 1]``,
    float64), applied where ``active[B, 1]``; written out as ``torch.optim.Adam`` orders it."""
    beta1, beta2 = ADAM_BETAS
    mask = torch.ones_like(steps, dtype=torch.bool) if active is None else active
    steps.add_(mask.double())
    t = steps.clamp(min=1)
    step_size = (lr / (1 - beta1 ** t)).float()
    bias2_sqrt = (1 - beta2 ** t).sqrt().float()
    new_avg = exp_avg.lerp(grad, 1 - beta1)
    new_sq = exp_avg_sq.mul(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (new_sq.sqrt() / bias2_sqrt).add_(ADAM_EPS)
    new_theta = theta - step_size * (new_avg / denom)
    exp_avg.copy_(torch.where(mask, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(mask, new_sq, exp_avg_sq))
    theta.copy_(torch.where(mask, new_theta, theta))


def _release(version: str) -> tuple[int, ...]:
    """``(major, minor)`` of a version string such as ``"2.4.0a0+git1234"`` (its base version)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    assert match is not None, f"not a version: {version!r}"
    return tuple(int(part) for part in match.groups())


# The kernel behind torch.optim.Adam(fused=True); torch 2.1–2.3 have it for CUDA only, not on CPU.
_FUSED_ADAM = hasattr(torch, "_fused_adam_") and _release(torch.__version__) >= (2, 4)


def _adam_epochs(theta: torch.Tensor, grad: torch.Tensor, minus_c_t: list[torch.Tensor], rows: list[torch.Tensor],
                 offsets: list[torch.Tensor], ones: list[torch.Tensor], params: list[torch.Tensor],
                 grads: list[torch.Tensor], exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                 numbers: list[torch.Tensor], epochs: int, lr: float, beta1: float, beta2: float,
                 eps: float) -> list[torch.Tensor]:
    """The Bradley–Terry learner's epochs over its batches when every seed steps: per batch
    ``∇ = σ(z)·C/n − y·C/n`` (two row-vector products) and one fused Adam step on the padded
    parameters; returns the last epoch's logits ``z`` per batch, ``[B, b]``. Written for
    TorchScript (:func:`_adam_epochs_compiled`), and the same calls in Python."""
    last_logits: list[torch.Tensor] = []
    step = 0
    for epoch in range(epochs):
        for i in range(len(rows)):
            minus_z = batched.bmm(theta, minus_c_t[i])
            if epoch == epochs - 1:
                last_logits.append(minus_z.neg().squeeze(1))
            torch.add(batched.bmm(minus_z.exp_().add_(ones[i]).reciprocal_(), rows[i]), offsets[i], out=grad)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], [numbers[step]], amsgrad=False, lr=lr,
                               beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, maximize=False)
            step += 1
    return last_logits


def batch_shares(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(share[R, b], active[R, 1])`` of a minibatch's pair weights ``w[R, b]``: each pair's share of its
    row's loss (``w / Σw``; a row with no weight keeps zeros) and which rows have any weight (step)."""
    total = w.sum(-1, keepdim=True)
    return w / total.clamp(min=1), total > 0


@functools.cache
def _adam_epochs_compiled() -> Callable[..., list[torch.Tensor]]:
    """:func:`_adam_epochs` as a TorchScript function, or itself where TorchScript is gone.

    TorchScript runs the same aten calls (its optimised graph unrolls the loop; CPU fusion is off
    by default, and where a caller switches it on the Python function runs), without Python's argument
    parsing per call: 10.5 -> 7.0 µs an Adam step of one seed (measured), a third of a one-seed
    run's update. ``tests/rlhf/test_learner.py`` checks it against the Python function bit for
    bit. torch deprecates ``torch.jit.script`` (the warning is silenced here, on purpose); when it is
    removed this returns the Python function, which makes the same calls."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.script(_adam_epochs)
    except Exception:                  # pragma: no cover - a torch without TorchScript
        return _adam_epochs

    def run(*args: Any) -> list[torch.Tensor]:
        # a fuser would compile the elementwise calls into kernels of its own (other bits): where a
        # caller switched CPU fusion on, the Python function runs
        return (_adam_epochs if torch._C._jit_can_fuse_on_cpu() else scripted)(*args)
    return run


def _adam(theta, grad, exp_avg, exp_avg_sq, lr: float):
    """``step([number])``: Adam step ``number`` (1-based, a scalar tensor in a one-element list, as
    the fused kernel takes it) of torch's Adam (no weight decay, no amsgrad) on whatever ``grad``
    holds, in place."""
    beta1, beta2 = ADAM_BETAS
    if _FUSED_ADAM:          # a partial, not a lambda: one Python frame fewer a step
        return functools.partial(torch._fused_adam_, [theta], [grad], [exp_avg], [exp_avg_sq], [],
                                 amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                                 eps=ADAM_EPS, maximize=False)

    def step(numbers: list[torch.Tensor]) -> None:
        t = float(numbers[0])
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** t)).add_(ADAM_EPS)
        theta.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** t))
    return step
