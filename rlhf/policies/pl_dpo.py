"""Plackett–Luce DPO (Rafailov et al., 2023, "Direct Preference Optimization: Your Language Model is
Secretly a Reward Model", appendix A.3): DPO on rankings of K trajectories (:class:`rlhf.RankingData`).

With ``x_k = β·h(τ_k)`` the implicit rewards of a ranking's trajectories by position (best first)::

    L_PL-DPO = −log Π_{k=0}^{K−1} exp(x_k) / Σ_{j ≥ k} exp(x_j)
             = Σ_{k=0}^{K−2} [logsumexp(x_k, …, x_{K−1}) − x_k]

At K = 2 this is DPO's ``−log σ(β·(h₁ − h₂))``, and pairs (:class:`rlhf.PreferenceData`) are read as
rankings of two with a soft label weighing the two orders (:meth:`rlhf.RankingData.from_pairs`), so
``pl-dpo`` on pairs is ``dpo``. A ranking with tied positions (a teacher's ``equal`` part, the oracle's
``"half"`` ties) is ranked in every order its ties allow alike: the loss is the mean of the above over
those orders, as the reward learner's (:mod:`rlhf.learning.rankings`), in the same closed form
``−a·x + Σ_q α_q·logsumexp(x[mask_q])`` whose coefficients depend on K and the tie pattern alone
(:func:`pl_tables`, exact in float64). Under a Plackett–Luce teacher of logits ``β_T·R`` the population
optimum has ``β·h(τ) = β_T·R(τ) + const`` (the likelihood is strictly proper), i.e. DPO's theorem: the
KL-regularised optimum of the reward ``β_T·r``, where a trajectory's log-ratio can be any function of
its return (deterministic transitions). No hyperparameter besides β; TRL has no ranking loss.
"""

from __future__ import annotations

import functools

import torch

from ..core import batched
from ..preferences.rankings import likelihood_tables
from .methods import RankingLoss, ranking_method, register_alignment_method


def pl_tables(K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a[P, K], masks[P, Q, K] bool, alpha[P, Q])`` float64 for the 2^(K−1) tie patterns P of a ranking
    of K: the Plackett–Luce loss averaged over the orders a pattern's ties allow,
    ``−a·x + Σ_q α_q·logsumexp(x[mask_q])`` (:func:`rlhf.preferences.rankings.likelihood_tables`, the
    reward learner's table before its rounding to float32)."""
    return likelihood_tables(K, "plackett-luce", True)


@functools.cache
def _term_counts(K: int) -> torch.Tensor:
    """``[P]`` the terms (``α > 0``) of each tie pattern's row of :func:`pl_tables` (they come first)."""
    return (pl_tables(K)[2] > 0).sum(-1)


def _softmaxes(x: torch.Tensor, pattern: torch.Tensor,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lse[..., Q], softmax[..., Q, K], a[..., K], alpha[..., Q])`` of the pattern's terms at ``x[..., K]``,
    over the most terms a present pattern has (the rest are ``α = 0`` padding, which adds exact zeros:
    a row's values do not depend on the patterns of the rows around it); sums over a row's terms and
    positions are elementwise adds in order (batch-invariant)."""
    K = x.shape[-1]
    a, masks, alpha = pl_tables(K)
    tied = bool(pattern.any())
    Q = int(_term_counts(K)[pattern.reshape(-1).cpu()].max()) if tied else K - 1
    pick = pattern if tied else 0            # no ties: the untied row, broadcast (the same values)
    a = a.to(device=x.device, dtype=x.dtype)[pick]
    masks = masks[:, :Q].to(device=x.device)[pick]
    alpha = alpha[:, :Q].to(device=x.device, dtype=x.dtype)[pick]
    spread = torch.where(masks, x.unsqueeze(-2), -torch.inf)                     # [..., Q, K]
    top = spread.amax(-1, keepdim=True)
    weights = torch.exp(spread - top)                                             # 0 outside the mask
    total = batched.step_sums(weights).unsqueeze(-1)
    return (top + torch.log(total)).squeeze(-1), weights / total, a, alpha


def pl_dpo_loss(h: torch.Tensor, pattern: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """``L[...]`` of the module docstring for summed log-ratios by position ``h[..., K]`` (best first) and
    tie patterns ``pattern[...]`` (0: no ties)."""
    x = beta * h
    lse, _, a, alpha = _softmaxes(x, pattern)
    return batched.step_sums(alpha * lse) - batched.step_sums(a * x)


def pl_dpo_gradient(h: torch.Tensor, pattern: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """``∂L/∂h[..., K] = β·(Σ_q α_q·softmax_q(x) − a)``."""
    _, softmax, a, alpha = _softmaxes(beta * h, pattern)
    weighted = softmax * alpha.unsqueeze(-1)
    return beta * (batched.step_sums(weighted.transpose(-1, -2)) - a)


def pl_dpo_curvature(h: torch.Tensor, pattern: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """``∂²L/∂h∂h[..., K, K] = β²·Σ_q α_q·(diag s_q − s_q s_qᵀ)``, ``s_q = softmax_q(x)``."""
    _, s, _, alpha = _softmaxes(beta * h, pattern)
    weighted = alpha.unsqueeze(-1) * s                                             # [..., Q, K]
    outer = torch.einsum("...qk,...ql->...kl", weighted, s)
    return beta * beta * (torch.diag_embed(weighted.sum(-2)) - outer)


def make_pl_dpo(beta: float, length: int) -> RankingLoss:
    return RankingLoss(lambda h, p: pl_dpo_loss(h, p, beta), lambda h, p: pl_dpo_gradient(h, p, beta),
                       lambda h, p: pl_dpo_curvature(h, p, beta))


PL_DPO = register_alignment_method(ranking_method(
    "pl-dpo", make_pl_dpo,
    description="Rafailov et al. 2023 (A.3): Plackett–Luce likelihood of rankings of K on the implicit rewards"))
