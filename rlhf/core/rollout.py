"""Batched rollouts: every trajectory of a batch advances in one tensor step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy
import torch

from . import compiled
from .keys import Keys
from .mdp import TabularMDP


@dataclass(frozen=True)
class Trajectories:
    """A batch of fixed-length trajectories, ``[..., B, T]`` (leading dimensions: seeds)."""

    states: torch.Tensor
    """[..., B, T] int64, the state at step t (before acting)."""
    actions: torch.Tensor
    """[..., B, T] int64, the action executed at step t (after action noise)."""

    def __len__(self) -> int:
        return self.states.shape[-2]

    def split(self) -> tuple[Trajectories, Trajectories]:
        """First and second half of the batch (the two sides of each pair)."""
        n = len(self) // 2
        return (Trajectories(self.states[..., :n, :], self.actions[..., :n, :]),
                Trajectories(self.states[..., n:, :], self.actions[..., n:, :]))

    def pick(self, index: torch.Tensor) -> Trajectories:
        """The trajectories ``index[..., n]`` of each seed's batch, in that order: ``[..., n, T]``."""
        index = index.unsqueeze(-1)
        return Trajectories(torch.take_along_dim(self.states, index, dim=-2),
                            torch.take_along_dim(self.actions, index, dim=-2))

    def __getitem__(self, index: int | slice | torch.Tensor) -> Trajectories:
        """The trajectories of one seed (or a selection of seeds) of a batch."""
        return Trajectories(self.states[index], self.actions[index])


def step_features(reward: torch.Tensor, traj: Trajectories) -> torch.Tensor:
    """``[..., B, T]`` int64 index of each step into the flat ``reward.reshape(-1)``: ``s_t`` for a state
    reward ``[S]``, else ``s_t·A + a_t`` for ``[S, A]``."""
    return traj.states if reward.dim() == 1 else traj.states * reward.shape[-1] + traj.actions


def step_rewards(reward: torch.Tensor, traj: Trajectories) -> torch.Tensor:
    """``[..., B, T]`` reward of each step: ``r[s_t]`` for a state reward ``[S]``, else ``r[s_t, a_t]``
    (a gather on the flat table: 2-3x faster than advanced indexing)."""
    index = step_features(reward, traj)
    return reward.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


def rollout(
    mdp: TabularMDP,
    policy: torch.Tensor,
    num: int,
    length: int,
    keys: Keys,
    time_indexed: bool | None = None,
) -> Trajectories:
    """Roll out ``num`` trajectories of ``length`` steps from the start distribution, for each key.

    ``policy[..., s, a]`` is a stationary stochastic policy per key (leading
    dimensions ``keys.shape``) or one ``[S, A]`` policy for all; a time-indexed policy has a step
    dimension before the state's (``[..., H, S, A]`` with ``H >= length``, ``pi[..., t, :, :]`` acting
    at step t). ``time_indexed=None`` reads the shape: ``keys.shape`` or nothing before ``[S, A]`` is
    stationary, one dimension more is time-indexed (so a shared ``[H, S, A]`` policy with a
    one-dimensional batch of keys needs ``time_indexed=True``). A time-indexed policy whose steps are
    all equal rolls out exactly as the stationary one: the draws are the same. Returns
    ``[*keys.shape, num, length]``. Trajectory j's start and its step t use
    draws ``j`` and ``(t + 1)·num + j`` under its key (31-bit integers, :meth:`Keys.bits31_grid`), so what
    a seed samples does not depend on the other keys in the batch. Each step
    draws the executed action and the successor together: one draw, one
    inverse-CDF lookup in a :class:`_StepTable` (six to eight calls a step, however many outcomes).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    batch, S = keys.shape, mdp.num_states
    B = batch.numel()
    if time_indexed is None:
        time_indexed = policy.dim() - 2 not in (0, len(batch)) and policy.dim() - 3 in (0, len(batch))
    steps = 0
    if time_indexed:       # [(*batch,) H, S, A] -> step-major [length, *batch, S, A]
        if policy.dim() < 3 or policy.shape[-3] < length:
            raise ValueError(f"a time-indexed policy needs at least {length} steps, got {tuple(policy.shape)}")
        steps = length
        policy = policy[..., :length, :, :].movedim(-3, 0)
        if policy.dim() == 3:                                  # shared by every key
            shared = policy.view(length, *(1,) * len(batch), *policy.shape[-2:])
            policy = shared.expand(length, *batch, *policy.shape[-2:])
        if policy.shape[1:-2] != batch:
            raise ValueError(f"a time-indexed policy must be [H, S, A] or [*keys.shape, H, S, A], got "
                             f"{tuple(policy.shape)} (steps first) for keys of shape {tuple(batch)}")
    else:
        if policy.dim() == 2:
            policy = policy.expand(*batch, *policy.shape)
        if policy.shape[:-2] != batch:
            raise ValueError(f"policy must be [S, A] or [*keys.shape, S, A], got {tuple(policy.shape)} "
                             f"for keys of shape {tuple(batch)}")
    # A time-indexed policy is one table of rows (t·B + b)·S + s: step t reads block t.
    if compiled.available(policy, keys.key):          # the draws and the walk below as one compiled call
        table = _StepTable(mdp, policy.reshape(max(steps, 1) * B, S, -1), row_major=True)
        states = torch.empty(B, num, length, dtype=torch.int64)
        actions = torch.empty_like(states)
        compiled.kernels().rollout(keys.key.reshape(-1).numpy().view(numpy.uint64), _start_cdf(mdp).numpy(),
                                   table.cdf.numpy(), table.successor_table.numpy(), table.action_of.numpy(),
                                   S, B * S if steps else 0, states.numpy(), actions.numpy())
        return Trajectories(states.view(*batch, num, length), actions.view(*batch, num, length))
    table = _StepTable(mdp, policy.reshape(max(steps, 1) * B, S, -1))
    # draw t·num + j: trajectory j's start (t = 0) and its step t − 1, as [T + 1, B·num]
    draws = keys.bits31_grid(length + 1, num).view(length + 1, B * num)
    first_row = torch.arange(B, dtype=torch.int32, device=draws.device).mul_(S).repeat_interleave(num)
    rows = torch.empty(length, B * num, dtype=torch.int32, device=draws.device)    # global b·S + s
    outcomes = torch.empty_like(rows)
    start = torch.searchsorted(_start_cdf(mdp), draws[0], out_int32=True)     # entries below the draw
    torch.add(start, first_row, out=rows[0])
    if steps:
        for t in range(length):
            block = rows[t] + t * B * S
            table.draw(block, draws[t + 1], out=outcomes[t])
            if t + 1 < length:
                table.successor(block, outcomes[t], out=rows[t + 1]).sub_(t * B * S)
    else:
        for t in range(length):
            table.draw(rows[t], draws[t + 1], out=outcomes[t])
            if t + 1 < length:
                table.successor(rows[t], outcomes[t], out=rows[t + 1])
    if table.slots > 1:     # outcome a·K + k -> a (a lookup: integer division is ~4x slower)
        outcomes = table.action_of.index_select(0, outcomes.view(-1)).view(outcomes.shape)
    return Trajectories(_trajectory_major(rows.sub_(first_row), batch, num),
                        _trajectory_major(outcomes, batch, num))


def _trajectory_major(steps: torch.Tensor, batch: torch.Size, num: int) -> torch.Tensor:
    """``[*batch, num, T]`` int64, contiguous, from the loop's time-major ``[T, B·num]`` int32: one
    transposing copy here (as cheap as the conversion alone) saves one in each consumer."""
    return steps.T.to(torch.int64, memory_format=torch.contiguous_format).view(*batch, num, steps.shape[0])


_RESOLUTION_BITS = 31
"""Probabilities are sampled in steps of 2⁻³¹: integer arithmetic, exact at row ends, int32 tables."""
_SIGN_BITS_FROM = 4096
"""Trajectories per step from which a draw counts sign bits (in-place integer passes: 25% faster at
20,000 trajectories) rather than comparing (one call fewer: the single-seed loop is dispatch-bound).
Both count the same entries."""


def _integer_cdf(probs: torch.Tensor) -> torch.Tensor:
    """Rows of ``probs[..., n]`` as integer CDFs minus one, int32: the last entry is 2³¹ − 1, and
    "CDF <= u" is "entry < u" for draws u in [0, 2³¹)."""
    cdf = probs.double().cumsum(-1)
    return torch.floor(cdf / cdf[..., -1:] * (1 << _RESOLUTION_BITS)).to(torch.int64).sub_(1).to(torch.int32)


def _start_cdf(mdp: TabularMDP) -> torch.Tensor:
    return mdp.cached("rollout.start_cdf", lambda: _integer_cdf(mdp.start))


class _StepTable:
    """Every (seed, state)'s outcomes o = a·K + k (executed action a, successor slot k) as one
    integer CDF row, stored column by column in one flat array: ``cdf[o·R + r]`` for row
    r = b·S + s of R. A draw gathers a trajectory's whole row with one index ``o·R + r`` (an
    ``[A·K, n]`` gather: one call however many outcomes), and the successor table has the same
    layout, so the successor of outcome o is one add and one gather away. ``row_major``: the
    compiled walk's layout instead, ``cdf[r, o]`` and ``successor_table[r, o]`` (a row is one
    cache line)."""

    def __init__(self, mdp: TabularMDP, policy: torch.Tensor, row_major: bool = False) -> None:
        layout = _layout(mdp)
        B, S = policy.shape[0], mdp.num_states
        joint = mdp.executed_policy(policy).double().unsqueeze(-1).mul(layout.probs)       # [B, S, A, K]
        self.slots = layout.probs.shape[-1]
        outcomes = self.slots * mdp.num_actions
        self.num_rows = B * S
        if outcomes * self.num_rows >= 1 << 31:
            raise ValueError(f"{B} seeds x {S} states x {outcomes} outcomes exceed int32 indices")
        self.num_outcomes = outcomes
        cdf = _integer_cdf(joint.reshape(self.num_rows, -1))                         # [B·S, A·K]
        self.cdf = cdf if row_major else cdf.T.reshape(-1)                             # or [A·K · B·S]
        # What depends on the MDP and B alone; kept for small tables (a loop rolls out every round).
        build = lambda: _index_tables(layout, B, S, self.slots, outcomes, row_major)      # noqa: E731
        small = outcomes * self.num_rows <= _CACHED_TABLE_MAX
        self.action_of, self._column_starts, self.successor_table = (
            mdp.cached(("rollout.index_tables", B, row_major), build) if small else build())

    def draw(self, rows: torch.Tensor, uniform: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF draws into ``out``: outcome (a·K + k) of trajectories in global ``rows``
        (b·S + s) for draws in [0, 2³¹), the number of entries of the row below the draw, i.e. the
        first outcome whose CDF exceeds it, so zero-probability outcomes (an entry equal to the
        one before) are never drawn. Integer arithmetic only: exact, and the same in any batch."""
        entries = self.cdf.index_select(0, (rows + self._column_starts).view(-1)).view(
            self._column_starts.shape[0], rows.shape[0])
        if rows.shape[0] < _SIGN_BITS_FROM:
            return torch.sum(entries < uniform, dim=0, dtype=torch.int32, out=out)
        # entry − draw is negative exactly where entry < draw (entry in [−1, 2³¹), draw in [0, 2³¹):
        # the difference fits in int32), so its sign bit counts
        below = entries.sub_(uniform).bitwise_right_shift_(31)                    # −1 or 0
        return torch.sum(below, dim=0, dtype=torch.int32, out=out).neg_()

    def successor(self, rows: torch.Tensor, outcomes: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The global row of each trajectory's successor state."""
        return torch.index_select(self.successor_table, 0, torch.add(rows, outcomes, alpha=self.num_rows), out=out)


_CACHED_TABLE_MAX = 1 << 20
"""Outcomes × rows up to which a rollout's index tables are cached on the MDP (4 MiB of int32)."""


def _index_tables(layout: _Layout, B: int, S: int, slots: int, outcomes: int, row_major: bool,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A :class:`_StepTable`'s integer indices for B blocks of S rows: the action of each outcome,
    each outcome column's first entry, and the successor table (global rows, column by column, or
    ``[B·S, A·K]`` row by row)."""
    device = layout.successor.device
    action_of = torch.arange(outcomes, dtype=torch.int32, device=device).div_(slots, rounding_mode="floor")
    column_starts = torch.arange(outcomes, dtype=torch.int32, device=device).mul_(B * S).view(-1, 1)
    offsets = (torch.arange(B, dtype=torch.int32, device=device) * S).view(B, 1, 1)
    successor = (layout.successor.view(1, S, -1) + offsets).view(B * S, -1)
    return action_of, column_starts, successor if row_major else successor.T.reshape(-1)


@dataclass(frozen=True)
class _Layout:
    """An MDP's outcomes ``o = (s·A + a)·K + k`` in one flat, state-major order."""

    probs: torch.Tensor        # [S, A, K] float64 P(slot k | s, a)
    successor: torch.Tensor    # [S·A·K] int32 successor state of each outcome


def _layout(mdp: TabularMDP) -> _Layout:
    """The MDP's layout, built on its first rollout (a loop calls rollout every round)."""
    return mdp.cached("rollout.layout", lambda: _build_layout(mdp))


def _build_layout(mdp: TabularMDP) -> _Layout:
    next_states, probs = mdp.next_states, mdp.probs                        # [A, S, K]
    return _Layout(probs=probs.transpose(0, 1).double(),
                   successor=next_states.transpose(0, 1).reshape(-1).to(torch.int32))
