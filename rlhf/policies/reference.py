"""Reference policies ``pi_ref[S, A]``: what an aligned policy is kept close to and measured against.

* uniform (``None`` or ``"uniform"``): every action 1/A;
* a given table ``[S, A]`` (rows are distributions);
* ``sft``: the maximum-likelihood policy of N demonstrations (whole trajectories over the task's
  horizon) rolled out from a named behaviour, as supervised fine-tuning makes a language model's
  reference: ``π(a|s) = (n(s, a) + α) / (n(s) + α·A)`` with ``n`` the demonstrations' counts and α a
  pseudo-count per action (default 1; α = 0 is the pure maximum-likelihood policy, which gives
  probability 0 to every action never demonstrated, and is uniform in states never visited).

Behaviours (``behaviour=``): ``uniform``; ``boltzmann:β``, the soft-optimal policy of the task's true
reward at temperature β (``softmax(β·Q)`` of :func:`rlhf.soft_value_iteration`, stationary);
``optimal``, the greedy policy of the true reward (ties split evenly). The spec ``sft:N`` (or
``sft:N:BEHAVIOUR``, e.g. ``sft:100:boltzmann:2``) names one in :func:`rlhf.align`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..core.keys import Keys
from ..core.planning import soft_optimal_policy, uniform_policy
from ..core.regularized import check_reference
from ..core.rollout import rollout

DEMONSTRATIONS = 100
"""Demonstrations of the default ``sft`` reference."""
BEHAVIOUR = "boltzmann:1"
"""The default ``sft`` behaviour."""
SFT_PURPOSE = 5
"""The purpose of the demonstrations' random stream (:meth:`rlhf.Keys.fold`)."""


def behaviour_policy(task: Any, behaviour: str) -> torch.Tensor:
    """``pi[S, A]`` of a named behaviour (see the module docstring)."""
    mdp = task.mdp
    name, _, arg = behaviour.partition(":")
    if name == "uniform" and not arg:
        return uniform_policy(mdp)
    if name == "optimal" and not arg:
        return soft_optimal_policy(mdp, task.true_reward, task.horizon, temperature=math.inf)
    if name == "boltzmann" and arg:
        try:
            beta = float(arg)
        except ValueError:
            beta = math.nan
        if beta > 0:
            return soft_optimal_policy(mdp, task.true_reward, task.horizon, temperature=beta)
    raise ValueError(f"behaviour must be uniform, optimal or boltzmann:B (B > 0), got {behaviour!r}")


def sft_policy(task: Any, demonstrations: int = DEMONSTRATIONS, behaviour: str = BEHAVIOUR, seed: int = 0,
               prior: float = 1.0) -> torch.Tensor:
    """``pi_ref[S, A]`` float64: the maximum-likelihood policy (with ``prior`` pseudo-counts per action)
    of ``demonstrations`` trajectories of the task's horizon rolled out from ``behaviour``, under the key
    ``Keys.from_seeds([seed])[0].fold(5)``."""
    if isinstance(demonstrations, bool) or not isinstance(demonstrations, int) or demonstrations < 1:
        raise ValueError(f"demonstrations must be an integer >= 1, got {demonstrations!r}")
    if not prior >= 0:
        raise ValueError(f"prior must be >= 0, got {prior!r}")
    mdp = task.mdp
    keys = Keys.from_seeds([seed], device=mdp.start.device)[0].fold(SFT_PURPOSE)
    demos = rollout(mdp, behaviour_policy(task, behaviour), demonstrations, task.horizon, keys)
    S, A = mdp.num_states, mdp.num_actions
    counts = torch.zeros(S * A, dtype=torch.float64).index_add_(
        0, (demos.states * A + demos.actions).reshape(-1), torch.ones(demos.states.numel(), dtype=torch.float64))
    counts = counts.view(S, A) + prior
    totals = counts.sum(-1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-300), 1.0 / A)


def reference_policy(task: Any, reference: Any = None, seed: int = 0) -> torch.Tensor:
    """``pi_ref[S, A]`` float64 from what :func:`rlhf.align` accepts: None or ``"uniform"``, a table,
    ``"sft"`` (100 demonstrations of ``boltzmann:1``), ``"sft:N"`` or ``"sft:N:BEHAVIOUR"``; ``seed`` draws
    the demonstrations."""
    mdp = task.mdp
    if reference is None or (isinstance(reference, str) and reference == "uniform"):
        return torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, dtype=torch.float64,
                          device=mdp.start.device)
    if isinstance(reference, str):
        head, _, rest = reference.partition(":")
        if head != "sft":
            raise ValueError(f"reference must be None, 'uniform', 'sft', 'sft:N[:BEHAVIOUR]' or an [S, A] table, "
                             f"got {reference!r}")
        count, _, behaviour = rest.partition(":")
        try:
            n = int(count) if count else DEMONSTRATIONS
        except ValueError:
            raise ValueError(f"reference {reference!r}: N must be an integer") from None
        return sft_policy(task, n, behaviour or BEHAVIOUR, seed)
    table = check_reference(mdp, reference, torch.float64)
    assert table is not None
    return table
