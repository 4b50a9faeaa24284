"""Finite-horizon soft value iteration and exact policy evaluation.

Shapes: rewards ``r[..., s]`` (a state reward) or ``r[..., s, a]``; ``Q[..., s, a]``;
policies ``pi[s, a]``. Leading dimensions are a batch of rewards planned in
one call.
"""

from __future__ import annotations

import math
import weakref

import torch

from .mdp import TabularMDP


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


_BUFFERED_FROM = 1 << 16
"""Q sizes (elements) from which backups reuse preallocated buffers."""
_DENSE_EVAL_MAX_STATES = 1024


def _log2_sum_exp2(q: torch.Tensor, buffers: "_Buffers") -> torch.Tensor:
    """``log2 Σ_a 2^q`` over actions of ``q[..., A, S]``, into ``buffers.v``.

    Base 2 because ``exp2`` is about twice as fast as ``exp`` on CPU (both are
    SLEEF kernels; ``exp`` does an extra range reduction); written out into
    preallocated buffers, it is ~20% faster than ``torch.logsumexp`` even in base e.
    """
    out, scratch, row_max = buffers.v, buffers.scratch, buffers.row_max
    torch.amax(q, dim=-2, keepdim=True, out=row_max)
    torch.sub(q, row_max, out=scratch).exp2_()
    torch.sum(scratch, dim=-2, out=out)
    return out.log2_().add_(row_max.squeeze(-2))


_GATHER_INDEX: "weakref.WeakKeyDictionary[TabularMDP, torch.Tensor]" = weakref.WeakKeyDictionary()


def _gather_index(mdp: TabularMDP) -> torch.Tensor:
    """The flat successor index a backup gathers with, built once per MDP: action
    successors [A·S] (deterministic), moves [M·S] (factored) or next states [A·S·K].

    int32 when S allows: the index is the largest stream a backup reads (5·10⁶
    entries at N = 1000), and int32 makes the gather ~25% faster than int64.
    """
    index = _GATHER_INDEX.get(mdp)
    if index is None:
        with torch.inference_mode(False):     # outlives this call: keep it usable by autograd
            source = (mdp.action_successors if mdp.deterministic
                      else mdp.moves if mdp.is_factored else mdp.next_states)
            dtype = torch.int32 if mdp.num_states < 2**31 else torch.int64
            index = _GATHER_INDEX[mdp] = source.reshape(-1).to(dtype)
    return index


class _Gather:
    """``E[V(s') | s, a]`` into a preallocated ``[..., A, S]`` buffer.

    Buffers are reused across backups: at 10⁶ states a fresh 20 MB tensor per
    step costs more in page faults than the arithmetic.
    """

    def __init__(self, mdp: TabularMDP, batch: torch.Size) -> None:
        self.mdp = mdp
        A, S = mdp.num_actions, mdp.num_states
        self.shape = (*batch, A, S)
        self.index = _gather_index(mdp)
        if mdp.deterministic:
            self.moves = None
        elif mdp.is_factored:
            self.moves = torch.empty(*batch, mdp.moves.shape[0], S)
        else:
            self.moves = torch.empty(*batch, *mdp.next_states.shape)

    def __call__(self, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Into ``out`` when given (large MDPs); freshly allocated otherwise (cheaper when tiny)."""
        if self.moves is None:                              # one move per action: no mixing
            if out is None:
                return v.index_select(-1, self.index).view(self.shape)
            torch.index_select(v, -1, self.index, out=out.view(*out.shape[:-2], -1))
            return out
        if self.mdp.is_factored:
            torch.index_select(v, -1, self.index, out=self.moves.view(*self.moves.shape[:-2], -1))
            return torch.matmul(self.mdp.move_probs, self.moves, out=out)   # [A, M] @ [..., M, S]
        torch.index_select(v, -1, self.index, out=self.moves.view(*self.moves.shape[:-3], -1))
        return torch.sum(self.moves.mul_(self.mdp.probs), dim=-1, out=out)


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
        q = _exp_space_backups(mdp, r, horizon, temperature)
        if q is not None:
            return q.transpose(-1, -2)
    batch = r.shape[:-2]
    A, S, eta = mdp.num_actions, mdp.num_states, mdp.action_noise
    gather = _Gather(mdp, batch)
    # The loop runs in units u = τ·Q / ln(base), where V is a plain log-sum-exp in that base
    # and τ drops out: base e (one torch.logsumexp call) while per-call overhead dominates,
    # base 2 (exp2 is twice as fast as exp) once the arithmetic does.
    if batch.numel() * A * S < _BUFFERED_FROM:      # tiny: allocate freely
        unit, log_base = temperature, 1.0
        soft_max, expected = lambda x: torch.logsumexp(x, dim=-2), gather                 # noqa: E731
    else:                                            # large: reuse buffers (no page faults per backup)
        buffers = _Buffers(batch, A, S)
        unit, log_base = temperature / math.log(2), math.log(2)
        soft_max = lambda x: _log2_sum_exp2(x, buffers)                                   # noqa: E731
        expected = lambda v: gather(v, buffers.ev)                                        # noqa: E731
    r = r if unit == 1.0 else r * unit
    if r.shape[-2] == 1 and discount > 0:
        # A state reward leaves the action max: V(s) = r(s) + LSE_a(γ·E[V(s')]), one pass
        # fewer over [A, S] per backup. The noise mix commutes with adding r(s).
        v = torch.full((*batch, S), math.log(A) / log_base)             # V_0 = LSE(0, …, 0)
        state_reward = r.squeeze(-2)
        for i in range(horizon):
            ev = expected(v)
            if eta:
                _mix_executed_actions(eta, ev)
            if i + 1 < horizon:
                v = soft_max(ev if discount == 1.0 else ev.mul_(discount)).add_(state_reward)
        q = torch.add(r, ev, alpha=discount)
    else:
        q = torch.zeros(*batch, A, S)
        for _ in range(horizon):                     # Q = r + γ·E[V(s')], V = LSE(Q)
            q = _mix_executed_actions(eta, torch.add(r, expected(soft_max(q)), alpha=discount, out=q))
    q = q if unit == 1.0 else q.div_(unit)
    return q.transpose(-1, -2)


_EXP_SPACE_MAX_LOG_RANGE = 650.0
"""Largest spread of log W the exp-space planner allows: float64 stays normal to ±708."""
_EXP_SPACE_DENSE_MAX_STATES = 144
"""Up to here an exp-space backup is one dense [S, S] matrix-vector product."""


def _exp_space_backups(mdp: TabularMDP, r: torch.Tensor, horizon: int, temperature: float) -> torch.Tensor | None:
    """The same recurrence in exp space, for deterministic, undiscounted, noiseless MDPs:
    action-major ``Q[..., A, S]``, or None when the reward's range could under- or overflow.

    With W = exp(τ·V) the soft backup is linear (Ziebart's backward pass, Todorov's
    desirability): ``W'(s) = Σ_a exp(τ·r(s, a)) · W(next(s, a))``. A backup is one
    gather, one multiply and one sum, and no exp or log at all. Rewards are shifted
    by their maximum so W never grows faster than A per backup; the range check
    keeps the smallest W a normal float64.
    """
    A = mdp.num_actions
    low, high = torch.aminmax(r)
    low, high = float(low), float(high)
    spread = (horizon - 1) * temperature * (high - low) + horizon * math.log(A)
    if not spread <= _EXP_SPACE_MAX_LOG_RANGE:       # also False for inf and NaN rewards
        return None
    batch, S = r.shape[:-2], mdp.num_states
    weight = torch.exp((r.double() - high) * temperature)          # [..., A or 1, S], in (0, 1]
    index = _gather_index(mdp)
    w = torch.full((*batch, S), float(A), dtype=torch.float64)    # W_0 = Σ_a exp(τ·0)
    if S <= _EXP_SPACE_DENSE_MAX_STATES:     # one [S, S] matrix-vector product a backup
        backup = torch.zeros(*batch, S * S, dtype=torch.float64)
        rows = torch.arange(S).repeat(A)                            # action-major, like index
        backup.index_add_(-1, rows * S + index, weight.expand(*batch, A, S).reshape(*batch, A * S))
        backup = backup.view(*batch, S, S)
        step = torch.mv if not batch else lambda m, x: torch.matmul(m, x.unsqueeze(-1)).squeeze(-1)
        for _ in range(horizon - 1):
            w = step(backup, w)
    else:                                    # gather, (weight,) sum, in place: no page faults per backup
        successor_w = torch.empty(*batch, A, S, dtype=torch.float64)
        flat = successor_w.view(*batch, A * S)
        state_reward = weight.shape[-2] == 1
        for _ in range(horizon - 1):
            torch.index_select(w, -1, index, out=flat)
            if state_reward:                 # W'(s) = exp(τ·r(s)) · Σ_a W(next(s, a))
                torch.sum(successor_w, dim=-2, out=w).mul_(weight.squeeze(-2))
            else:
                torch.sum(successor_w.mul_(weight), dim=-2, out=w)
    # Q = r + V_{H-1}(next): undo the per-backup shift, (H − 1)·max r.
    v = w.log_() if temperature == 1.0 else w.log_().div_(temperature)
    v = v.add_((horizon - 1) * high)
    return (r + v.index_select(-1, index).view(*batch, A, S)).float()


class _Buffers:
    """Preallocated work tensors for large backups: at 10⁶ states a fresh 20 MB
    tensor per step costs more in page faults than the arithmetic."""

    def __init__(self, batch: torch.Size, A: int, S: int) -> None:
        self.ev, self.scratch = torch.empty(*batch, A, S), torch.empty(*batch, A, S)
        self.v, self.row_max = torch.empty(*batch, S), torch.empty(*batch, 1, S)


def _mix_executed_actions(eta: float, q: torch.Tensor) -> torch.Tensor:
    """In place: Q of the chosen action when the executed one is uniform w.p. ``eta``."""
    if eta:
        mean = q.mean(dim=-2, keepdim=True)
        q.mul_(1 - eta).add_(mean, alpha=eta)
    return q


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
    executed = policy @ mdp.executed_action_probs() if mdp.action_noise else policy
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
        move_mass = d.unsqueeze(-1) * (executed @ mdp.move_probs)      # [S, M]
        return out.index_add_(0, mdp.moves.reshape(-1), move_mass.T.reshape(-1))
    mass = (d.unsqueeze(-1) * executed).T.unsqueeze(-1) * mdp.probs   # [A, S, K]
    return out.index_add_(0, mdp.next_states.reshape(-1), mass.reshape(-1))
