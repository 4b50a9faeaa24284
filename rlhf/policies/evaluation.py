"""The metrics of an aligned policy ``pi[S, A]`` or ``pi[H, S, A]`` against its reference ``pi_ref[S, A]``,
under the task's true reward over its horizon H, from its start distribution. Exact unless said:

* ``true_return``: ``J(π) = E_π[Σ_t r]`` (exact evaluation, float64); ``scaled_return``: J scaled so the
  uniform policy is 0 and the optimum 1 (Knox et al.; NaN where no policy beats random);
* ``kl``: the trajectory KL ``E_π[Σ_t KL(π_t(·|s_t) ‖ π_ref(·|s_t))]`` (:func:`rlhf.policy_kl`), and
  ``regularized_return``: ``J − β·KL``, the objective :func:`rlhf.kl_regularized_policy` maximises;
* ``win_rate``: P(a trajectory of π beats one of π_ref under the true return), ties counting ½.
  Exact (every pair of trajectories, :func:`~rlhf.core.enumeration.enumerate_trajectories`) when both
  policies have at most :data:`ENUMERATE_MAX` trajectories, ``win_rate_exact = 1``; otherwise
  sampled from :data:`WIN_RATE_SAMPLES` independent pairs under fixed counter-based keys
  (``Keys.from_seeds([0])[0].fold(7)``, the same for every policy), ``win_rate_exact = 0``, with the
  95% Wilson interval in ``win_rate_low`` and ``win_rate_high`` (equal to the rate when exact);
* ``implicit_epic``: the EPIC distance (:func:`rlhf.epic_distance`) between the implicit reward
  ``β·log π̄(a|s)/π_ref(a|s)`` and the true reward, both ``[S, A]`` with each state's mean removed
  (a per-state constant never changes a policy); NaN where π or π_ref gives an action probability 0
  (the implicit reward is then infinite). π̄ is π itself, or for a time-indexed policy its
  steps averaged by its own state occupancy; the true reward of a state reward ``r[S]`` is the expected
  reward of the successor, ``E[r(s') | s, a]`` (what a step contributes to a partial return);
* ``ood_mass`` (Xu et al., 2024): the probability that π rolls out a trajectory absent from the data
  (exact by enumeration; NaN above :data:`ENUMERATE_MAX`), and ``ood_action_mass``: the expected
  fraction of π's steps that take an executed (state, action) the data never contains (exact).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..core.enumeration import enumerate_trajectories
from ..core.keys import Keys
from ..core.planning import policy_return
from ..core.regularized import policy_kl, time_indexed_values
from ..core.rollout import Trajectories, rollout, step_rewards
from ..core.truths import truths_of
from ..metrics import epic_distance
from .data import PreferenceData

ENUMERATE_MAX = 20_000
"""Trajectories up to which the win rate and the out-of-data mass are computed by enumeration."""
WIN_RATE_SAMPLES = 4000
"""Pairs of a sampled win rate."""
WIN_RATE_KEYS = Keys.from_seeds([0])[0].fold(7)
"""The sampled win rate's keys (the same for every policy, so rates compare on common draws)."""


def policy_metrics(task: Any, policy: torch.Tensor, reference: torch.Tensor, beta: float,
                   data: PreferenceData | None = None) -> dict[str, float]:
    """Every metric of the module docstring (the two ``ood`` ones only with ``data``)."""
    mdp, H = task.mdp, task.horizon
    truths = truths_of(task)
    j = policy_return(mdp, policy, task.true_reward, H)
    kl = policy_kl(mdp, policy, reference, H)
    out = {"true_return": j, "scaled_return": truths.scaled(j), "kl": kl, "regularized_return": j - beta * kl}
    out |= win_rate(task, policy, reference)
    out["implicit_epic"] = implicit_epic(task, policy, reference, beta)
    if data is not None:
        out["ood_mass"] = ood_mass(task, policy, data)
        out["ood_action_mass"] = ood_action_mass(task, policy, data)
    return out


def _returns(task: Any, traj: Trajectories) -> torch.Tensor:
    return step_rewards(torch.as_tensor(task.true_reward), traj).double().sum(-1)


def _enumerate(task: Any, policy: torch.Tensor) -> tuple[Trajectories, torch.Tensor] | None:
    try:
        return enumerate_trajectories(task.mdp, policy, task.horizon, ENUMERATE_MAX)
    except ValueError:
        return None


def win_rate(task: Any, policy: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """``win_rate``, ``win_rate_low``, ``win_rate_high``, ``win_rate_exact`` (see the module docstring)."""
    mine, theirs = _enumerate(task, policy), _enumerate(task, reference)
    if mine is not None and theirs is not None:
        r1, r2 = _returns(task, mine[0]), _returns(task, theirs[0])
        outcome = (r1.unsqueeze(-1) > r2).double() + 0.5 * (r1.unsqueeze(-1) == r2).double()
        rate = float(mine[1] @ outcome @ theirs[1])
        return {"win_rate": rate, "win_rate_low": rate, "win_rate_high": rate, "win_rate_exact": 1.0}
    n, H = WIN_RATE_SAMPLES, task.horizon
    keys = Keys(WIN_RATE_KEYS.key.to(task.mdp.start.device))
    first = rollout(task.mdp, policy, n, H, keys.fold(0), time_indexed=policy.dim() == 3)
    second = rollout(task.mdp, reference, n, H, keys.fold(1))
    r1, r2 = _returns(task, first), _returns(task, second)
    rate = float(((r1 > r2).double() + 0.5 * (r1 == r2).double()).mean())
    low, high = _wilson(rate, n)
    return {"win_rate": rate, "win_rate_low": low, "win_rate_high": high, "win_rate_exact": 0.0}


def _wilson(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion p of n (95% by default)."""
    centre, spread = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - spread / (1 + z * z / n), centre + spread / (1 + z * z / n)


def occupancy_average(task: Any, policy: torch.Tensor) -> torch.Tensor:
    """``π̄[S, A]`` float64: a stationary policy itself; a time-indexed one's steps averaged by its
    state occupancy ``d_t(s)`` (uniform in states it never visits)."""
    pi = policy.double()
    if pi.dim() == 2:
        return pi
    mdp, H = task.mdp, task.horizon
    S, A = mdp.num_states, mdp.num_actions
    d = mdp.start.double()
    executed = mdp.executed_policy(pi)
    successors, probs = mdp.next_states.reshape(-1), mdp.probs.double()      # [A·S·K], [A, S, K]
    weighted, visits = torch.zeros(S, A, dtype=torch.float64), torch.zeros(S, dtype=torch.float64)
    for t in range(H):
        weighted += d.unsqueeze(-1) * pi[t]
        visits += d
        flow = (d.unsqueeze(-1) * executed[t]).T.unsqueeze(-1) * probs          # [A, S, K]
        d = torch.zeros(S, dtype=torch.float64).index_add_(0, successors, flow.reshape(-1))
    return torch.where(visits.unsqueeze(-1) > 0, weighted / visits.clamp_min(1e-300).unsqueeze(-1), 1.0 / A)


def implicit_epic(task: Any, policy: torch.Tensor, reference: torch.Tensor, beta: float) -> float:
    """The EPIC distance of the implicit reward from the truth (see the module docstring)."""
    mdp = task.mdp
    implicit = beta * (torch.log(occupancy_average(task, policy)) - torch.log(reference.double()))
    if not bool(torch.isfinite(implicit).all()):      # the policy (or the reference) excludes an action
        return math.nan
    true = torch.as_tensor(task.true_reward).double()
    if true.dim() == 1:                         # E[r(s') | s, a]
        true = (mdp.probs.double() * true[mdp.next_states]).sum(-1).T
    return epic_distance(implicit - implicit.mean(-1, keepdim=True), true - true.mean(-1, keepdim=True))


def ood_mass(task: Any, policy: torch.Tensor, data: PreferenceData) -> float:
    """P_π(a trajectory absent from the data), exact; NaN when π has more than :data:`ENUMERATE_MAX`."""
    found = _enumerate(task, policy)
    if found is None or found[0].states.shape[-1] != data.length:
        return math.nan
    traj, probs = found
    rows = torch.cat([torch.cat([traj.states, traj.actions], -1),
                      torch.cat([data.trajectories.states, data.trajectories.actions], -1)])
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    seen = torch.zeros(int(inverse.max()) + 1, dtype=torch.bool)
    seen[inverse[traj.states.shape[0]:]] = True
    return float(probs[~seen[inverse[:traj.states.shape[0]]]].sum())


def ood_action_mass(task: Any, policy: torch.Tensor, data: PreferenceData) -> float:
    """The expected fraction of π's steps at an executed (state, action) the data never contains, exact."""
    mdp, H = task.mdp, task.horizon
    S, A = mdp.num_states, mdp.num_actions
    seen = torch.zeros(S * A, dtype=torch.bool)
    seen[(data.trajectories.states * A + data.trajectories.actions).reshape(-1)] = True
    pi = policy.double()
    pi = pi.unsqueeze(0).expand(H, S, A) if pi.dim() == 2 else pi[:H]
    unseen_step = (mdp.executed_policy(pi) * (~seen).view(S, A).double()).sum(-1)     # [H, S]
    return float((time_indexed_values(mdp, pi, unseen_step) * mdp.start.double()).sum()) / H
