"""The two loops behind :func:`rlhf.soft_value_iteration`, on action-major tensors.

* :func:`log_space_backups` runs the soft Bellman recurrence on any MDP, in
  units where V is a plain log-sum-exp (base e while per-call overhead
  dominates, base 2 once the arithmetic does: ``exp2`` is about twice as fast
  as ``exp``). Large problems run chunk by chunk over states so that a chunk's
  [A, chunk] intermediates stay in cache; every operation after the gather is
  column-local, so chunking changes at most the last bit of an element (which
  elements fall in a SIMD loop's scalar tail).
* :func:`exp_space_backups` is the same recurrence for deterministic,
  undiscounted, noiseless MDPs, where it is linear in W = exp(τ·V).

Shapes: rewards ``r[..., A or 1, S]`` (a last-but-one dimension of 1 is a state
reward), ``Q[..., A, S]``; leading dimensions are a batch of rewards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import batched
from .mdp import TabularMDP

_BUFFERED_FROM = 1 << 16
"""Q sizes (elements) from which backups reuse preallocated buffers (and run in base 2)."""
_CHUNK_STATES = 1 << 17
"""States per chunk of a large backup: [5, 2¹⁷] float32 intermediates stay in the 32 MiB
L3 cache; 15–18% faster at 10⁶ states than whole-array passes."""
_EXP_SPACE_MAX_LOG_RANGE = 650.0
"""Largest spread of log W the exp-space planner allows: float64 stays normal to ±708."""
_EXP_SPACE_DENSE_MAX_STATES = 144
"""Up to here an exp-space backup is one dense [S, S] matrix-vector product."""


# ------------------------------------------------------------------ log space
def log_space_backups(mdp: TabularMDP, r: torch.Tensor, horizon: int, discount: float,
                      temperature: float) -> torch.Tensor:
    """``Q[..., A, S]`` after ``horizon`` soft backups (see :func:`rlhf.soft_value_iteration`)."""
    batch = r.shape[:-2]
    A, S, eta = mdp.num_actions, mdp.num_states, mdp.action_noise
    # A batch of rewards always takes the plain path: exp2 rounds differently in its SIMD
    # loop and its scalar tail, so in a batch a reward's last bits would depend on its neighbours.
    # (len, not numel: an unbatched reward's empty batch Size has numel() 1.)
    if len(batch) or A * S < _BUFFERED_FROM:       # tiny (or a batch): allocate freely, one torch.logsumexp
        unit, log_base = temperature, 1.0
        chunks = _chunks(mdp, S)
        soft_max = _log_sum_exp
    else:                                            # large: buffers, base 2, chunks
        unit, log_base = temperature / math.log(2), math.log(2)
        chunks = _chunks(mdp, _CHUNK_STATES)
        soft_max = _log2_sum_exp2
    work = _Work(mdp, batch, buffered=soft_max is _log2_sum_exp2)
    r = r if unit == 1.0 else r * unit
    if r.shape[-2] == 1 and discount > 0:
        # A state reward leaves the action max: V(s) = r(s) + LSE_a(γ·E[V(s')]), one pass
        # fewer over [A, S] per backup. The noise mix commutes with adding r(s).
        state_reward = r.squeeze(-2)
        v = torch.full((*batch, S), math.log(A) / log_base, device=r.device)             # V_0 = LSE(0, …, 0)
        v_next = torch.empty_like(v)
        for _ in range(horizon - 1):
            for c in chunks:
                ev = _mix_executed_actions(eta, work.expected(c, v))
                ev = ev if discount == 1.0 else ev.mul_(discount)
                soft_max(ev, work, out=v_next[..., c.lo:c.hi]).add_(state_reward[..., c.lo:c.hi])
            v, v_next = v_next, v
        q = torch.empty(*batch, A, S, device=r.device)
        for c in chunks:
            ev = _mix_executed_actions(eta, work.expected(c, v))
            torch.add(r[..., c.lo:c.hi], ev, alpha=discount, out=q[..., c.lo:c.hi])
    else:
        q, v = torch.zeros(*batch, A, S, device=r.device), torch.empty(*batch, S, device=r.device)
        for _ in range(horizon):                     # Q = r + γ·E[V(s')], V = LSE(Q)
            for c in chunks:
                soft_max(q[..., c.lo:c.hi], work, out=v[..., c.lo:c.hi])
            for c in chunks:
                q_c = torch.add(r[..., c.lo:c.hi], work.expected(c, v), alpha=discount, out=q[..., c.lo:c.hi])
                _mix_executed_actions(eta, q_c)
    return q if unit == 1.0 else q.div_(unit)


def hard_max_backups(mdp: TabularMDP, r: torch.Tensor, horizon: int, discount: float) -> torch.Tensor:
    """``Q[..., A, S]`` of the optimal policy: the recurrence at τ → ∞, ``V = max_a Q``
    (exact: a max has no rounding, so a reward's Q does not depend on its batch)."""
    batch, A, S = r.shape[:-2], mdp.num_actions, mdp.num_states
    work, chunk = _Work(mdp, batch, buffered=False), _chunks(mdp, S)[0]
    q, v = torch.zeros(*batch, A, S, device=r.device), torch.empty(*batch, S, device=r.device)
    for _ in range(horizon):
        torch.amax(q, dim=-2, out=v)
        q = _mix_executed_actions(mdp.action_noise, torch.add(r, work.expected(chunk, v), alpha=discount))
    return q


def evaluation_backups(mdp: TabularMDP, executed: torch.Tensor, step_reward: torch.Tensor,
                       length: int) -> torch.Tensor:
    """``V_0[..., S]``: the expected return over ``length`` steps of stationary policies, by
    backward induction ``V_{T−1} = r_π``, ``V_t = r_π + Σ_a π(a|s)·E[V_{t+1}(s') | s, a]``.

    ``executed[..., A, S]``: each policy's executed-action probabilities, action-major;
    ``step_reward[..., S]``: ``r_π(s)``. A backup is the planner's gather, a product and
    a sum over actions, with no scatter; each policy's result is independent of the batch.
    In float64 (see :func:`rlhf.expected_returns`).
    """
    batch = executed.shape[:-2]
    work, chunk = _Work(mdp, batch, buffered=False), _chunks(mdp, mdp.num_states)[0]
    executed = executed.double()
    r_pi = step_reward.double().expand(*batch, mdp.num_states)
    v = r_pi
    for _ in range(length - 1):
        v = torch.sum(work.expected(chunk, v).mul_(executed), dim=-2).add_(r_pi)
    return v


def _log_sum_exp(q: torch.Tensor, work: _Work, out: torch.Tensor) -> torch.Tensor:
    """``ln Σ_a e^q`` over actions, in one call (the cheapest for small inputs)."""
    return torch.logsumexp(q, dim=-2, out=out)


def _log2_sum_exp2(q: torch.Tensor, work: _Work, out: torch.Tensor) -> torch.Tensor:
    """``log2 Σ_a 2^q`` over actions of ``q[..., A, n]``, written out into work buffers:
    ~20% faster than ``torch.logsumexp`` even in base e, and ``exp2`` beats ``exp`` by ~2×."""
    scratch, row_max = work.scratch(q.shape[-1]), work.row_max(q.shape[-1])
    torch.amax(q, dim=-2, keepdim=True, out=row_max)
    torch.sub(q, row_max, out=scratch).exp2_()
    torch.sum(scratch, dim=-2, out=out)
    return out.log2_().add_(row_max.squeeze(-2))


def _mix_executed_actions(eta: float, q: torch.Tensor) -> torch.Tensor:
    """In place: Q of the chosen action when the executed one is uniform w.p. ``eta``."""
    if eta:
        mean = q.mean(dim=-2, keepdim=True)
        q.mul_(1 - eta).add_(mean, alpha=eta)
    return q


@dataclass(frozen=True)
class _Chunk:
    """States ``lo:hi`` and what gathering their successors' values needs."""

    lo: int
    hi: int
    index: torch.Tensor
    """Flat gather index: action successors [A·n], moves [M·n] or next states [A·n·K]."""
    probs: torch.Tensor | None
    """[A, n, K] successor probabilities (sparse MDPs only)."""


def _chunks(mdp: TabularMDP, size: int) -> list[_Chunk]:
    """The MDP's states in chunks of ``size``, built once per MDP and size."""
    return mdp.cached(("soft_backups.chunks", size),
                      lambda: [_chunk(mdp, lo, min(lo + size, mdp.num_states))
                               for lo in range(0, mdp.num_states, size)])


def _chunk(mdp: TabularMDP, lo: int, hi: int) -> _Chunk:
    # int32 when S allows: the index is the largest stream a backup reads, and an
    # int32 index makes the gather ~25% faster than int64.
    dtype = torch.int32 if mdp.num_states < 2**31 else torch.int64
    if mdp.deterministic:
        return _Chunk(lo, hi, mdp.action_successors[:, lo:hi].reshape(-1).to(dtype), None)
    if mdp.is_factored:
        assert mdp.moves is not None
        return _Chunk(lo, hi, mdp.moves[:, lo:hi].reshape(-1).to(dtype), None)
    return _Chunk(lo, hi, mdp.next_states[:, lo:hi].reshape(-1).to(dtype), mdp.probs[:, lo:hi].contiguous())


class _Work:
    """``E[V(s') | s, a]`` per chunk, and the soft max's scratch space.

    Buffered (large problems): one set of tensors per chunk width, reused by
    every backup; at 10⁶ states a fresh 20 MB tensor per step costs more in
    page faults than the arithmetic. Otherwise fresh tensors (cheaper when tiny).
    """

    def __init__(self, mdp: TabularMDP, batch: torch.Size, buffered: bool) -> None:
        self.mdp, self.batch, self.buffered = mdp, batch, buffered
        self._buffers: dict[tuple[str, int], torch.Tensor] = {}

    def _buffer(self, name: str, *shape: int) -> torch.Tensor:
        key = (name, shape[-1])
        if key not in self._buffers:
            self._buffers[key] = torch.empty(*self.batch, *shape, device=self.mdp.start.device)
        return self._buffers[key]

    def scratch(self, n: int) -> torch.Tensor:
        return self._buffer("scratch", self.mdp.num_actions, n)

    def row_max(self, n: int) -> torch.Tensor:
        return self._buffer("row_max", 1, n)

    def expected(self, c: _Chunk, v: torch.Tensor) -> torch.Tensor:
        """``[..., A, n]`` expected next value of each action in states ``c.lo:c.hi``."""
        mdp, batch, A, n = self.mdp, self.batch, self.mdp.num_actions, c.hi - c.lo
        out = self._buffer("expected", A, n) if self.buffered else None
        if mdp.deterministic:                        # one successor per action: no mixing
            if out is None:
                return v.index_select(-1, c.index).view(*batch, A, n)
            torch.index_select(v, -1, c.index, out=out.view(*batch, A * n))
            return out
        if mdp.is_factored:                          # [A, M] @ [..., M, n]
            assert mdp.moves is not None and mdp.move_probs is not None
            moves = self._buffer("moves", mdp.moves.shape[0] * n) if self.buffered else None
            moves = torch.index_select(v, -1, c.index, out=moves).view(*batch, -1, n)
            move_probs = mdp.move_probs
            if moves.dtype != move_probs.dtype:          # float64 policy evaluation
                move_probs = mdp.cached(("soft_backups.move_probs", moves.dtype), lambda: move_probs.to(moves.dtype))
            return torch.matmul(move_probs, moves, out=out)
        assert c.probs is not None                   # sparse MDP: _chunk gathered the probabilities
        successors = self._buffer("successors", c.index.numel()) if self.buffered else None
        successors = torch.index_select(v, -1, c.index, out=successors).view(*batch, *c.probs.shape)
        return torch.sum(successors.mul_(c.probs), dim=-1, out=out)


# ------------------------------------------------------------------ exp space
def exp_space_fits(r: torch.Tensor, horizon: int, temperature: float, num_actions: int) -> torch.Tensor:
    """``[...]`` bool: which rewards ``r[..., A or 1, S]`` the exp-space planner can take
    (W stays a normal float64: the spread of log W is at most ``_EXP_SPACE_MAX_LOG_RANGE``)."""
    low, high = r.amin(dim=(-2, -1)), r.amax(dim=(-2, -1))
    spread = (horizon - 1) * temperature * (high - low).double() + horizon * math.log(num_actions)
    return spread <= _EXP_SPACE_MAX_LOG_RANGE          # also False for inf and NaN rewards


def _dense_entries(index: torch.Tensor, S: int, A: int, transposed: bool) -> torch.Tensor:
    """``[A·S]`` where each (a, s)'s weight goes in the flat dense backup matrix: M[s, next] (or Mᵀ)."""
    rows = torch.arange(S, device=index.device).repeat(A)                  # action-major, like index
    return index * S + rows if transposed else rows * S + index


def exp_space_backups(mdp: TabularMDP, r: torch.Tensor, horizon: int, temperature: float) -> torch.Tensor:
    """The same recurrence in exp space, for deterministic, undiscounted, noiseless MDPs and
    rewards that :func:`exp_space_fits`: action-major ``Q[..., A, S]``.

    With W = exp(τ·V) the soft backup is linear (Ziebart's backward pass, Todorov's
    desirability): ``W'(s) = Σ_a exp(τ·r(s, a)) · W(next(s, a))``. A backup is one
    gather, one multiply and one sum, and no exp or log at all. Each reward is shifted
    by its own maximum so W never grows faster than A per backup.
    """
    A = mdp.num_actions
    batch, S = r.shape[:-2], mdp.num_states
    high = r.amax(dim=(-2, -1), keepdim=True)                                  # [..., 1, 1]
    weight = torch.exp((r.double() - high) * temperature)          # [..., A or 1, S], in (0, 1]
    index = _chunks(mdp, S)[0].index
    w = torch.full((*batch, S), float(A), dtype=torch.float64, device=r.device)   # W_0 = Σ_a exp(τ·0)
    if S <= _EXP_SPACE_DENSE_MAX_STATES:     # one [S, S] matrix-vector product a backup
        backup = torch.zeros(*batch, S * S, dtype=torch.float64, device=r.device)
        # A batch multiplies row vectors, W'ᵀ = Wᵀ·Mᵀ (batched.vecmat), so it stores Mᵀ.
        entry = mdp.cached(("soft_backups.exp_space_entry", bool(batch)),
                           lambda: _dense_entries(index, S, A, bool(batch)))
        backup.index_add_(-1, entry, weight.expand(*batch, A, S).reshape(*batch, A * S))
        if batch:
            transposed = backup.view(-1, S, S)
            w = w.view(-1, 1, S)             # row vectors as batched.vecmat shapes them, kept so
            product = batched.bmm_for(w.shape[0], S)
            for _ in range(horizon - 1):     # (the loop is dispatch-bound: no squeeze a backup)
                w = product(w, transposed)
            w = w.view(*batch, S)
        else:
            backup = backup.view(S, S)
            for _ in range(horizon - 1):
                w = torch.mv(backup, w)
    else:                                    # per chunk: gather, (weight,) sum, into reused buffers
        chunks = _chunks(mdp, _CHUNK_STATES)
        buffers = {n: torch.empty(*batch, A * n, dtype=torch.float64, device=r.device)
                   for n in {c.hi - c.lo for c in chunks}}
        w_next = torch.empty_like(w)
        for _ in range(horizon - 1):
            for c in chunks:
                n = c.hi - c.lo
                successor_w = torch.index_select(w, -1, c.index, out=buffers[n]).view(*batch, A, n)
                weight_c, out = weight[..., c.lo:c.hi], w_next[..., c.lo:c.hi]
                if weight.shape[-2] == 1:    # W'(s) = exp(τ·r(s)) · Σ_a W(next(s, a))
                    torch.sum(successor_w, dim=-2, out=out).mul_(weight_c.squeeze(-2))
                else:
                    torch.sum(successor_w.mul_(weight_c), dim=-2, out=out)
            w, w_next = w_next, w
    # Q = r + V_{H-1}(next): undo the per-backup shift, (H − 1)·max r.
    v = w.log_() if temperature == 1.0 else w.log_().div_(temperature)
    v = v.add_((horizon - 1) * high.squeeze(-1))
    return (r + v.index_select(-1, index).view(*batch, A, S)).float()
