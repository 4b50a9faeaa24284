"""Finite-horizon soft value iteration and exact policy evaluation.

Shapes: rewards ``r[..., s]`` (a state reward) or ``r[..., s, a]``; ``Q[..., s, a]``;
policies ``pi[s, a]``. Leading dimensions are a batch of rewards planned in
one call.
"""

from __future__ import annotations

import torch

from .mdp import TabularMDP
from .soft_backups import exp_space_backups, log_space_backups


def _as_action_major(mdp: TabularMDP, reward: torch.Tensor) -> torch.Tensor:
    """Reward as ``[..., A or 1, S]`` (action-major, so gathers are contiguous)."""
    reward = torch.as_tensor(reward, dtype=torch.float32)
    S, A = mdp.num_states, mdp.num_actions
    if reward.dim() == 1:
        reward = reward.unsqueeze(-1)
    if reward.dim() < 2 or reward.shape[-2] != S or reward.shape[-1] not in (1, A):
        raise ValueError(
            f"reward must be [S], [S, A] or [B, S, A] with S={S}, A={A} "
            f"(a last dimension of 1 means a state reward), got {tuple(reward.shape)}"
        )
    return reward.transpose(-1, -2)


_DENSE_EVAL_MAX_STATES = 1024


def soft_value_iteration(
    mdp: TabularMDP,
    reward: torch.Tensor,
    horizon: int,
    discount: float = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Finite-horizon soft value iteration; returns ``Q[..., s, a]`` after H backups.

    The recurrence (the gridworld seed's), with τ = temperature, γ = discount::

        Q_0(s, a) = 0
        V_i(s)    = logsumexp_a(τ · Q_i(s, a)) / τ
        Q_{i+1}(s, a) = r(s, a) + γ · Σ_k P[a, s, k] · V_i(next[a, s, k])

    With ``action_noise`` η the executed action is uniform w.p. η, so
    ``Q(s, a) = (1 − η)·Q_exec(s, a) + η·mean_b Q_exec(s, b)``.
    O(H·S·M) time on factored transitions (O(H·S·A·K) on sparse ones) and
    O(S·A) memory per reward in the batch.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    r = _as_action_major(mdp, reward)
    if discount == 1.0 and mdp.deterministic and not mdp.action_noise:
        q = exp_space_backups(mdp, r, horizon, temperature)
        if q is not None:
            return q.transpose(-1, -2)
    return log_space_backups(mdp, r, horizon, discount, temperature).transpose(-1, -2)


def soft_policy(q: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The soft-optimal policy ``pi[..., s, a] = softmax(τ · Q[..., s, a])``."""
    return torch.softmax(q if temperature == 1.0 else temperature * q, dim=-1)


def uniform_policy(mdp: TabularMDP) -> torch.Tensor:
    """``pi[s, a] = 1 / A``."""
    return torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)


def policy_return(mdp: TabularMDP, policy: torch.Tensor, reward: torch.Tensor, length: int) -> float:
    """Exact expected undiscounted return of a stationary policy over ``length`` steps.

    Propagates the state distribution ``d_t`` forward (no sampling):
    ``J = Σ_t Σ_s d_t(s) Σ_a π_exec(a|s) r(s, a)`` with ``d_0`` = start.
    ``reward`` is ``[S]`` or ``[S, A]``; actions are executed with the MDP's noise.
    """
    executed = mdp.executed_policy(policy)
    r = torch.as_tensor(reward, dtype=torch.float32)
    step_reward = r if r.dim() == 1 else (executed * r).sum(-1)       # [S]
    if mdp.num_states <= _DENSE_EVAL_MAX_STATES:         # one [S, S] matrix, one matmul a step
        p_pi_t = torch.einsum("sa,ast->ts", executed, mdp.executed_transitions).contiguous()
        d, visits = mdp.start, [mdp.start]
        for _ in range(length - 1):
            d = torch.mv(p_pi_t, d)                          # d'(t) = Σ_s d(s) P_π(s, t)
            visits.append(d)
        return float((torch.stack(visits) @ step_reward).sum(dtype=torch.float64))
    d = mdp.start.clone()
    total = torch.zeros((), dtype=torch.float64)
    for t in range(length):
        total += (d * step_reward).sum(dtype=torch.float64)
        if t + 1 < length:
            d = next_state_distribution(mdp, d, executed)
    return float(total)


def next_state_distribution(mdp: TabularMDP, d: torch.Tensor, executed: torch.Tensor) -> torch.Tensor:
    """``d'(s') = Σ_{s,a} d(s) π(a|s) P(s'|s, a)`` for executed-action probabilities ``π[s, a]``."""
    out = torch.zeros_like(d)
    if mdp.is_factored:
        assert mdp.moves is not None and mdp.move_probs is not None
        move_mass = d.unsqueeze(-1) * (executed @ mdp.move_probs)      # [S, M]
        return out.index_add_(0, mdp.moves.reshape(-1), move_mass.T.reshape(-1))
    mass = (d.unsqueeze(-1) * executed).T.unsqueeze(-1) * mdp.probs   # [A, S, K]
    return out.index_add_(0, mdp.next_states.reshape(-1), mass.reshape(-1))
