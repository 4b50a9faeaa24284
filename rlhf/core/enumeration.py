"""Every trajectory of a small MDP, with its exact probability: what makes population quantities
(a preference loss over every pair, a win rate, the mass a policy puts outside a dataset) computed
rather than sampled.

A trajectory of ``T`` steps is ``(s_0, a_0, s_1, a_1, …, s_{T−1}, a_{T−1})`` as :func:`rlhf.rollout`
records it (``a_t`` the *executed* action); its probability under a policy π (stationary
``[S, A]`` or time-indexed ``[H, S, A]``) is::

    d_0(s_0) · Π_t π_exec,t(a_t | s_t) · Π_{t<T−1} P(s_{t+1} | s_t, a_t)

with ``π_exec`` the executed-action distribution (action noise included). Trajectories of
probability 0 are left out, and each appears once (successor slots that lead to the same state
are merged). Shapes: ``states[N, T]``, ``actions[N, T]``, ``probs[N]`` (float64, summing to 1).
"""

from __future__ import annotations

import torch

from .mdp import TabularMDP
from .rollout import Trajectories

MAX_TRAJECTORIES = 1 << 20
"""The most trajectories :func:`enumerate_trajectories` builds before it refuses (a task is then
too large to enumerate: sample it instead)."""


def enumerate_trajectories(mdp: TabularMDP, policy: torch.Tensor | None, length: int,
                           max_trajectories: int = MAX_TRAJECTORIES) -> tuple[Trajectories, torch.Tensor]:
    """``(Trajectories[N, T], probs[N])``: every trajectory of ``length`` steps with positive
    probability under ``policy`` (None: every action, each with probability 1/A), in lexicographic
    order of ``(s_0, a_0, s_1, a_1, …)``, and its exact probability (float64). ValueError when more
    than ``max_trajectories`` would be needed."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    S, A = mdp.num_states, mdp.num_actions
    device = mdp.start.device
    if policy is None:
        policy = torch.full((S, A), 1.0 / A, dtype=torch.float64, device=device)
    policy = torch.as_tensor(policy, device=device).double()
    if policy.dim() == 3:
        if policy.shape[0] < length:
            raise ValueError(f"a time-indexed policy needs at least {length} steps, got {tuple(policy.shape)}")
    elif policy.dim() != 2:
        raise ValueError(f"policy must be [S, A] or [H, S, A], got {tuple(policy.shape)}")
    executed = mdp.executed_policy(policy)                                    # [(H,) S, A]
    count = count_trajectories(mdp, executed, length)
    if count > max_trajectories:
        raise ValueError(f"{count:.4g} trajectories of {length} steps, more than {max_trajectories}: too many to "
                         "enumerate (sample the task instead)")
    next_states, probs = mdp.next_states, mdp.probs.double()                  # [A, S, K]
    start = mdp.start.double()
    first = torch.nonzero(start > 0).squeeze(-1)
    states = first.unsqueeze(-1)                                              # [n, t + 1]
    actions = torch.empty(first.numel(), 0, dtype=torch.int64, device=device)
    p = start[first]
    for t in range(length):
        acting = executed[t] if executed.dim() == 3 else executed
        here = states[:, -1]
        step = acting[here]                                                   # [n, A]
        n_index, a_index = torch.nonzero(step > 0, as_tuple=True)
        p_step = p[n_index] * step[n_index, a_index]
        grown_states, grown_actions = states[n_index], torch.cat([actions[n_index], a_index.unsqueeze(-1)], -1)
        if t == length - 1:
            states, actions, p = grown_states, grown_actions, p_step
            break
        successors = next_states[a_index, grown_states[:, -1]]               # [m, K]
        weights = probs[a_index, grown_states[:, -1]] * p_step.unsqueeze(-1)  # [m, K]
        m_index, k_index = torch.nonzero(weights > 0, as_tuple=True)
        candidates = torch.cat([grown_states[m_index], successors[m_index, k_index].unsqueeze(-1)], -1)
        keys = torch.cat([candidates, grown_actions[m_index]], -1)            # one row per (states, actions)
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
        if unique.shape[0] > max_trajectories:
            raise ValueError(f"more than {max_trajectories} trajectories of {length} steps: too many to "
                             "enumerate (sample the task instead)")
        p = torch.zeros(unique.shape[0], dtype=torch.float64, device=device).index_add_(
            0, inverse, weights[m_index, k_index])
        states, actions = unique[:, :t + 2], unique[:, t + 2:]
    if states.shape[0] > max_trajectories:
        raise ValueError(f"more than {max_trajectories} trajectories of {length} steps: too many to enumerate "
                         "(sample the task instead)")
    order = _lexicographic(states, actions)
    return Trajectories(states[order].contiguous(), actions[order].contiguous()), p[order]


def count_trajectories(mdp: TabularMDP, executed: torch.Tensor, length: int) -> float:
    """How many trajectories of ``length`` steps have positive probability under executed-action
    probabilities ``[S, A]`` or ``[H, S, A]`` (a float: it may be astronomically large), by counting
    paths over the distinct (state, action, successor) edges: O(length · A·S·K), nothing enumerated."""
    A, S, K = mdp.next_states.shape
    acts = torch.arange(A).view(A, 1, 1).expand(A, S, K)
    here = torch.arange(S).view(1, S, 1).expand(A, S, K)
    flat = torch.unique(((acts * S + here) * S + mdp.next_states)[mdp.probs > 0])
    edge_action, edge_state, edge_next = flat // (S * S), (flat // S) % S, flat % S
    paths = (mdp.start > 0).double()
    for t in range(length):
        allowed = (executed[t] if executed.dim() == 3 else executed) > 0                      # [S, A]
        if t == length - 1:
            return float((paths * allowed.sum(-1)).sum())
        weight = paths[edge_state] * allowed[edge_state, edge_action]
        paths = torch.zeros(S, dtype=torch.float64).index_add_(0, edge_next, weight)
    return 0.0


def _lexicographic(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The order of rows sorted by ``(s_0, a_0, s_1, a_1, …)``."""
    interleaved = torch.stack([states, actions], -1).flatten(1)
    if interleaved.shape[0] == 0:
        return torch.arange(0, device=states.device)
    _, inverse = torch.unique(interleaved, dim=0, return_inverse=True)     # rows are distinct
    return torch.argsort(inverse)
