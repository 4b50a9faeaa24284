"""SLiC (Zhao et al., 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"): the hinge
on the log-ratio margin, TRL's ``loss_type="hinge"``."""

from __future__ import annotations

import torch

from ..core import batched
from .methods import PairLoss, direct_method, margin_loss, register_alignment_method


def hinge_loss(logits: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Zhao et al. (2023), eq. 2, the rank-calibration hinge ``max(0, δ − log π(y_w) + log π(y_l))`` on
    the reference's log-ratios with the margin δ = 1/β, as TRL writes it (scaled by β)::

        L_hinge = max(0, 1 − β·z)

    With a soft label y: ``y·max(0, 1 − β z) + (1 − y)·max(0, 1 + β z)``."""
    return prefer_first * torch.relu(1 - beta * logits) + (1 - prefer_first) * torch.relu(1 + beta * logits)


def _smoothed(beta: float, kappa: float) -> PairLoss:
    """The hinge with ``max(0, x)`` replaced by ``κ·log(1 + e^(x/κ))`` (at most κ·log 2 above it)."""
    def value(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return kappa * (y * batched.softplus((1 - beta * z) / kappa)
                        + (1 - y) * batched.softplus((1 + beta * z) / kappa))

    def slope(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return beta * (-y * batched.sigmoid((1 - beta * z) / kappa) + (1 - y) * batched.sigmoid((1 + beta * z) / kappa))

    def bend(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = batched.sigmoid((1 - beta * z) / kappa), batched.sigmoid((1 + beta * z) / kappa)
        return beta * beta / kappa * (y * a * (1 - a) + (1 - y) * b * (1 - b))

    return margin_loss(value, slope, bend)


def make_slic(beta: float, length: int) -> PairLoss:
    def slope(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = beta * z
        return beta * (-y * (s < 1).to(z.dtype) + (1 - y) * (s > -1).to(z.dtype))

    return margin_loss(lambda z, y: hinge_loss(z, y, beta), slope, smoothed=lambda kappa: _smoothed(beta, kappa))


SLIC = register_alignment_method(direct_method(
    "slic", make_slic, description="Zhao et al. 2023: hinge on the log-ratio margin (TRL's hinge)"))
