"""IPO (Azar et al., 2023, "A General Theoretical Paradigm to Understand Learning from Human
Preferences"), TRL's ``loss_type="ipo"``; ``length_average`` divides each trajectory's summed
log-ratio by its length first (TRL averages IPO's log-probabilities over tokens: trl #1677)."""

from __future__ import annotations

import torch

from .methods import PairLoss, direct_method, margin_loss, register_alignment_method


def ipo_loss(logits: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Azar et al. (2023), eq. 17, elementwise, with τ = β (TRL's name)::

        L_IPO = (log π(y_w)/π_ref(y_w) − log π(y_l)/π_ref(y_l) − 1/(2τ))²

    With a soft label y: ``y·(z − 1/(2τ))² + (1 − y)·(z + 1/(2τ))²``, minimised at ``z = (2y − 1)/(2τ)``."""
    k = 1 / (2 * beta)
    return prefer_first * (logits - k) ** 2 + (1 - prefer_first) * (logits + k) ** 2


def make_ipo(beta: float, length: int, length_average: bool) -> PairLoss:
    scale = 1.0 / length if length_average else 1.0      # z of the averaged log-ratios: z / T
    k = 1 / (2 * beta)
    return margin_loss(lambda z, y: ipo_loss(z * scale, y, beta),
                       lambda z, y: 2 * scale * (z * scale - (2 * y - 1) * k),
                       lambda z, y: torch.full_like(z, 2 * scale * scale))


IPO = register_alignment_method(direct_method(
    "ipo", make_ipo, {"length_average": False},
    description="Azar et al. 2023: squared loss regressing the log-ratio margin on 1/(2β)"))
