"""Optimal advantages of a reward by differentiable finite-horizon backward induction, and their
vector–Jacobian product: what Knox et al.'s (2022) regret learner differentiates through.

The recurrence is the planner's (:func:`rlhf.soft_value_iteration`) with the soft max at temperature
κ (γ = discount, η = action noise, ``P[a, s, k]`` the k-th successor of a in s)::

    Q_0 = 0
    V_i(s)        = (1/κ) · log Σ_a exp(κ · Q_i(s, a))            (κ = ∞: max_a Q_i(s, a))
    Q_{i+1}(s, a) = r(s, a) + γ · Σ_k P[a, s, k] · V_i(next[a, s, k])   (then mixed: (1 − η)·Q + η·mean_b Q)
    A_κ(s, a)     = Q_H(s, a) − V_H(s)

At κ = ∞, ``A_∞`` is :func:`rlhf.optimal_advantages` bit for bit (the same operations in the same
order). ``A_κ → A_∞`` as κ → ∞, uniformly: ``0 ≤ V_i^κ − V_i^∞ ≤ (1 + γ + … ) · log(A) / κ``.

The derivative of ``V_i`` with respect to ``Q_i(s, ·)`` is the policy ``π_i(a | s) = exp(κ·(Q_i −
V_i))`` (at κ = ∞ the greedy one, split evenly between tied actions: a subgradient, the gradient
where the max is unique). With those weights fixed, ``A`` is linear in r, and its vector–Jacobian
product (:func:`advantage_vjp`) runs the recurrence backwards::

    G_{Q_H}(s, a)    = G(s, a) − π_H(a | s) · Σ_b G(s, b)
    G'_i             = mixᵀ(G_{Q_i})       (the mix is self-adjoint)
    ∂/∂r(s, a)      += G'_i(s, a)          for i = H … 1
    G_{V_{i−1}}(s')  = γ · Σ_{a, s, k: next[a, s, k] = s'} P[a, s, k] · G'_i(s, a)
    G_{Q_{i−1}}(s, a) = π_{i−1}(a | s) · G_{V_{i−1}}(s)           (Q_0 is constant: stop at i = 1)

Shapes: action-major, ``r[..., A, S]``, ``A_κ[..., A, S]``, weights ``[H, ..., A, S]`` (π_1 … π_H);
a cotangent ``[..., m, A, S]`` carries m products at once (one per pair of segments). Every
operation is elementwise, a gather, a max, a log-sum-exp or a sum over actions, or an ``index_add``
(accumulated in index order): a reward's result does not depend on the batch around it.
"""

from __future__ import annotations

import math

import torch

from . import batched
from .mdp import TabularMDP
from .soft_backups import _chunks, _mix_executed_actions, _Work

DENSE_MAX_STATES = 64
"""Up to here the backward steps are row-vector products with dense ``[S, S]`` step matrices."""


def soft_advantages(mdp: TabularMDP, r: torch.Tensor, horizon: int, discount: float, kappa: float,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A_κ[..., A, S], weights[H, ..., A, S])`` of rewards ``r[..., A, S]`` (action-major; an
    ``[..., 1, S]`` state reward is broadcast), by the recurrence in the module docstring. Three
    operations a backup (gather, add, max or log-sum-exp); the weights come after the loop, all
    steps at once."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    batch, A, S = r.shape[:-2], mdp.num_actions, mdp.num_states
    work, chunk = _Work(mdp, batch, buffered=False), _chunks(mdp, S)[0]
    hard = math.isinf(kappa)
    qs = r.new_empty(horizon, *batch, A, S)               # Q_1 … Q_H
    vs = r.new_empty(horizon + 1, *batch, S)              # V_0 … V_H
    q_steps, v_steps = qs.unbind(0), vs.unbind(0)
    q = r.new_zeros(*batch, A, S)
    gathered = r.new_empty(*batch, A * S)                 # a deterministic MDP's successor values
    successor_values = gathered.view(*batch, A, S)
    for i in range(horizon + 1):
        if hard:               # as hard_max_backups: V = max_a Q
            torch.amax(q, dim=-2, out=v_steps[i])
        else:
            torch.logsumexp(q * kappa, dim=-2, out=v_steps[i]).div_(kappa)
        if i == horizon:
            break
        if mdp.deterministic:  # work.expected's gather, without its dispatch
            torch.index_select(v_steps[i], -1, chunk.index, out=gathered)
            expected = successor_values
        else:
            expected = work.expected(chunk, v_steps[i])
        q = torch.add(r, expected, alpha=discount, out=q_steps[i])
        _mix_executed_actions(mdp.action_noise, q)
    v = vs[1:].unsqueeze(-2)
    if hard:                   # the greedy policies, ties split evenly; A as optimal_advantages forms it
        weights = (qs == v).to(qs.dtype)
        weights.div_(weights.sum(-2, keepdim=True))
        advantages = q - q.amax(dim=-2, keepdim=True)
    else:
        weights = torch.sub(qs, v).mul_(kappa).exp_()
        advantages = q - vs[horizon].unsqueeze(-2)
    return advantages, weights


def advantage_vjp(mdp: TabularMDP, weights: torch.Tensor, cotangent: torch.Tensor, discount: float) -> torch.Tensor:
    """``[..., A, S]``: ``Σ_{a', s'} G[..., a', s'] · ∂A_κ(s', a') / ∂r(s, a)`` for a cotangent
    ``G = cotangent[..., A, S]``, the derivative taken at the policies ``weights[H, ..., A, S]`` of
    :func:`soft_advantages` (the backward recurrence of the module docstring).

    Below a step's top, ``G'_i = mixᵀ(π_i ⊙ G_{V_i})`` = ``π̃_i ⊙ G_{V_i}`` with ``π̃ = (1 − η)·π + η/A``, so
    one backward step is ``G_{V_{i−1}} = γ · G_{V_i} · D_i``, ``D_i[s, s'] = Σ_{a, k} π̃_i(a | s)·P[a, s, k]·
    [next[a, s, k] = s']``: with at most :data:`DENSE_MAX_STATES` states the ``D_i`` of every step are
    built at once and a step is one row-vector product (as :func:`rlhf.core.batched.vecmat`: ``bmm`` of
    ``[rows, 1, S]``, batch-invariant); above, a
    step scatters ``π̃_i ⊙ G_{V_i}`` onto the successors (``index_add``)."""
    horizon = weights.shape[0]
    batch, A, S = cotangent.shape[:-2], mdp.num_actions, mdp.num_states
    rows = batch.numel()
    eta = mdp.action_noise
    pi = weights.reshape(horizon, rows, A, S)
    pi = pi if not eta else pi * (1 - eta) + eta / A              # π̃: the executed actions' weights
    index = mdp.next_states.reshape(-1)                            # [A·S·K] successors, action-major
    probs = None if mdp.deterministic else mdp.probs.reshape(-1)
    top = cotangent.reshape(rows, A, S)
    top = _mix_executed_actions(eta, top - weights[-1].reshape(rows, A, S) * top.sum(-2, keepdim=True))
    flow = top if probs is None else top.unsqueeze(-1) * mdp.probs
    g_v = cotangent.new_zeros(rows, S).index_add_(-1, index, flow.reshape(rows, -1), alpha=discount)
    values = [g_v]                                                 # G_{V_{H−1}}, …, G_{V_1}
    if horizon > 2 and S <= DENSE_MAX_STATES:
        steps = pi[1:horizon - 1].unsqueeze(-1)                    # π̃_1 … π̃_{H−2}: [H−2, rows, A, S, 1]
        if probs is not None:
            steps = steps * mdp.probs                              # [.., A, S, K]
        source = torch.arange(S, device=index.device).view(1, S, 1).expand(A, S, index.numel() // (A * S))
        flat = (source * S).reshape(-1) + index                   # s·S + s' of every (a, s, k)
        d = cotangent.new_zeros(horizon - 2, rows, S * S).index_add_(
            -1, flat, steps.reshape(horizon - 2, rows, -1)).view(horizon - 2, rows, S, S)
        g_row = g_v.unsqueeze(1)                                   # [rows, 1, S]: row vectors (batched.vecmat)
        product = batched.bmm_for(rows, S)
        for step in d.unbind(0)[::-1]:                             # D_{i+1}: G_{V_{i+1}} -> G_{V_i}
            g_row = product(g_row, step)
            if discount != 1.0:
                g_row = g_row.mul_(discount)
            values.append(g_row.squeeze(1))
    else:
        for i in range(horizon - 2, 0, -1):
            scatter = pi[i].mul(g_v.unsqueeze(-2))
            scatter = scatter if probs is None else scatter.unsqueeze(-1) * mdp.probs
            g_v = cotangent.new_zeros(rows, S).index_add_(-1, index, scatter.reshape(rows, -1), alpha=discount)
            values.append(g_v)
    below = torch.stack(values[::-1]).unsqueeze(-2)                # G_{V_1} … G_{V_{H−1}}: [H−1, rows, 1, S]
    # Σ_i π̃_i·G_{V_i} over the steps as the last, contiguous dimension: a sum over a leading
    # dimension is vectorised across the batch, so its order (last bits) would depend on the batch.
    grad = torch.mul(pi[:horizon - 1], below).permute(1, 2, 3, 0).contiguous().sum(-1)
    return grad.add_(top).view(*batch, A, S)
