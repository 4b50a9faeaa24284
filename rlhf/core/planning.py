"""Finite-horizon soft value iteration and exact policy evaluation.

Shapes: rewards ``r[..., s]`` (a state reward) or ``r[..., s, a]``; ``Q[..., s, a]``;
policies ``pi[s, a]`` (exact evaluation also takes time-indexed ``pi[t, s, a]``). Leading dimensions
are a batch of rewards planned in one call.
"""

from __future__ import annotations

import math

import torch

from . import batched
from .mdp import TabularMDP
from .regularized import time_indexed_returns
from .soft_backups import evaluation_backups, exp_space_backups, exp_space_fits, hard_max_backups, log_space_backups


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


_DENSE_EVAL_MAX_STATES = 64
"""Up to here a policy's return uses its dense [S, S] transition matrix (one product a step)."""


def soft_value_iteration(
    mdp: TabularMDP,
    reward: torch.Tensor,
    horizon: int,
    discount: float = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Finite-horizon soft value iteration; returns ``Q[..., s, a]`` after H backups.

    The recurrence (the gridworld example's), with τ = temperature, γ = discount::

        Q_0(s, a) = 0
        V_i(s)    = logsumexp_a(τ · Q_i(s, a)) / τ
        Q_{i+1}(s, a) = r(s, a) + γ · Σ_k P[a, s, k] · V_i(next[a, s, k])

    With ``action_noise`` η the executed action is uniform w.p. η, so
    ``Q(s, a) = (1 − η)·Q_exec(s, a) + η·mean_b Q_exec(s, b)``.
    O(H·S·M) time on factored transitions (O(H·S·A·K) on sparse ones) and
    O(S·A) memory per reward in the batch. ``temperature=math.inf`` is the hard max,
    ``V_i(s) = max_a Q_i(s, a)``: the Q of the optimal policy.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    r = _as_action_major(mdp, reward)
    if math.isinf(temperature):
        return hard_max_backups(mdp, r, horizon, discount).transpose(-1, -2)
    if not (discount == 1.0 and mdp.deterministic and not mdp.action_noise):
        return log_space_backups(mdp, r, horizon, discount, temperature).transpose(-1, -2)
    # Exp space where a reward's range allows it, log space for the others: decided per
    # reward, so a reward's Q does not depend on the others planned beside it.
    fits = exp_space_fits(r, horizon, temperature, mdp.num_actions)
    if bool(fits.all()):
        return exp_space_backups(mdp, r, horizon, temperature).transpose(-1, -2)
    if not bool(fits.any()):
        return log_space_backups(mdp, r, horizon, discount, temperature).transpose(-1, -2)
    q = torch.empty(*r.shape[:-2], mdp.num_actions, mdp.num_states, device=r.device)
    q[fits] = exp_space_backups(mdp, r[fits], horizon, temperature)
    q[~fits] = log_space_backups(mdp, r[~fits], horizon, discount, temperature)
    return q.transpose(-1, -2)


def soft_policy(q: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The soft-optimal policy ``pi[..., s, a] = softmax(τ · Q[..., s, a])``; at ``temperature=math.inf``
    the greedy policy, uniform over the actions that tie for the max (the limit of the softmax)."""
    if math.isinf(temperature):
        best = (q == q.amax(dim=-1, keepdim=True)).float()
        return best / best.sum(-1, keepdim=True)
    return torch.softmax(q if temperature == 1.0 else temperature * q, dim=-1)


def optimal_advantages(mdp: TabularMDP, reward: torch.Tensor, horizon: int, discount: float = 1.0) -> torch.Tensor:
    """``A*[s, a] = Q*(s, a) − max_b Q*(s, b)`` (≤ 0) of the hard-max recurrence over ``horizon``
    steps: how much choosing a in s loses against acting optimally with the horizon ahead (the
    finite-horizon counterpart of Knox et al.'s infinite-horizon optimal advantage; action noise
    included, as in Q). A segment's summed A* is minus its regret for deterministic transitions."""
    q = soft_value_iteration(mdp, reward, horizon, discount, math.inf)
    return q - q.amax(dim=-1, keepdim=True)


def soft_optimal_policy(mdp: TabularMDP, reward: torch.Tensor, horizon: int, discount: float = 1.0,
                        temperature: float = 1.0) -> torch.Tensor:
    """``pi[..., s, a] = softmax(τ · Q[..., s, a])`` for ``Q`` of :func:`soft_value_iteration` on
    ``reward`` (``[S]``, ``[S, A]`` or a batch ``[..., S, A or 1]``): planning on a reward."""
    return soft_policy(soft_value_iteration(mdp, reward, horizon, discount, temperature), temperature)


def single_reward_q(mdp: TabularMDP, reward: torch.Tensor, horizon: int, discount: float,
                    temperature: float) -> torch.Tensor:
    """``Q[S, A]`` for one reward (``[S]`` or ``[S, A]``) planned as a batch of one: the planner's result
    for a reward does not depend on its batch, so this is what the training loop's batches give it."""
    r = torch.as_tensor(reward, dtype=torch.float32)
    table = (r if r.dim() == 2 else r.unsqueeze(-1)).unsqueeze(0)
    return soft_value_iteration(mdp, table, horizon, discount, temperature)[0]


def uniform_policy(mdp: TabularMDP) -> torch.Tensor:
    """``pi[s, a] = 1 / A``."""
    return torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, device=mdp.start.device)


def policy_return(mdp: TabularMDP, policy: torch.Tensor, reward: torch.Tensor, length: int) -> float:
    """Exact expected undiscounted return of a stationary policy ``pi[s, a]``, or a time-indexed one
    ``pi[H, s, a]`` (``H >= length``, ``pi[0]`` the first step), over ``length`` steps (see
    :func:`expected_returns`)."""
    return float(expected_returns(mdp, policy, reward, length, time_indexed=torch.as_tensor(policy).dim() == 3))


def expected_returns(mdp: TabularMDP, policy: torch.Tensor, reward: torch.Tensor, length: int,
                     time_indexed: bool = False) -> torch.Tensor:
    """``[...]`` float64: the exact expected undiscounted return of each stationary policy
    ``pi[..., s, a]`` over ``length`` steps (no sampling); with ``time_indexed``, of each
    time-indexed policy ``pi[..., H, s, a]`` (``H >= length``, by backward induction in float64:
    :func:`~rlhf.core.regularized.time_indexed_returns`).

    ``J = Σ_t Σ_s d_t(s) Σ_a π_exec(a|s) r(s, a)`` with ``d_0`` = start: up to 64 states by
    propagating ``d_t`` forward (one dense [S, S] product a step), above by backward induction
    on the sparse transitions (:func:`~rlhf.core.soft_backups.evaluation_backups`); both in float64
    (in float32, J ≈ −414 of a 15×15 grid was off by ~1e-4, a regret by up to 2e-3). ``reward`` is
    ``[S]`` or ``[S, A]``, the same for every policy; actions are executed with the MDP's
    noise. Each policy's result is independent of the others in the batch.
    """
    if time_indexed:
        return time_indexed_returns(mdp, policy, reward, length)
    executed = mdp.executed_policy(policy)
    r = torch.as_tensor(reward, device=executed.device).double()
    step_reward = r if r.dim() == 1 else (executed.double() * r).sum(-1)      # [S] or [..., S]
    batch = executed.shape[:-2]
    flat = executed.reshape(-1, *executed.shape[-2:])
    if mdp.num_states > _DENSE_EVAL_MAX_STATES:
        values = evaluation_backups(mdp, flat.transpose(-1, -2).contiguous(),
                                    step_reward.reshape(-1, mdp.num_states), length)
        return (values * mdp.start.double()).sum(-1).view(batch)
    d = mdp.start.double().expand(flat.shape[0], 1, -1)      # row vectors [B, 1, S], as batched.vecmat
    visits = [d]
    # P_π(s, t) = Σ_a π(a|s) P(t|s, a), summed over a element by element
    moves = mdp.cached("planning.executed_transitions_by_state",                   # [S, A, S] float64
                       lambda: mdp.executed_transitions.double().transpose(0, 1))
    p_pi = (flat.double().unsqueeze(-1) * moves).sum(-2)
    product = batched.bmm_for(d.shape[0], mdp.num_states)
    for _ in range(length - 1):
        d = product(d, p_pi)                            # d'(t) = Σ_s d(s) P_π(s, t)
        visits.append(d)
    per_step = torch.cat(visits, -2) * step_reward.reshape(-1, 1, mdp.num_states)
    return per_step.sum(dim=(-2, -1)).view(batch)
