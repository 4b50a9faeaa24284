"""Finite tabular MDPs with sparse transitions.

Index order throughout the package: ``P[a, s, k]`` is the k-th possible
successor of taking action ``a`` in state ``s``; ``Q[s, a]``; rewards are
``r[s]`` (state reward) or ``r[s, a]``.

Two equivalent ways to hold transitions:

* **sparse**: ``next_states[a, s, k]`` (int64) with ``probs[a, s, k]``;
* **factored** (a fast path): ``moves[m, s]`` is the deterministic successor
  of primitive move ``m`` and ``move_probs[a, m]`` the state-independent
  probability that action ``a`` results in move ``m``. A gridworld with slip
  is exactly this (slip = "the move goes perpendicular"), and it lets the
  planner gather ``M`` values per state instead of ``A·K``.

An MDP built from moves derives its sparse form on first use, so building a
10⁶-state gridworld costs one [M, S] index array.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

import torch

_PROB_TOL = 1e-5
T = TypeVar("T")


def _cached_tensors(build):
    """A read-only property computed once, through :meth:`TabularMDP.cached` (so it is
    built outside inference mode: it outlives the call that filled it)."""
    @functools.wraps(build)
    def get(self):
        return self.cached(build.__name__, lambda: build(self))
    return property(get)


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite MDP with sparse transitions and a start distribution.

    Build one with :meth:`from_sparse` or :meth:`from_moves`.
    """

    start: torch.Tensor
    """[S] float, the start-state distribution (sums to 1)."""
    num_actions: int
    """A, the number of actions."""
    action_noise: float = 0.0
    """Probability that the executed action is replaced by a uniformly random
    one (the string task's slip). Rewards ``r[s, a]`` follow the executed
    action; ``0`` gives the textbook MDP."""
    moves: torch.Tensor | None = None
    """[M, S] int64 successor of each primitive move, or None (sparse MDP)."""
    move_probs: torch.Tensor | None = None
    """[A, M] float, P(move m | action a); rows sum to 1."""
    _sparse: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- build
    @classmethod
    def from_sparse(
        cls,
        next_states: torch.Tensor,
        probs: torch.Tensor,
        start: torch.Tensor,
        action_noise: float = 0.0,
    ) -> TabularMDP:
        """MDP from ``next_states[a, s, k]`` and ``probs[a, s, k]``."""
        next_states = torch.as_tensor(next_states, dtype=torch.int64)
        probs = torch.as_tensor(probs, dtype=torch.float32)
        if next_states.dim() != 3 or next_states.shape != probs.shape:
            raise ValueError(
                f"next_states and probs must both be [A, S, K], got "
                f"{tuple(next_states.shape)} and {tuple(probs.shape)}"
            )
        start = torch.as_tensor(start, dtype=torch.float32)
        # S comes from start here, so in-range indices alone would not catch a mismatch.
        if start.dim() != 1 or next_states.shape[1] != start.shape[0]:
            raise ValueError(
                f"next_states/probs [A, S, K] and start [S] must agree on S, got "
                f"{tuple(next_states.shape)} and {tuple(start.shape)}"
            )
        mdp = cls(
            start=start,
            num_actions=next_states.shape[0],
            action_noise=action_noise,
            _sparse=(next_states, probs),
        )
        mdp._validate(next_states, probs)
        return mdp

    @classmethod
    def from_moves(
        cls,
        moves: torch.Tensor,
        move_probs: torch.Tensor,
        start: torch.Tensor,
        action_noise: float = 0.0,
    ) -> TabularMDP:
        """MDP from deterministic ``moves[m, s]`` mixed by ``move_probs[a, m]``."""
        moves = torch.as_tensor(moves, dtype=torch.int64)
        move_probs = torch.as_tensor(move_probs, dtype=torch.float32)
        if moves.dim() != 2 or move_probs.dim() != 2 or move_probs.shape[1] != moves.shape[0]:
            raise ValueError(
                f"moves must be [M, S] and move_probs [A, M], got "
                f"{tuple(moves.shape)} and {tuple(move_probs.shape)}"
            )
        mdp = cls(
            start=torch.as_tensor(start, dtype=torch.float32),
            num_actions=move_probs.shape[0],
            action_noise=action_noise,
            moves=moves,
            move_probs=move_probs,
        )
        mdp._validate(moves.unsqueeze(0), move_probs.unsqueeze(1))
        return mdp

    def _validate(self, next_states: torch.Tensor, probs: torch.Tensor) -> None:
        S = self.num_states
        if self.start.shape != (S,):
            raise ValueError(f"start must have shape ({S},), got {tuple(self.start.shape)}")
        if not 0.0 <= self.action_noise <= 1.0:
            raise ValueError(f"action_noise must be in [0, 1], got {self.action_noise}")
        if next_states.numel() and (next_states.min() < 0 or next_states.max() >= S):
            raise ValueError(f"next-state indices must lie in [0, {S}), got "
                             f"[{int(next_states.min())}, {int(next_states.max())}]")
        if probs.min() < 0 or probs.max() > 1:
            raise ValueError(f"transition probabilities must lie in [0, 1], got "
                             f"[{float(probs.min())}, {float(probs.max())}]")
        worst = float((probs.sum(-1) - 1).abs().max())
        if worst > _PROB_TOL:
            raise ValueError(f"transition rows must sum to 1, worst row is off by {worst:.3g}")
        if float((self.start.sum() - 1).abs()) > _PROB_TOL or self.start.min() < 0:
            raise ValueError("start must be a probability distribution")

    # ------------------------------------------------------------- properties
    @property
    def num_states(self) -> int:
        return self.start.shape[0] if self.moves is None else self.moves.shape[1]

    @property
    def is_factored(self) -> bool:
        return self.moves is not None

    @functools.cached_property
    def deterministic(self) -> bool:
        """Factored with exactly one move per action (each ``move_probs`` row one-hot)."""
        return self.move_probs is not None and bool(((self.move_probs == 1).sum(1) == 1).all())

    @_cached_tensors
    def action_successors(self) -> torch.Tensor:
        """[A, S] successor of each action, for a ``deterministic`` MDP."""
        if not self.deterministic:
            raise ValueError("action_successors exists only for deterministic factored MDPs")
        assert self.moves is not None and self.move_probs is not None
        return self.moves[self.move_probs.argmax(1)].contiguous()

    @_cached_tensors
    def _sparse_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._sparse is not None:
            return self._sparse
        assert self.moves is not None and self.move_probs is not None
        # Keep only the moves some action can take: K = max nonzeros per row.
        support = self.move_probs > 0
        K = int(support.sum(1).max())
        order = torch.argsort(support.to(torch.int8), dim=1, descending=True, stable=True)[:, :K]
        next_states = self.moves[order]                       # [A, K, S]
        probs = torch.gather(self.move_probs, 1, order)       # [A, K]
        probs = probs.unsqueeze(-1).expand_as(next_states)
        return next_states.transpose(1, 2).contiguous(), probs.transpose(1, 2).contiguous()

    @property
    def next_states(self) -> torch.Tensor:
        """[A, S, K] int64 successor indices."""
        return self._sparse_form[0]

    @property
    def probs(self) -> torch.Tensor:
        """[A, S, K] float successor probabilities (rows sum to 1)."""
        return self._sparse_form[1]

    def executed_action_probs(self) -> torch.Tensor:
        """[A, A] P(executed b | chosen a) under ``action_noise``."""
        A, eta = self.num_actions, self.action_noise
        return (1 - eta) * torch.eye(A, device=self.start.device) + eta / A

    def executed_policy(self, policy: torch.Tensor) -> torch.Tensor:
        """``[..., S, A]`` P(executed b | s) of a policy ``pi[..., s, a]`` under ``action_noise``:
        ``(1 − η)·π + η/A`` (the row sum written out, so the result per row does not depend on
        how many rows a batch has, unlike a matrix product's)."""
        if not self.action_noise:
            return policy
        eta = self.action_noise
        return policy * (1 - eta) + policy.sum(-1, keepdim=True) * (eta / self.num_actions)

    def to(self, device: torch.device | str) -> TabularMDP:
        """This MDP on ``device`` (a new object: its caches are rebuilt there on first use)."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)
        sparse = None if self._sparse is None else (self._sparse[0].to(device), self._sparse[1].to(device))
        return dataclasses.replace(self, start=self.start.to(device), moves=move(self.moves),
                                   move_probs=move(self.move_probs), _sparse=sparse)

    def cached(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()``, once per key: data the kernels derive from this MDP's transitions alone and
        reuse call after call (a sampler's outcome layout, a planner's gather indices). What follows
        from a reward (A*, V*, returns) is a task's, in :class:`~rlhf.core.truths.TaskTruths`.

        Built outside inference mode, like the cached properties: the cache outlives
        the call that filled it (``rlhf.train`` runs under inference mode)."""
        store = self.__dict__.setdefault("_derived", {})     # frozen: not through __setattr__
        if key not in store:
            with torch.inference_mode(False):
                store[key] = build()
        return store[key]

    @_cached_tensors
    def executed_transitions(self) -> torch.Tensor:
        """[A, S, S] dense transitions of the *executed* action (no action noise), cached: small MDPs only."""
        return self._dense(with_noise=False)

    def dense_transitions(self) -> torch.Tensor:
        """[A, S, S] dense ``P[a, s, s']`` (rows sum to 1), action noise included.

        O(A·S²) memory: for checks and small MDPs only.
        """
        return self._dense(with_noise=True)

    def _dense(self, with_noise: bool) -> torch.Tensor:
        A, S = self.num_actions, self.num_states
        next_states, probs = self._sparse_form
        dense = torch.zeros(A, S, S)
        rows = torch.arange(S).view(1, S, 1).expand_as(next_states)
        acts = torch.arange(A).view(A, 1, 1).expand_as(next_states)
        dense.index_put_((acts, rows, next_states), probs, accumulate=True)
        if with_noise and self.action_noise:
            dense = torch.einsum("ab,bst->ast", self.executed_action_probs(), dense)
        return dense
