"""CPL (Hejna et al., 2023, "Contrastive Preference Learning: Learning from Human Feedback without RL"):
a contrastive loss on summed ``α·log π`` (no reference), consistent for regret preferences: if a
teacher prefers by summed optimal advantages ``A*`` of the maximum-entropy problem at temperature α,
the population optimum is ``π*(a|s) = exp(A*(s, a)/α)``. β is α."""

from __future__ import annotations

import torch

from ..core import batched
from .methods import PairLoss, direct_method, register_alignment_method


def cpl_loss(first_logps: torch.Tensor, second_logps: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1,
             contrastive_bias: float = 1.0) -> torch.Tensor:
    """Hejna et al. (2023), eq. 5 (CPL-λ, undiscounted), elementwise, with α = β and λ the contrastive bias::

        L_CPL = −log [exp(α Σ_t log π(a⁺_t|s⁺_t)) / (exp(α Σ_t log π(a⁺_t|s⁺_t)) + exp(λ α Σ_t log π(a⁻_t|s⁻_t)))]
              = softplus(α·(λ·h⁻ − h⁺))

    ``first_logps``, ``second_logps``: each trajectory's summed ``log π``; a soft label mixes the two orders."""
    a = beta
    return (prefer_first * batched.softplus(a * (contrastive_bias * second_logps - first_logps))
            + (1 - prefer_first) * batched.softplus(a * (contrastive_bias * first_logps - second_logps)))


def make_cpl(beta: float, length: int, contrastive_bias: float) -> PairLoss:
    if not 0.0 < contrastive_bias <= 1.0:
        raise ValueError(f"contrastive_bias must be in (0, 1], got {contrastive_bias!r}")
    a, lam = beta, contrastive_bias

    def gradient(h1: torch.Tensor, h2: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1, s2 = batched.sigmoid(a * (lam * h2 - h1)), batched.sigmoid(a * (lam * h1 - h2))
        return a * (-y * s1 + (1 - y) * lam * s2), a * (y * lam * s1 - (1 - y) * s2)

    def curvature(h1: torch.Tensor, h2: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1, s2 = batched.sigmoid(a * (lam * h2 - h1)), batched.sigmoid(a * (lam * h1 - h2))
        b1, b2 = y * s1 * (1 - s1), (1 - y) * s2 * (1 - s2)
        return a * a * (b1 + lam * lam * b2), -a * a * lam * (b1 + b2), a * a * (lam * lam * b1 + b2)

    return PairLoss(lambda h1, h2, y: cpl_loss(h1, h2, y, a, lam), gradient, curvature)


CPL = register_alignment_method(direct_method(
    "cpl", make_cpl, {"contrastive_bias": 1.0}, uses_reference=False,
    description="Hejna et al. 2023: contrastive loss on summed α·log π (regret preferences)"))
