"""A simulated teacher's exact preference probabilities: what :meth:`rlhf.Teacher.label` draws its
labels from, without the draw (B-Pref's parts in the teacher's order, :mod:`rlhf.preferences.teachers`)::

    skip f     the pair is unanswered when max(R̂₁, R̂₂) < f
    equal f    P = 1/2 when |R̂₁ − R̂₂| < f
    myopic γ   step k of T weighted γ^(T−1−k) in the margin m = Σ_k γ^(T−1−k)·(s₁_k − s₂_k)
    rational   P = σ(β·m) (the teacher's preference model), or for the oracle 1, ½ (ties; 0 with
               ``ties="second"``), 0 by the sign of m
    mistake ε  P ← (1 − ε)·P + ε·(1 − P)

R̂ are the normalised returns ``(R − T·low) / (T·(high − low))``. Everything in float64: the sums of
float32 step scores are exact, so equal returns tie whatever the order of their steps.
"""

from __future__ import annotations

import math

import torch

from ..preferences.teachers import Teacher


def exact_preferences(teacher: Teacher, step_scores: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                      score_range: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p_first[P], answered[P])`` for pairs ``(first[p], second[p])`` of trajectories whose step
    scores under the teacher's preference model are ``step_scores[N, T]``; ``score_range`` is the
    (worst, best) step score."""
    T = step_scores.shape[-1]
    scores = step_scores.double()
    plain = scores.sum(-1)                                                     # [N]
    weighted = plain if teacher.myopic == 1.0 else \
        (scores * teacher.myopic ** torch.arange(T - 1, -1, -1, dtype=torch.float64)).sum(-1)
    margin = weighted[first] - weighted[second]
    if math.isinf(teacher.beta):
        p = (margin > 0).double()
        p[margin == 0] = 0.5 if teacher.ties == "half" else 0.0
    else:
        p = teacher.preference_model.probability(teacher.beta * margin).double()
    answered = torch.ones_like(margin, dtype=torch.bool)
    if teacher.skip or teacher.equal:
        low, high = score_range
        scale = T * (high - low) if high > low else 1.0
        normalised = (plain - T * low) / scale
        if teacher.skip:
            answered = torch.maximum(normalised[first], normalised[second]) >= teacher.skip
        if teacher.equal:
            p = torch.where((normalised[first] - normalised[second]).abs() < teacher.equal, 0.5, p)
    if teacher.mistake:
        p = p + teacher.mistake * (1 - 2 * p)
    return p, answered
