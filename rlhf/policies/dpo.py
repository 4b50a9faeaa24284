"""DPO (Rafailov et al., 2023, "Direct Preference Optimization: Your Language Model is Secretly a
Reward Model"), TRL's ``loss_type="sigmoid"``."""

from __future__ import annotations

import torch

from ..core import batched
from .methods import PairLoss, direct_method, margin_loss, register_alignment_method


def dpo_loss(logits: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Rafailov et al. (2023), eq. 7, elementwise::

        L_DPO = −log σ(β · [log π(y_w)/π_ref(y_w) − log π(y_l)/π_ref(y_l)])

    ``logits`` is the bracket for the first trajectory as y_w (TRL's ``logits``, z); with a soft label
    y = P(first preferred) the two orders mix: ``−y·log σ(β z) − (1 − y)·log σ(−β z)``."""
    s = beta * logits
    return prefer_first * batched.softplus(-s) + (1 - prefer_first) * batched.softplus(s)


def dpo_slope(logits: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """``∂L/∂z = β·(σ(β z) − y)``."""
    return beta * (batched.sigmoid(beta * logits) - prefer_first)


def dpo_bend(logits: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """``∂²L/∂z² = β²·σ(β z)·σ(−β z)``."""
    p = batched.sigmoid(beta * logits)
    return beta * beta * p * (1 - p)


def make_dpo(beta: float, length: int) -> PairLoss:
    return margin_loss(lambda z, y: dpo_loss(z, y, beta), lambda z, y: dpo_slope(z, y, beta),
                       lambda z, y: dpo_bend(z, y, beta))


DPO = register_alignment_method(direct_method(
    "dpo", make_dpo, description="Rafailov et al. 2023: logistic loss on the summed log-ratio margin"))
