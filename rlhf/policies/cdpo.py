"""Conservative DPO (Mitchell, 2023, "A note on DPO with noisy preferences and relationship to IPO"):
DPO with label smoothing ε, TRL's ``loss_type="sigmoid"`` with ``label_smoothing``."""

from __future__ import annotations

import torch

from .dpo import dpo_bend, dpo_loss, dpo_slope
from .methods import PairLoss, direct_method, margin_loss, register_alignment_method


def cdpo_loss(logits: torch.Tensor, prefer_first: torch.Tensor, beta: float = 0.1,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Mitchell (2023), eq. 3, elementwise: the labels are flipped with probability ε::

        L_cDPO = −(1 − ε)·log σ(β z) − ε·log σ(−β z)

    i.e. DPO (:func:`~rlhf.policies.dpo.dpo_loss`) with the soft label ``(1 − ε)·y + ε·(1 − y)``."""
    return dpo_loss(logits, _smoothed(prefer_first, label_smoothing), beta)


def _smoothed(y: torch.Tensor, epsilon: float) -> torch.Tensor:
    return (1 - epsilon) * y + epsilon * (1 - y)


def make_cdpo(beta: float, length: int, label_smoothing: float) -> PairLoss:
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing!r}")
    return margin_loss(lambda z, y: cdpo_loss(z, y, beta, label_smoothing),
                       lambda z, y: dpo_slope(z, _smoothed(y, label_smoothing), beta),
                       lambda z, y: dpo_bend(z, y, beta))


CDPO = register_alignment_method(direct_method(
    "cdpo", make_cdpo, {"label_smoothing": 0.1},
    description="Mitchell 2023: DPO with labels smoothed by ε (robust to flipped labels)"))
