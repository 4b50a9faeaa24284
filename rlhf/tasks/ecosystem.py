"""Tabular environments people already have, as tasks: Gymnasium's toy text and seals' tabular MDPs.

Both importers read the environment's model (never its ``step``) into a sparse
:class:`TabularMDP` of K successors per (state, action), K the most any pair has, so a
500-state Taxi is [6, 501, 1] and no dense [A, S, S] tensor is built. Gymnasium and seals
are optional (``pip install -c constraints.txt -e ".[envs]"``); importing this module does
not need them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core.mdp import TabularMDP
from .tabular import TabularTask


def from_gymnasium(env_or_id: Any, horizon: int | None = None, **make_kwargs: Any) -> TabularTask:
    """A task from a Gymnasium toy-text environment (an id such as ``"FrozenLake-v1"``, or an env).

    Reads ``env.unwrapped.P[s][a] = [(prob, next, reward, terminated), ...]``. A transition that
    terminates goes to one extra absorbing state (index S, every action stays, reward 0), so an
    episode's end is a state of the MDP and a segment can run past it. The true reward is
    the expected reward of (s, a), ``Σ prob · reward`` over its outcomes: an ``(s, a, s')``
    reward reduced to its expectation, which keeps every policy's expected return. The start
    distribution is ``initial_state_distrib``; the horizon the registered
    ``max_episode_steps`` unless ``horizon`` is given (required where none is registered,
    e.g. CliffWalking). ``make_kwargs`` go to ``gymnasium.make`` (``is_slippery=False``).
    """
    env, env_id = _make(env_or_id, make_kwargs)
    model = getattr(env.unwrapped, "P", None)
    start = getattr(env.unwrapped, "initial_state_distrib", None)
    if not isinstance(model, dict) or start is None:
        raise ValueError(f"{env_id} is not a tabular Gymnasium environment: its unwrapped env has no "
                         f"P[s][a] transition lists and initial_state_distrib")
    S, A = len(model), int(env.action_space.n)
    absorbing = S
    successors: list[list[dict[int, float]]] = [[{} for _ in range(S + 1)] for _ in range(A)]
    reward = np.zeros((S + 1, A))
    for s in range(S):
        for a in range(A):
            for prob, nxt, r, terminated in model[s][a]:
                target = absorbing if terminated else int(nxt)
                successors[a][s][target] = successors[a][s].get(target, 0.0) + float(prob)
                reward[s, a] += float(prob) * float(r)
    for a in range(A):
        successors[a][absorbing] = {absorbing: 1.0}
    start = np.append(np.asarray(start, dtype=np.float64), 0.0)
    mdp = _sparse_mdp(successors, start)
    spec = getattr(env, "spec", None)
    return TabularTask(mdp, torch.as_tensor(reward, dtype=torch.float32), _horizon(env, env_id, horizon),
                       name="gymnasium", label=env_id, reward_threshold=getattr(spec, "reward_threshold", None))


def from_seals(env_or_id: Any, horizon: int | None = None, **make_kwargs: Any) -> TabularTask:
    """A task from a seals tabular environment (``TabularModelPOMDP``: CliffWorld, Random,
    Branching, InitShift, RiskyPath, ...), an id such as ``"seals/CliffWorld7x4-v0"`` or an env.

    Reads ``transition_matrix[S, A, S']``, ``reward_matrix`` (``[S]``, ``[S, A]`` or
    ``[S, A, S']``, the last reduced to its expectation over s' as in :func:`from_gymnasium`),
    ``initial_state_dist`` and the horizon (the env's ``horizon``, else the registered
    ``max_episode_steps``, else ``horizon``). seals' episodes have a fixed length: no absorbing state.
    """
    env, env_id = _make(env_or_id, make_kwargs)
    base = env.unwrapped
    matrix = getattr(base, "transition_matrix", None)
    rewards = getattr(base, "reward_matrix", None)
    start = getattr(base, "initial_state_dist", None)
    if matrix is None or rewards is None or start is None:
        raise ValueError(f"{env_id} is not a tabular seals environment: it has no transition_matrix, "
                         f"reward_matrix and initial_state_dist")
    matrix, rewards = np.asarray(matrix, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
    S, A, _ = matrix.shape
    if rewards.ndim == 3:
        reward = (matrix * rewards).sum(-1)
    else:
        reward = rewards if rewards.ndim == 2 else np.repeat(rewards[:, None], A, axis=1)
    # the largest number of successors of any (s, a), then each pair's successors first
    nonzero = matrix > 0
    K = int(nonzero.sum(-1).max())
    order = np.argsort(~nonzero, axis=-1, kind="stable")[..., :K]                 # [S, A, K]
    probs = np.take_along_axis(matrix, order, axis=-1)
    next_states = np.where(probs > 0, order, np.arange(S)[:, None, None])
    mdp = TabularMDP.from_sparse(torch.as_tensor(next_states.transpose(1, 0, 2)),
                                 torch.as_tensor(probs.transpose(1, 0, 2), dtype=torch.float32),
                                 torch.as_tensor(start, dtype=torch.float32))
    own = getattr(base, "horizon", None)
    return TabularTask(mdp, torch.as_tensor(reward, dtype=torch.float32),
                       horizon if horizon is not None else own if own is not None else _horizon(env, env_id, None),
                       name="seals", label=env_id)


def _make(env_or_id: Any, make_kwargs: dict[str, Any]) -> tuple[Any, str]:
    if not isinstance(env_or_id, str):
        spec = getattr(env_or_id, "spec", None)
        return env_or_id, spec.id if spec is not None else type(env_or_id.unwrapped).__name__
    try:
        import gymnasium
    except ImportError:
        raise ImportError("gymnasium is not installed: pip install -c constraints.txt -e '.[envs]'") from None
    if env_or_id.startswith("seals/"):
        try:
            import seals  # noqa: F401  (registers the seals/ ids)
        except ImportError:
            raise ImportError("seals is not installed: pip install -c constraints.txt -e '.[envs]'") from None
    if env_or_id not in gymnasium.registry:
        raise ValueError(f"unknown environment id {env_or_id!r}")
    try:
        return gymnasium.make(env_or_id, **make_kwargs), env_or_id
    except (gymnasium.error.Error, TypeError) as exc:     # e.g. a missing dependency, a bad keyword
        raise ValueError(f"{env_or_id} cannot be made: {exc}") from None


def _horizon(env: Any, env_id: str, horizon: int | None) -> int:
    if horizon is not None:
        return horizon
    spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None)
    if steps is None:
        raise ValueError(f"{env_id} registers no max_episode_steps: pass horizon=")
    return int(steps)


def _sparse_mdp(successors: list[list[dict[int, float]]], start: np.ndarray) -> TabularMDP:
    """``from_sparse`` of per-(action, state) successor dicts, padded to the largest (self, prob 0)."""
    A, S = len(successors), len(successors[0])
    K = max(len(d) for row in successors for d in row)
    next_states = np.tile(np.arange(S)[None, :, None], (A, 1, K))
    probs = np.zeros((A, S, K))
    for a, row in enumerate(successors):
        for s, outcomes in enumerate(row):
            for k, (nxt, p) in enumerate(sorted(outcomes.items())):
                next_states[a, s, k], probs[a, s, k] = nxt, p
    return TabularMDP.from_sparse(torch.as_tensor(next_states), torch.as_tensor(probs, dtype=torch.float32),
                                  torch.as_tensor(start, dtype=torch.float32))
