"""Convergence metrics: small functions with stated shapes."""

from __future__ import annotations

import torch

from .mdp import TabularMDP
from .planning import policy_return, soft_policy, soft_value_iteration, uniform_policy


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """``½ Σ |p − q|`` between two distributions ``p[S]``, ``q[S]``."""
    return 0.5 * float((p - q).abs().sum())


def pearson_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """``√((1 − ρ)/2)`` of two flattened tensors; 0 identical up to scale and shift, 1 negated.

    A constant tensor has no direction: its distance to anything is defined as 0.5 (ρ = 0).
    """
    x = x.flatten().double() - x.double().mean()
    y = y.flatten().double() - y.double().mean()
    norm = x.norm() * y.norm()
    rho = float((x @ y) / norm) if norm > 0 else 0.0
    return max(0.0, (1.0 - min(1.0, rho)) / 2.0) ** 0.5


def epic_distance(learned: torch.Tensor, true: torch.Tensor) -> float:
    """EPIC distance (Gleave et al., 2021) between two tabular rewards.

    ``[S]`` state rewards: with uniform coverage the canonicalisation removes
    potential shaping and the constant, so EPIC is the Pearson distance of the
    centred rewards. ``[S, A]`` tables (a per-position token reward): each row
    is centred first, since a per-position shift cancels in every comparison of
    two sequences; then the Pearson distance of the centred tables.
    Invariant to positive scaling; 0 for equivalent rewards, 1 for a negation.
    """
    if learned.shape != true.shape:
        raise ValueError(f"rewards must have the same shape, got {tuple(learned.shape)} and {tuple(true.shape)}")
    if learned.dim() == 2:
        learned = learned - learned.mean(-1, keepdim=True)
        true = true - true.mean(-1, keepdim=True)
    return pearson_distance(learned, true)


def normalized_regret(
    mdp: TabularMDP,
    learned: torch.Tensor,
    true: torch.Tensor,
    horizon: int,
    discount: float = 1.0,
    temperature: float = 1.0,
) -> float:
    """True-reward regret of planning on ``learned``, scaled to the uniform policy.

    ``(J(π_true) − J(π_learned)) / (J(π_true) − J(π_uniform))`` where π_x is the
    soft-optimal policy for reward x and J the exact expected true return over
    ``horizon`` steps: 0 = as good as planning on the truth, 1 = no better than
    acting uniformly at random (it can exceed 1 when worse). 0 when the truth
    is no better than random (nothing to learn).
    """
    as_table = lambda r: r if r.dim() == 2 else r.unsqueeze(-1)   # [S] -> [S, 1]
    rewards = torch.stack([as_table(torch.as_tensor(r, dtype=torch.float32)) for r in (true, learned)])
    q = soft_value_iteration(mdp, rewards, horizon, discount, temperature)
    pi_true, pi_learned = soft_policy(q, temperature)
    j_true = policy_return(mdp, pi_true, true, horizon)
    j_learned = policy_return(mdp, pi_learned, true, horizon)
    j_uniform = policy_return(mdp, uniform_policy(mdp), true, horizon)
    gap = j_true - j_uniform
    return (j_true - j_learned) / gap if gap > 1e-9 * max(1.0, abs(j_true)) else 0.0


def preference_accuracy(logit_learned: torch.Tensor, margin_true: torch.Tensor) -> float:
    """Fraction of pairs whose learned preference ``sign(R̂₁ − R̂₂)`` agrees with the
    truth's ``sign(R₁ − R₂)``; true ties are left out (NaN if every pair is a tie)."""
    strict = margin_true != 0
    if not strict.any():
        return float("nan")
    agree = (logit_learned[strict] > 0) == (margin_true[strict] > 0)
    return float(agree.float().mean())
