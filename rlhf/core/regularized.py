"""The KL-regularised objective, exactly: its optimal policy, a policy's trajectory KL, and exact
evaluation of time-indexed policies.

Shapes: rewards ``r[..., S]`` or ``r[..., S, A]`` (leading dimensions: a batch of rewards);
policies ``pi[S, A]`` (stationary) or ``pi[H, S, A]`` (time-indexed: ``pi[t]`` acts at step t, so
``pi[0]`` is the first step), with ``S`` states and ``A`` actions; references ``pi_ref[S, A]``.

The objective over ``H`` steps from the start distribution ``d_0``, for β > 0::

    J_β(π) = E_π[Σ_{t<H} r(s_t, a_t)] − β · E_π[Σ_{t<H} KL(π_t(·|s_t) ‖ π_ref(·|s_t))]

The KL is of the policy's *chosen* action distributions at the states it visits (with action noise
η the executed action differs, and rewards follow the executed one, as in
:func:`rlhf.soft_value_iteration`). Its maximiser is time-indexed and given by backward induction
(no discount)::

    V_H(s)    = 0
    Q_t(s, a) = r(s, a) + Σ_k P[a, s, k] · V_{t+1}(next[a, s, k])      (then mixed by η)
    V_t(s)    = β · log Σ_a π_ref(a|s) · exp(Q_t(s, a) / β)
    π_t(a|s)  = π_ref(a|s) · exp((Q_t(s, a) − V_t(s)) / β)

and ``J_β(π*) = Σ_s d_0(s) · V_0(s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .mdp import TabularMDP
from .soft_backups import _chunks, _mix_executed_actions, _Work


@dataclass(frozen=True)
class KLSolution:
    """The optimum of the KL-regularised objective (see the module docstring)."""

    policy: torch.Tensor
    """``pi[..., H, S, A]``: the optimal time-indexed policy, ``pi[..., 0, :, :]`` the first step (a
    transposed view of action-major storage)."""
    values: torch.Tensor
    """``V[..., H + 1, S]``: ``V_t`` of the recurrence (``V_H = 0``); ``start · V_0`` is the optimum."""


def _as_reward(mdp: TabularMDP, reward: torch.Tensor) -> torch.Tensor:
    """Reward as ``[..., A or 1, S]`` (action-major), float32 unless given in float64."""
    r = torch.as_tensor(reward)
    r = r if r.dtype == torch.float64 else r.float()
    S, A = mdp.num_states, mdp.num_actions
    if r.dim() == 1:
        r = r.unsqueeze(-1)
    if r.dim() < 2 or r.shape[-2] != S or r.shape[-1] not in (1, A):
        raise ValueError(f"reward must be [S], [S, A] or [..., S, A] with S={S}, A={A}, got {tuple(r.shape)}")
    return r.transpose(-1, -2)


def check_reference(mdp: TabularMDP, reference: torch.Tensor | None, dtype: torch.dtype = torch.float32,
                    ) -> torch.Tensor | None:
    """``pi_ref[S, A]`` validated (rows are distributions), or None for the uniform reference."""
    if reference is None:
        return None
    ref = torch.as_tensor(reference, dtype=dtype, device=mdp.start.device)
    S, A = mdp.num_states, mdp.num_actions
    if ref.shape != (S, A):
        raise ValueError(f"reference must be [S, A] = [{S}, {A}], got {tuple(ref.shape)}")
    if bool((ref < 0).any()) or float((ref.sum(-1) - 1).abs().max()) > 1e-4:
        raise ValueError("reference rows must be probability distributions (non-negative, summing to 1)")
    return ref


def kl_regularized_solution(mdp: TabularMDP, reward: torch.Tensor, horizon: int, beta: float,
                            reference: torch.Tensor | None = None) -> KLSolution:
    """The optimal policy and values of ``E[Σ r] − β·KL(π ‖ π_ref)`` over ``horizon`` steps (the
    recurrence of the module docstring), for each reward of a batch ``r[..., S, A or 1]``.

    Float32, or float64 for a float64 reward. With the uniform reference the policy is
    ``softmax(Q_t/β)``, ``π_0`` that of :func:`rlhf.soft_value_iteration` at temperature 1/β. An
    action with ``π_ref = 0`` gets probability 0. Two paths, as the planner has (decided per reward,
    so a reward's result does not depend on the batch around it):

    * log space (any MDP), in units of β: ``x = Q_t/β + log π_ref``, ``V_t/β = max x + log Σ_a e^(x −
      max x)``, the exponentials kept as the policy;
    * exp space (deterministic, noiseless MDPs whose rewards :func:`_exp_space_fits`): with
      ``W_t = exp(V_t/β)`` the backup is linear, ``W_t(s) = Σ_a π_ref(a|s)·e^(r(s,a)/β)·W_{t+1}(next(s, a))``,
      and ``π_t(a|s)`` is the summand over ``W_t(s)``: a gather, a product, a sum and a division a step,
      in float64, no exponential at all (a float32 policy's probabilities below 2⁻¹²⁶ are 0).
    """
    policy, values = _solve(mdp, reward, horizon, beta, reference, with_values=True)
    assert values is not None
    return KLSolution(policy, values)


def kl_regularized_policy(mdp: TabularMDP, reward: torch.Tensor, horizon: int, beta: float,
                          reference: torch.Tensor | None = None) -> torch.Tensor:
    """``pi[..., H, S, A]``: the exact maximiser of ``E_π[Σ_t r] − β·KL(π ‖ π_ref)`` over ``horizon``
    steps (``reference`` ``[S, A]``, default uniform); ``pi[0]`` is the first step. See
    :func:`kl_regularized_solution` for the values, the two paths, and the module docstring for the
    recurrence. The result is a transposed view of action-major storage (``[..., H, A, S]``, what the
    backups write without a transposing pass; ``.contiguous()`` gives a state-major copy)."""
    return _solve(mdp, reward, horizon, beta, reference, with_values=False)[0]


_FLOAT32_TINY = 2.0 ** -126
"""float32's smallest normal number: the exp-space path writes smaller probabilities of a float32 policy as 0
(converting them to float32 denormals takes a microcode assist each: 4x slower at N = 100, measured)."""
_EXP_SPACE_MAX_LOG_RANGE = 650.0
"""Largest spread of log W the exp-space path allows: float64 stays normal to ±708."""


def _exp_space_fits(r: torch.Tensor, horizon: int, log_ref_range: float) -> torch.Tensor:
    """``[...]`` bool: which rewards ``r[..., A or 1, S]`` (already divided by β) keep every
    ``W_t`` a normal float64: each backup multiplies W by at most 1 and at least
    ``min π_ref · e^(−(max r − min r))``."""
    spread = r.amax(dim=(-2, -1)) - r.amin(dim=(-2, -1))
    return horizon * (spread.double() + log_ref_range) <= _EXP_SPACE_MAX_LOG_RANGE     # False for inf, NaN


def _solve(mdp: TabularMDP, reward: torch.Tensor, horizon: int, beta: float, reference: torch.Tensor | None,
           with_values: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(pi[..., H, S, A], V[..., H + 1, S] or None)``, by the path each reward fits."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if not (0 < beta < math.inf):
        raise ValueError(f"beta must be a number in (0, inf), got {beta!r}")
    r = _as_reward(mdp, reward)
    dtype, batch = r.dtype, r.shape[:-2]
    A, S = mdp.num_actions, mdp.num_states
    ref = check_reference(mdp, reference, dtype)
    scaled = r / beta
    policy = torch.empty(*batch, horizon, A, S, dtype=dtype, device=r.device)       # action-major
    values = torch.zeros(*batch, horizon + 1, S, dtype=dtype, device=r.device) if with_values else None
    fits = torch.zeros(batch, dtype=torch.bool, device=r.device)
    if mdp.deterministic and not mdp.action_noise:
        positive = ref[ref > 0] if ref is not None else None
        log_ref_range = math.log(A) if positive is None else -math.log(float(positive.min()))
        fits = _exp_space_fits(scaled, horizon, log_ref_range)
    for chosen, solve in ((fits, _exp_space), (~fits, _log_space)):
        if not bool(chosen.any()):
            continue
        if bool(chosen.all()):
            solve(mdp, scaled, ref, policy, values)
            continue
        part_policy = policy[chosen]
        part_values = None if values is None else values[chosen]
        solve(mdp, scaled[chosen], ref, part_policy, part_values)
        policy[chosen] = part_policy
        if values is not None and part_values is not None:
            values[chosen] = part_values
    if values is not None:
        values.mul_(beta)
    return policy.transpose(-1, -2), values


def _log_space(mdp: TabularMDP, scaled: torch.Tensor, ref: torch.Tensor | None, policy: torch.Tensor,
               values: torch.Tensor | None) -> None:
    """Fill action-major ``policy[..., H, A, S]`` and ``values[..., H + 1, S]`` (in units of β) from
    ``scaled = r/β`` ``[..., A or 1, S]``, in log space (action-major: the sums over actions are
    vectorised over states, and the gathers are contiguous)."""
    batch, horizon = scaled.shape[:-2], policy.shape[-3]
    work, chunk = _Work(mdp, batch, buffered=False), _chunks(mdp, mdp.num_states)[0]
    log_ref = None if ref is None else torch.log(ref).T.contiguous()          # [A, S], −inf where 0
    uniform_offset = math.log(mdp.num_actions)
    v = torch.zeros(*batch, mdp.num_states, dtype=scaled.dtype, device=scaled.device)
    for t in range(horizon - 1, -1, -1):
        x = _mix_executed_actions(mdp.action_noise, work.expected(chunk, v).add_(scaled))    # Q_t / β
        if log_ref is not None:
            x = x.add_(log_ref)
        top = x.amax(dim=-2, keepdim=True)
        e = x.sub_(top).exp_()
        total = e.sum(dim=-2, keepdim=True)
        torch.div(e, total, out=policy[..., t, :, :])
        v = total.log_().add_(top).squeeze(-2)
        if log_ref is None:
            v = v.sub_(uniform_offset)
        if values is not None:
            values[..., t, :] = v


def _exp_space(mdp: TabularMDP, scaled: torch.Tensor, ref: torch.Tensor | None, policy: torch.Tensor,
               values: torch.Tensor | None) -> None:
    """As :func:`_log_space`, in exp space (deterministic, noiseless MDPs; rewards that fit)."""
    batch, horizon, A = scaled.shape[:-2], policy.shape[-3], mdp.num_actions
    high = scaled.amax(dim=(-2, -1), keepdim=True).double()                   # [..., 1, 1]
    weight = torch.exp(scaled.double() - high)                                # [..., A or 1, S], in (0, 1]
    if ref is not None:
        weight = weight * ref.T.double()
    elif weight.shape[-2] != 1:
        weight = weight.div_(A)
    index = _chunks(mdp, mdp.num_states)[0].index
    # A state reward with the uniform reference weighs every action alike: it cancels in π_t and
    # multiplies W_t once per state.
    state_weight = weight.squeeze(-2) / A if weight.shape[-2] == 1 else None
    w = torch.ones(*batch, mdp.num_states, dtype=torch.float64, device=scaled.device)
    gathered = torch.empty(*batch, index.numel(), dtype=torch.float64, device=scaled.device)   # reused
    for t in range(horizon - 1, -1, -1):
        u = torch.index_select(w, -1, index, out=gathered).view(*batch, A, -1)   # W_{t+1}(next(s, a))
        if state_weight is None:
            u = u.mul_(weight)
        total = u.sum(dim=-2, keepdim=True)
        step = u.mul_(total.reciprocal())
        if policy.dtype != torch.float64:   # below float32's normal range: 0 (converting it is slow)
            step = torch.nn.functional.threshold(step, _FLOAT32_TINY, 0.0, inplace=True)
        policy[..., t, :, :].copy_(step)
        w = total.squeeze(-2) if state_weight is None else total.squeeze(-2).mul_(state_weight)
        if values is not None:         # V_t/β = log W_t + (H − t)·max(r/β)
            values[..., t, :] = torch.log(w).add_(high.squeeze(-1) * (horizon - t))


# ------------------------------------------------------------------ evaluation
def time_indexed(policy: torch.Tensor, length: int) -> torch.Tensor:
    """``pi[..., length, S, A]`` of a time-indexed policy ``[..., H, S, A]`` with ``H >= length``
    (its first ``length`` steps); ValueError when it has fewer steps."""
    if policy.dim() < 3 or policy.shape[-3] < length:
        raise ValueError(f"a time-indexed policy [..., H, S, A] needs H >= {length} steps, "
                         f"got {tuple(policy.shape)}")
    return policy[..., :length, :, :]


def time_indexed_values(mdp: TabularMDP, policy: torch.Tensor, step_value: torch.Tensor) -> torch.Tensor:
    """``V_0[..., S]`` float64: the expected sum of ``step_value[..., t, s]`` over the states a
    time-indexed policy ``pi[..., T, S, A]`` visits in T steps, by backward induction::

        V_{T−1}(s) = c_{T−1}(s),   V_t(s) = c_t(s) + Σ_a π_exec,t(a|s) · Σ_k P[a, s, k] · V_{t+1}(next[a, s, k])

    with ``π_exec`` the executed-action distribution (action noise included). Gathers only, no
    scatter: each policy's result is independent of the batch around it.
    """
    T = policy.shape[-3]
    executed = mdp.executed_policy(policy.double()).transpose(-1, -2)          # [..., T, A, S]
    batch = executed.shape[:-3]
    work, chunk = _Work(mdp, batch, buffered=False), _chunks(mdp, mdp.num_states)[0]
    c = step_value.double().expand(*batch, T, mdp.num_states)
    v = c[..., T - 1, :]
    for t in range(T - 2, -1, -1):
        v = torch.sum(work.expected(chunk, v).mul_(executed[..., t, :, :]), dim=-2).add_(c[..., t, :])
    return v


def time_indexed_returns(mdp: TabularMDP, policy: torch.Tensor, reward: torch.Tensor, length: int) -> torch.Tensor:
    """``[...]`` float64: the exact expected undiscounted return over ``length`` steps of each
    time-indexed policy ``pi[..., H, S, A]`` (``H >= length``; ``reward`` ``[S]`` or ``[S, A]``,
    following the executed action)."""
    pi = time_indexed(policy, length)
    r = torch.as_tensor(reward, device=pi.device).double()
    # [..., T, S]: a state reward, or the executed actions' expected reward
    step = r.expand(*pi.shape[:-2], r.shape[0]) if r.dim() == 1 else (mdp.executed_policy(pi.double()) * r).sum(-1)
    return (time_indexed_values(mdp, pi, step) * mdp.start.double()).sum(-1)


def step_kl(policy: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``[..., S]`` float64 ``KL(π(·|s) ‖ π_ref(·|s)) = Σ_a π log(π/π_ref)`` (0·log 0 = 0; +inf where
    π puts mass on an action π_ref excludes)."""
    p, q = policy.double(), reference.double()
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def policy_kl(mdp: TabularMDP, policy: torch.Tensor, reference: torch.Tensor | None, horizon: int) -> float:
    """The exact trajectory KL ``E_π[Σ_{t<H} KL(π_t(·|s_t) ‖ π_ref(·|s_t))]`` over ``horizon`` steps
    from the start distribution: the expected sum of per-step KLs of the chosen actions under the
    policy's own state distribution (float64, no sampling). ``policy`` ``[S, A]`` or time-indexed
    ``[H', S, A]`` (``H' >= horizon``); ``reference`` ``[S, A]`` (None: uniform)."""
    return float(policy_kls(mdp, policy, reference, horizon))


def policy_kls(mdp: TabularMDP, policy: torch.Tensor, reference: torch.Tensor | None, horizon: int) -> torch.Tensor:
    """:func:`policy_kl` as a float64 tensor: a 2-d policy ``[S, A]`` is stationary, a 3-d one
    ``[H, S, A]`` time-indexed."""
    policy = torch.as_tensor(policy)
    if policy.dim() not in (2, 3):
        raise ValueError(f"policy must be [S, A] or [H, S, A], got {tuple(policy.shape)}")
    stationary = policy.dim() == 2
    ref = check_reference(mdp, reference, torch.float64)
    ref = torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, dtype=torch.float64,
                     device=mdp.start.device) if ref is None else ref
    pi = policy.unsqueeze(-3).expand(*policy.shape[:-2], horizon, *policy.shape[-2:]) if stationary \
        else time_indexed(policy, horizon)
    kl = step_kl(pi, ref)
    infinite = torch.isinf(kl)
    start = mdp.start.double()
    finite = (time_indexed_values(mdp, pi, kl.masked_fill(infinite, 0.0)) * start).sum(-1)
    if not bool(infinite.any()):
        return finite
    # +inf where the policy reaches, with positive probability, a step whose KL is infinite
    reached = (time_indexed_values(mdp, pi, infinite.double()) * start).sum(-1) > 0
    return finite.masked_fill(reached, math.inf)
