"""Reward learning from rankings of K segments and from ties (``rank=K``, ``rank_learner=``, ``ties=``).

A query's K segments have learned returns ``R_k = c_k·θ`` (``c_k`` the segment's feature counts; the
log-partition of ``log_softmax`` is the same for equally long segments and cancels, as every loss
here is invariant to adding a constant to all R). A ranking (:mod:`rlhf.preferences.rankings`) is
``order`` (best first) and ``tied`` (adjacent positions equal); ``x_p = R_{order_p}`` is the return
at position p. The learners, per query:

* **Plackett–Luce** (``rank_learner="plackett-luce"``, the full likelihood; Zhu, Jordan and Jiao, 2023)::

      −log P(order) = Σ_{s=0}^{K−2} [logsumexp(x_s, …, x_{K−1}) − x_s]

  A tied group is ranked in every order alike: the loss is the *mean* of this over the orders the
  ties allow (at K = 2 a tie is the soft label 0.5, as for Bradley–Terry). Tied positions p … p + g − 1
  above the set O below them contribute ``Σ_{∅ ≠ B ⊆ G} logsumexp(x_{O ∪ B}) / C(g, |B|)`` (the chance
  that B is what is left of the group at one of its stages), minus the group's returns.
* **Pair split** (``rank_learner="pair-split"``; InstructGPT, Ouyang et al., 2022): the mean over the
  C(K, 2) position pairs s < t of the Bradley–Terry loss ``softplus(x_t − x_s)`` (a tied pair: the soft
  label 0.5), one batch element per ranking.

Both are of one form, ``loss = −a·x + Σ_q α_q·logsumexp(x over mask_q)`` with coefficients ``a[K]``,
masks and weights that depend on K, the rule and the tie pattern alone (:func:`lse_tables`), so the
gradient is closed-form, ``∂loss/∂x_k = −a_k + Σ_q α_q·softmax_q(x)_k``, and ``∇θ`` is that row vector
times the counts (:func:`rlhf.core.batched.vecmat`), as the Bradley–Terry learner's. At K = 2 without
ties both are Bradley–Terry, and the loop runs the Bradley–Terry learner itself (bit for bit today's).

* **Ties** (``ties="rao-kupper"`` or ``"davidson"``; :mod:`rlhf.preferences.ties`): each of a ranking's
  C(K, 2) position pairs (s, t) is an outcome, s ahead or a tie, with the model's probability of the
  margin ``z = x_s − x_t``; the loss is the mean over pairs of −log P(outcome) (at K = 2: the pair, its
  label 1, 0 or 0.5 read as first, second or tie; a soft label y ∉ {0, 0.5, 1} weighs the two wins by
  y and 1 − y). Closed-form gradients (``P_win = σ(z − η)``, ``P_loss = σ(−z − η)``,
  ``P_tie = (θ² − 1)·P_win·P_loss`` for Rao–Kupper, a softmax over ``(z/2, −z/2, λ)`` for Davidson)::

      Rao–Kupper  ∂/∂z = −(w + t)·σ(η − z) + (l + t)·σ(η + z)
                  ∂/∂η = (w + t)·σ(η − z) + (l + t)·σ(η + z) − 2t / (1 − e^{−2η})
      Davidson    ∂/∂z = (w + l + t)·(P_win − P_loss)/2 − (w − l)/2      ∂/∂λ = (w + l + t)·P_tie − t

  with (w, l, t) the outcome's weights (one of them 1). The tie parameter is fixed at ``tie_param``
  (θ or ν; default 2 or 1) or, with ``tie_fit="learned"``, one more parameter per seed fitted by the
  same optimiser: ``φ`` with ``η = log θ = softplus(φ)`` (θ = 1 + e^φ > 1) or ``λ = log ν = φ``, held in a padding
  column of the optimiser's rows.

Everything a step computes is elementwise, a sum over a query's K segments or terms, or a row vector
times a matrix, so a seed's fit does not depend on the batch around it (tested).
"""

from __future__ import annotations

import functools
import itertools
import math

import torch

from ..core import batched
from ..core.rollout import Trajectories
from ..preferences.rankings import likelihood_tables, tie_groups
from ..preferences.ties import DEFAULT_TIE_PARAMS
from .learner import _ALL_FEATURES_MAX, LearnerConfig, RewardLearner
from .rewards import RewardModel


@functools.cache
def lse_tables(K: int, rule: str, may_tie: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`rlhf.preferences.rankings.likelihood_tables` with its coefficients (exact float64 fractions)
    rounded once to float32, the learner's precision."""
    a, masks, alpha = likelihood_tables(K, rule, may_tie)
    return a.float(), masks, alpha.float()


@functools.cache
def pair_tables(K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(first[P], second[P], same_group[2^(K−1), P])``: the C(K, 2) position pairs s < t in
    lexicographic order, and for each tie pattern whether the pair is tied."""
    pairs = list(itertools.combinations(range(K), 2))
    same = torch.zeros(1 << (K - 1), len(pairs), dtype=torch.bool)
    for pattern in range(1 << (K - 1)):
        group_of = {p: g for g, group in enumerate(tie_groups(K, pattern)) for p in group}
        same[pattern] = torch.tensor([group_of[s] == group_of[t] for s, t in pairs])
    return (torch.tensor([s for s, _ in pairs]), torch.tensor([t for _, t in pairs]), same)


def tie_patterns(tied: torch.Tensor) -> torch.Tensor:
    """``[...]`` int64: the pattern index ``Σ_j tied_j·2^j`` of ``tied[..., K − 1]``."""
    bits = 1 << torch.arange(tied.shape[-1], device=tied.device)
    return (tied.to(torch.int64) * bits).sum(-1)


def rankings_of_labels(prefer_first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(order[..., 2], tied[..., 1])``: pair labels read as rankings, first ahead (y > 0.5), second
    ahead (y < 0.5) or a tie (y = 0.5)."""
    second_ahead = (prefer_first < 0.5).to(torch.int64)
    order = torch.stack([second_ahead, 1 - second_ahead], -1)
    return order, (prefer_first == 0.5).unsqueeze(-1)


# ------------------------------------------------------------------ the losses (reference forms)
def lse_loss(x: torch.Tensor, a: torch.Tensor, masks: torch.Tensor, alpha: torch.Tensor,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss[...], ∂loss/∂x[..., K])`` of ``−a·x + Σ_q α_q·logsumexp(x[mask_q])`` for returns by
    position ``x[..., K]``, ``a[..., K]``, ``masks[..., Q, K]`` (bool, none empty), ``alpha[..., Q]``."""
    spread = torch.where(masks, x.unsqueeze(-2), -torch.inf)                   # [..., Q, K]
    top = spread.amax(-1, keepdim=True)
    weights = torch.exp(spread - top)                                           # 0 outside the mask
    total = weights.sum(-1, keepdim=True)
    lse = (top + torch.log(total)).squeeze(-1)                                   # [..., Q]
    softmax = weights * (alpha.unsqueeze(-1) / total)
    grad = softmax.sum(-2) - a
    return (alpha * lse).sum(-1) - (a * x).sum(-1), grad


def tie_loss(model: str, z: torch.Tensor, log_param: torch.Tensor | float, win: torch.Tensor, lose: torch.Tensor,
             tie: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, ∂/∂z, ∂/∂ log-parameter)`` elementwise, of ``−[w·log P_win + l·log P_loss + t·log P_tie]``
    under ``model`` (``"rao-kupper"``: η = log θ; ``"davidson"``: λ = log ν) for margins ``z``
    (the module docstring's formulas)."""
    if model == "rao-kupper":
        eta = torch.as_tensor(log_param, dtype=z.dtype, device=z.device)
        ahead, behind = win + tie, lose + tie
        s_win, s_lose = batched.sigmoid(eta - z), batched.sigmoid(eta + z)          # σ(−(z − η)), σ(−(−z − η))
        loss = ahead * batched.softplus(eta - z) + behind * batched.softplus(eta + z) - tie * torch.log(
            torch.expm1(2 * eta))
        return (loss, behind * s_lose - ahead * s_win,
                ahead * s_win + behind * s_lose - tie * (2 / -torch.expm1(-2 * eta)))
    lam = torch.as_tensor(log_param, dtype=z.dtype, device=z.device)
    half = z / 2
    top = torch.maximum(half.abs(), lam)
    e_win, e_lose, e_tie = torch.exp(half - top), torch.exp(-half - top), torch.exp(lam - top)
    total = e_win + e_lose + e_tie
    p_win, p_lose, p_tie = e_win / total, e_lose / total, e_tie / total
    every = win + lose + tie
    loss = every * (top + torch.log(total)) - (win - lose) * half - tie * lam
    return loss, every * (p_win - p_lose) / 2 - (win - lose) / 2, every * p_tie - tie


def segment_counts(features: torch.Tensor, num_features: int) -> torch.Tensor:
    """``[..., F]`` float: how often each feature occurs in each segment ``features[..., T]``."""
    counts = torch.zeros(*features.shape[:-1], num_features, device=features.device)
    one = torch.ones((1,) * counts.dim(), device=counts.device).expand(features.shape)
    return counts.scatter_add_(-1, features, one)


class RankingLearner(RewardLearner):
    """Fits a reward model to rankings of K segments, or to pairs with ties, round after round (the
    module docstring), with :class:`~rlhf.learning.learner.RewardLearner`'s optimisers (Adam or SGD on
    padded rows, state kept between rounds) and options: minibatches (of queries, in order),
    unanswered queries (``may_skip``: each seed fits its answered ones, batched in order), ensemble
    members' bootstrap weights, ``fit="all"``. Models of at most 4096 features.

    ``rank``: K; ``rule``: ``"plackett-luce"`` or ``"pair-split"``; ``ties``: ``"none"``, ``"rao-kupper"``
    or ``"davidson"`` (a tie model needs ``"pair-split"`` when K > 2); ``tie_param``: θ or ν (0: the
    model's default); ``tie_fit``: ``"fixed"`` or ``"learned"``; ``may_tie``: whether rankings can hold
    ties (else the untied tables alone: fewer terms a step).
    """

    def __init__(self, model: RewardModel, config: LearnerConfig, *, rank: int, rule: str = "plackett-luce",
                 ties: str = "none", tie_param: float = 0.0, tie_fit: str = "fixed", may_tie: bool = True,
                 may_skip: bool = False, fit: str = "round") -> None:
        if ties != "none" and rank > 2 and rule != "pair-split":
            raise ValueError(f"ties {ties!r} with rank {rank} needs rule 'pair-split', got {rule!r}")
        learned = ties != "none" and tie_fit == "learned"
        super().__init__(model, config, may_skip=may_skip, fit=fit, extra_columns=int(learned))
        self.rank, self.rule, self.ties, self.may_tie, self.learned_ties = rank, rule, ties, may_tie, learned
        self.tie_value = (tie_param or DEFAULT_TIE_PARAMS[ties]) if ties != "none" else 0.0
        """θ or ν as configured (the learned one starts there)."""
        self._log_param = math.log(self.tie_value) if ties != "none" else 0.0     # η or λ
        if learned:             # φ: η = softplus(φ), i.e. φ = log(e^η − 1); λ = φ
            self._padded[:, self._theta.shape[-1]] = (math.log(math.expm1(self._log_param))
                                                      if ties == "rao-kupper" else self._log_param)
        self._buffer: list[dict[str, torch.Tensor]] = []
        self._pairs = tuple(t.to(self._padded.device) for t in pair_tables(rank)[:2])

    def tie_parameter(self) -> torch.Tensor:
        """``[*batch]`` the tie parameter now, θ or ν (every row the configured one when fixed)."""
        rows = self._padded.shape[0]
        if not self.learned_ties:
            return torch.full((rows,), self.tie_value).view(self._batch)
        phi = self._padded[:, self._theta.shape[-1]]
        log_param = batched.softplus(phi) if self.ties == "rao-kupper" else phi
        return log_param.exp().view(self._batch)

    # ------------------------------------------------------------------ a round
    def update_ranked(self, segments: Trajectories, order: torch.Tensor | None = None,
                      tied: torch.Tensor | None = None, prefer_first: torch.Tensor | None = None,
                      answered: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                      ) -> torch.Tensor | float:
        """Fit one round's queries (``segments[*batch, n, K, T]`` with rankings ``order[*batch, n, K]`` and
        ``tied[*batch, n, K − 1]``, or at K = 2 pair labels ``prefer_first[*batch, n]``), or with
        ``fit="all"`` those and every earlier round's; returns each row's mean pre-step loss over the
        last epoch (NaN for a row with nothing answered). ``answered[*batch, n]``: as
        :meth:`RewardLearner.update`; ``weights[*batch, E, N]``: each ensemble member's multiplicity of
        each query it fits (a model whose last batch dimension holds E members)."""
        features = self.model.features(segments)                     # [*batch, n, K, T]
        n, K, T = features.shape[-3:]
        if self.rank != K:
            raise ValueError(f"queries of {K} segments given to a learner of rank {self.rank}")
        F = self._theta.shape[-1]
        if F > _ALL_FEATURES_MAX:
            raise ValueError(f"rankings and ties need a model of at most {_ALL_FEATURES_MAX} features, got {F}")
        features = features.reshape(-1, n, K, T)
        seeds = features.shape[0]
        if order is None:
            if prefer_first is None:
                raise ValueError("update_ranked needs rankings (order) or pair labels (prefer_first)")
            y = prefer_first.reshape(seeds, n)
            order, tied = rankings_of_labels(y)
        else:
            order, y = order.reshape(seeds, n, K), None
            tied = None if tied is None else tied.reshape(seeds, n, K - 1)
        if tied is not None and not self.may_tie and bool(tied.any()):
            raise ValueError("tied rankings given to a learner made with may_tie=False")
        if answered is not None and not self.may_skip and not bool(answered.all()):
            raise ValueError("unanswered queries given to a learner made with may_skip=False")
        answered = answered.reshape(seeds, n) if (answered is not None and self.may_skip) else None
        counts = segment_counts(features, F)                                   # [seeds, n, K, F]
        part = {"counts": torch.take_along_dim(counts, order.unsqueeze(-1), dim=-2)}    # by position
        pattern = tie_patterns(tied) if (tied is not None and self.may_tie) else torch.zeros_like(order[..., 0])
        if self.ties == "none":
            a, masks, alpha = (t.to(counts.device) for t in lse_tables(K, self.rule, self.may_tie))
            part |= {"a": a[pattern], "masks": masks[pattern], "alpha": alpha[pattern]}
        else:
            same = pair_tables(K)[2].to(counts.device)[pattern].float()             # [seeds, n, P]
            P = same.shape[-1]
            win, lose = (1 - same) / P, torch.zeros_like(same)
            if y is not None:               # a pair's own label, soft where it is (order is [0, 1] unless y < 0.5)
                soft = torch.where(y < 0.5, 1 - y, y).unsqueeze(-1)
                win, lose = win * soft, win * (1 - soft)
            part |= {"win": win, "lose": lose, "tie": same / P}
        if answered is not None:
            part["answered"] = answered
        if self.fit == "all":
            self._buffer.append(part)
            part = {key: torch.cat([p[key] for p in self._buffer], dim=1) for key in part}
        loss = self._fit(part, weights)
        self._model_theta.copy_(self._theta)
        return float(loss[0]) if self._unbatched else loss.view(self._batch)

    def _fit(self, part: dict[str, torch.Tensor], weights: torch.Tensor | None) -> torch.Tensor:
        """``epochs`` passes over the queries ``part`` (per seed), in minibatches; ``[rows]`` last-epoch loss."""
        counts = part["counts"]
        seeds, N, K, F = counts.shape
        rows = self._theta.shape[0]
        per_row = {key: value for key, value in part.items() if key != "answered"}
        answered = part.get("answered")
        if weights is not None:                        # members: rows = seeds × E, each its seed's queries
            E = rows // seeds
            w = weights.reshape(seeds, E, N).float()
            if answered is not None:
                w = w * answered.unsqueeze(1)
            per_row = {key: value.unsqueeze(1).expand(seeds, E, *value.shape[1:]).reshape(rows, *value.shape[1:])
                       for key, value in per_row.items()}
            w = w.reshape(rows, N)
        elif answered is not None:                     # answered queries first, in collection order
            sort = torch.argsort((~answered).to(torch.int8), dim=-1, stable=True)
            per_row = {key: torch.take_along_dim(value, sort.view(rows, N, *(1,) * (value.dim() - 2)), dim=1)
                       for key, value in per_row.items()}
            w = (torch.arange(N, device=counts.device) < answered.sum(-1, keepdim=True)).float()
        else:
            w = None
        size = self.config.batch_size or N
        batches = []
        for lo in range(0, N, size):
            batch = {key: value[:, lo:lo + size] for key, value in per_row.items()}
            c = batch.pop("counts")
            b = c.shape[1]
            flat = c.reshape(rows, b * K, F).contiguous()
            if w is None:
                scale, active = torch.full((rows, b), 1.0 / b, device=c.device), None
            else:
                w_b = w[:, lo:lo + size]
                total = w_b.sum(-1, keepdim=True)
                scale, active = w_b / total.clamp(min=1), total > 0
            batches.append((flat.transpose(1, 2).contiguous(), flat, batch, scale, active))
        step = self._step_all(w is not None, self.config.epochs * len(batches))
        theta, grad = self._padded[:, :F], self._grad
        last = []
        for epoch in range(self.config.epochs):
            for c_t, c, batch, scale, active in batches:
                x = batched.vecmat(theta, c_t).view(rows, -1, K)                  # returns by position
                loss, g_x, g_param = self._loss(x, batch)
                if epoch == self.config.epochs - 1:
                    last.append(loss)
                grad[:, :F] = batched.vecmat((g_x * scale.unsqueeze(-1)).view(rows, -1), c)
                if self.learned_ties:
                    assert g_param is not None
                    grad[:, F] = (g_param * scale).sum(-1)
                step(active)
        losses = torch.cat(last, dim=1)
        if w is None:
            return losses.mean(-1)
        return (losses * w).sum(-1) / w.sum(-1)                     # NaN: nothing answered

    def _loss(self, x: torch.Tensor, batch: dict[str, torch.Tensor],
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(loss[rows, b], ∂/∂x[rows, b, K], ∂/∂φ[rows, b] or None)`` of a batch's queries."""
        if self.ties == "none":
            loss, g_x = lse_loss(x, batch["a"], batch["masks"], batch["alpha"])
            return loss, g_x, None
        first, second = self._pairs
        z = x.index_select(-1, first) - x.index_select(-1, second)                  # [rows, b, P]
        if self.learned_ties:
            phi = self._padded[:, self._theta.shape[-1]].view(-1, 1, 1)
            log_param = batched.softplus(phi) if self.ties == "rao-kupper" else phi
        else:
            log_param = torch.tensor(self._log_param, device=x.device)
        loss, g_z, g_log = tie_loss(self.ties, z, log_param, batch["win"], batch["lose"], batch["tie"])
        g_x = torch.zeros_like(x).index_add_(-1, first, g_z).index_add_(-1, second, -g_z)
        g_param = None
        if self.learned_ties:
            g_param = (g_log * batched.sigmoid(phi) if self.ties == "rao-kupper" else g_log).sum(-1)
        return loss.sum(-1), g_x, g_param
