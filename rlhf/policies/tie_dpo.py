"""DPO with ties (Chen et al., 2024, "On Extending Direct Preference Optimization to Accommodate Ties"):
Bradley–Terry in DPO replaced by Rao–Kupper (``rk-dpo``, DPO-RK) or Davidson (``davidson-dpo``, DPO-D),
on pairs whose answer may be "equal" (:attr:`rlhf.PreferenceData.tie`).

With the pair's margin of implicit rewards ``z = β·(h₁ − h₂)`` and its outcomes first, second, tie
weighted ``(w, l, t) = (y − t/2, 1 − y − t/2, t)`` (y counts a tie as ½), the loss is the negative
log-likelihood of the tie model of :mod:`rlhf.preferences.ties` (the teachers' own parametrisation)::

    L = −[w·log P(1 ≻ 2) + l·log P(2 ≻ 1) + t·log P(1 = 2)]

    Rao–Kupper, θ > 1, η = log θ:  P(1 ≻ 2) = σ(z − η),  P(2 ≻ 1) = σ(−z − η),
                                   P(1 = 2) = (θ² − 1)·σ(z − η)·σ(−z − η)
    Davidson, ν > 0, λ = log ν:    P(1 ≻ 2), P(2 ≻ 1), P(1 = 2) = softmax(z/2, −z/2, λ)

(computed by :func:`rlhf.learning.rankings.tie_loss`, the reward learner's). The tie parameter is the
method's ``tie_param`` (θ or ν; defaults 2 and 1, :data:`rlhf.preferences.ties.DEFAULT_TIE_PARAMS`:
equal trajectories tie with probability 1/3), fixed, not learned. TRL has no tie losses: the name is the
library's (a teacher's ``rao-kupper:θ`` / ``davidson:ν``, the reward learner's ``tie_param``). Under a
teacher with the same tie model and parameter, the population optimum has ``z = β_T·(R₁ − R₂)`` (the
three-outcome likelihood is strictly proper in z), i.e. the KL-regularised optimum of ``β_T·r`` where a
trajectory's log-ratio can be any function of its return; without ties (t = 0) the loss is still not
DPO's (θ > 1 and ν > 0 reserve probability for a tie).
"""

from __future__ import annotations

import torch

from ..core import batched
from ..learning.rankings import tie_loss
from ..preferences.ties import DEFAULT_TIE_PARAMS, check_tie_param, log_tie_param
from .methods import PairLoss, direct_method, register_alignment_method


def outcomes(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w, l, t)``: the weights of first, second and tie of labels ``[..., 2]`` = (y, P(tie))."""
    y, t = labels[..., 0], labels[..., 1]
    return (y - t / 2).clamp_min(0), (1 - y - t / 2).clamp_min(0), t


def make_tie_dpo(model: str, beta: float, tie_param: float) -> PairLoss:
    """The :class:`PairLoss` of ``model`` (``"rao-kupper"`` or ``"davidson"``) at β and θ or ν."""
    check_tie_param(model, tie_param)
    log_param = log_tie_param(model, tie_param)

    def loss(h1: torch.Tensor, h2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return tie_loss(model, beta * (h1 - h2), log_param, *outcomes(labels))[0]

    def gradient(h1: torch.Tensor, h2: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = beta * tie_loss(model, beta * (h1 - h2), log_param, *outcomes(labels))[1]
        return d, -d

    def curvature(h1: torch.Tensor, h2: torch.Tensor, labels: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = beta * (h1 - h2)
        win, lose, tie = outcomes(labels)
        if model == "rao-kupper":      # ∂²/∂z² of (w + t)·softplus(η − z) + (l + t)·softplus(η + z)
            s1, s2 = batched.sigmoid(log_param - z), batched.sigmoid(log_param + z)
            bend = (win + tie) * s1 * (1 - s1) + (lose + tie) * s2 * (1 - s2)
        else:                          # (w + l + t)·Var of (1/2, −1/2, 0) under softmax(z/2, −z/2, λ)
            half = z / 2
            top = torch.maximum(half.abs(), torch.as_tensor(log_param, dtype=z.dtype))
            e_win, e_lose, e_tie = torch.exp(half - top), torch.exp(-half - top), torch.exp(log_param - top)
            total = e_win + e_lose + e_tie
            p_win, p_lose = e_win / total, e_lose / total
            bend = (win + lose + tie) * ((p_win + p_lose) - (p_win - p_lose) ** 2) / 4
        c = beta * beta * bend
        return c, -c, c

    return PairLoss(loss, gradient, curvature, reads_ties=True)


def make_rk_dpo(beta: float, length: int, tie_param: float) -> PairLoss:
    return make_tie_dpo("rao-kupper", beta, tie_param)


def make_davidson_dpo(beta: float, length: int, tie_param: float) -> PairLoss:
    return make_tie_dpo("davidson", beta, tie_param)


RK_DPO = register_alignment_method(direct_method(
    "rk-dpo", make_rk_dpo, {"tie_param": DEFAULT_TIE_PARAMS["rao-kupper"]},
    description="Chen et al. 2024: DPO with Rao–Kupper ties (tie_param θ > 1, fixed)"))

DAVIDSON_DPO = register_alignment_method(direct_method(
    "davidson-dpo", make_davidson_dpo, {"tie_param": DEFAULT_TIE_PARAMS["davidson"]},
    description="Chen et al. 2024: DPO with Davidson ties (tie_param ν > 0, fixed)"))
