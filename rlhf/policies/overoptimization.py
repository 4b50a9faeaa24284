"""Optimisation paths away from the reference, scored exactly: Gao, Schulman and Hilton's (2023)
over-optimisation curves on a tabular task.

A path is a list of :class:`PathPoint`: how hard a policy was optimised (``param``: β, n or a step
count), its KL from the reference, ``d = √KL``, its return under the proxy it was optimised on and its
return under the task's true ("gold") reward. Every number is exact (float64 evaluation, no sampling):

* :func:`kl_path`: ``π_β = kl_regularized_policy(proxy, β)`` over a grid of β (the optimum of
  ``E[Σ r̂] − β·KL``, what RLHF's PPO converges to); KL by :func:`rlhf.policy_kl`, returns by exact
  evaluation. Along it neither the KL nor the proxy return ever falls as β falls: for β₁ > β₂ each optimum
  beats the other at its own β, and adding the two inequalities gives ``(β₁ − β₂)·(KL₂ − KL₁) >= 0``, then
  ``R̂₂ − R̂₁ >= β₂·(KL₂ − KL₁) >= 0``.
* :func:`best_of_n_path`: best-of-n ranked by the proxy (:func:`rlhf.best_of_n`: exact for enumerable
  tasks; its KL is over trajectories).
* :func:`npg_path`: natural policy gradient on the proxy from the reference (:func:`npg_policies`).
* :func:`alignment_path`: a direct-alignment method (or ``rlhf``) along its β, by :func:`rlhf.align_batch`
  (exact on population data, full-batch Adam on sampled data).

**Natural policy gradient.** The policy is time-indexed tabular softmax, ``π_t(·|s) = softmax(θ_t(s, ·))``,
started at ``θ = log π_ref``. Each step evaluates the current policy exactly (``Q^π_t`` under the proxy
by backward induction, action noise included) and moves ``θ ← θ + η·Q^π``: the natural gradient of
the return in this parametrisation (Kakade, 2001; Agarwal et al., 2021: the Fisher-preconditioned
gradient of a tabular softmax policy is its advantage, up to per-state constants that softmax ignores;
in states the policy never reaches the Fisher matrix is 0 and this is the convention). On a
bandit, and on any task where an action changes only its own step's reward and not the next state's
distribution (the string task: ``Q^π_t(s, a) = r̂(s, a) + V^π_{t+1}(t + 1)``, the last term the same
for every action), the iterates are in closed form, ``π_k ∝ π_ref·exp(η·k·r̂)``: the KL path at
``β = 1/(η·k)``, so stopping NPG after k steps *is* a KL penalty of strength 1/(η·k). Where actions
steer the state (a gridworld), NPG's iterates leave that path (``Q^π`` is not the soft ``Q`` of
:func:`rlhf.kl_regularized_policy`) and :func:`npg_path` measures its own curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..core.mdp import TabularMDP
from ..core.planning import policy_return
from ..core.regularized import kl_regularized_policy, policy_kl, time_indexed_values
from .align import align_batch
from .best_of_n import best_of_n_curve
from .data import PreferenceData
from .evaluation import occupancy_average
from .reference import reference_policy


@dataclass(frozen=True)
class PathPoint:
    """One policy of an optimisation path (see the module docstring)."""

    method: str
    """``kl``, ``best_of_n``, ``npg`` or an alignment method's name."""
    param: float
    """How hard it was optimised: β (``kl`` and alignment methods), n (``best_of_n``), steps (``npg``)."""
    kl: float
    """``KL(π ‖ π_ref)`` over the horizon, exact (nats)."""
    proxy_return: float
    """Expected return under the proxy, exact."""
    gold_return: float
    """Expected return under the task's true reward, exact."""

    @property
    def d(self) -> float:
        """``√KL``, Gao et al.'s distance from the reference."""
        return math.sqrt(max(self.kl, 0.0))

    def as_row(self) -> dict[str, float | str]:
        """The point as a flat dict with ``d`` (a row of a frame)."""
        return asdict(self) | {"d": self.d}


def _proxy(task: Any, proxy: torch.Tensor) -> torch.Tensor:
    """The proxy as a float64 ``[S]`` or ``[S, A]`` table."""
    table = torch.as_tensor(proxy, device=task.mdp.start.device).double()
    if table.dim() == 2 and table.shape[-1] == 1:
        table = table.squeeze(-1)
    S, A = task.mdp.num_states, task.mdp.num_actions
    if tuple(table.shape) not in ((S,), (S, A)):
        raise ValueError(f"proxy must be [S] or [S, A] = [{S}, {A}], got {tuple(table.shape)}")
    return table


def _point(task: Any, method: str, param: float, policy: torch.Tensor, ref: torch.Tensor,
           proxy: torch.Tensor) -> PathPoint:
    mdp, H = task.mdp, task.horizon
    return PathPoint(method, float(param), policy_kl(mdp, policy, ref, H), policy_return(mdp, policy, proxy, H),
                     policy_return(mdp, policy, task.true_reward, H))


def kl_path(task: Any, proxy: torch.Tensor, betas: Sequence[float], reference: Any = None) -> list[PathPoint]:
    """The KL-regularised optimum on ``proxy`` at each β of ``betas`` (in their order), planned in float64."""
    table, ref = _proxy(task, proxy), reference_policy(task, reference)
    out = []
    for beta in betas:
        policy = kl_regularized_policy(task.mdp, table, task.horizon, float(beta), ref)
        out.append(_point(task, "kl", beta, policy, ref, table))
    return out


def best_of_n_path(task: Any, proxy: torch.Tensor, ns: Sequence[int], reference: Any = None) -> list[PathPoint]:
    """Best-of-n ranked by ``proxy`` for each n of ``ns`` (exact: :func:`rlhf.best_of_n`)."""
    return [PathPoint("best_of_n", b.n, b.kl, b.proxy_return, b.gold_return)
            for b in best_of_n_curve(task, proxy, ns, reference)]


def npg_policies(task: Any, proxy: torch.Tensor, steps: Sequence[int], lr: float = 0.1,
                 reference: Any = None) -> list[torch.Tensor]:
    """``pi[H, S, A]`` float64 after each step count of ``steps`` (ascending) of natural policy gradient
    on ``proxy`` at step size ``lr`` from the reference (see the module docstring)."""
    checkpoints = [int(k) for k in steps]
    if any(k < 0 for k in checkpoints) or checkpoints != sorted(checkpoints):
        raise ValueError(f"steps must be ascending integers >= 0, got {list(steps)!r}")
    if not 0 < lr < math.inf:
        raise ValueError(f"lr must be a number in (0, inf), got {lr!r}")
    mdp, H = task.mdp, task.horizon
    table, ref = _proxy(task, proxy), reference_policy(task, reference)
    theta = torch.log(ref).expand(H, *ref.shape).clone()                       # [H, S, A]
    out, done = [], 0
    for k in checkpoints:
        for _ in range(k - done):
            theta += lr * q_values(mdp, torch.softmax(theta, -1), table)
        done = k
        out.append(torch.softmax(theta, -1))
    return out


def npg_path(task: Any, proxy: torch.Tensor, steps: Sequence[int], lr: float = 0.1,
             reference: Any = None) -> list[PathPoint]:
    """:func:`npg_policies` at each checkpoint, scored exactly (``param``: the step count)."""
    table, ref = _proxy(task, proxy), reference_policy(task, reference)
    return [_point(task, "npg", k, policy, ref, table)
            for k, policy in zip(steps, npg_policies(task, table, steps, lr, ref), strict=True)]


def actions_steer(mdp: TabularMDP) -> bool:
    """Whether some action changes the next state's distribution (its successors or their probabilities
    differ from another action's). Where none does (a bandit, the string task) natural policy gradient's
    iterates are the KL path's policies at ``β = 1/(η·k)`` (see the module docstring)."""
    same = bool((mdp.next_states == mdp.next_states[:1]).all()) and bool((mdp.probs == mdp.probs[:1]).all())
    return not same


def q_values(mdp: TabularMDP, policy: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """``Q^π[H, S, A]`` float64 of a time-indexed policy ``pi[H, S, A]`` under ``reward`` (``[S]`` or
    ``[S, A]``, following the executed action), by backward induction over its H steps::

        V_H = 0,  Q^exec_t(s, b) = r(s, b) + Σ_k P[b, s, k]·V_{t+1}(next[b, s, k]),
        Q_t(s, a) = (1 − η)·Q^exec_t(s, a) + η·mean_b Q^exec_t(s, b),  V_t(s) = Σ_a π_t(a|s)·Q_t(s, a)

    with η the MDP's action noise (the chosen action a is executed as b)."""
    H, S, A = policy.shape
    r = reward.double()
    r = r.unsqueeze(-1).expand(S, A) if r.dim() == 1 else r
    next_states, probs = mdp.next_states, mdp.probs.double()                    # [A, S, K]
    eta = mdp.action_noise
    q = torch.empty(H, S, A, dtype=torch.float64, device=r.device)
    v = torch.zeros(S, dtype=torch.float64, device=r.device)
    for t in range(H - 1, -1, -1):
        future = (probs * v[next_states]).sum(-1).T if t < H - 1 else 0.0     # [S, A]
        executed = r + future
        q[t] = executed if not eta else (1 - eta) * executed + eta * executed.mean(-1, keepdim=True)
        v = (policy[t].double() * q[t]).sum(-1)
    return q


def alignment_path(task: Any, data: PreferenceData | Sequence[PreferenceData], method: str,
                   betas: Sequence[float], reference: Any = None, seeds: Sequence[int] = (0,),
                   proxy: torch.Tensor | None = None, **options: Any) -> list[list[PathPoint]]:
    """Per seed (``seeds``, seed k on ``data[k]`` or all on one dataset), ``method`` aligned at each β of
    ``betas`` by :func:`rlhf.align_batch` (``options`` go to it). ``proxy_return`` is the return under
    ``proxy`` when given; otherwise under the policy's own implicit reward, ``E_π[Σ_t β·log π̄(a_t|s_t)/
    π_ref(a_t|s_t)]`` over executed actions (π̄ as :func:`rlhf.implicit_reward`), which on a noiseless
    task with a stationary or string-task policy is ``β·KL``."""
    ref = reference_policy(task, reference)
    table = None if proxy is None else _proxy(task, proxy)
    seeds = tuple(seeds)
    paths: list[list[PathPoint]] = [[] for _ in seeds]
    for beta in betas:
        results = align_batch(task, data, method, float(beta), ref, seeds, **options)
        for k, result in enumerate(results):
            own = implicit_return(task, result.policy, ref, float(beta)) if table is None else \
                policy_return(task.mdp, result.policy, table, task.horizon)
            paths[k].append(PathPoint(method, float(beta), result.metrics["kl"], own, result.metrics["true_return"]))
    return paths


def implicit_return(task: Any, policy: torch.Tensor, reference: torch.Tensor, beta: float) -> float:
    """``E_π[Σ_t β·log π̄(b_t|s_t)/π_ref(b_t|s_t)]`` over executed actions ``b_t``, exact (a term with
    ``π_exec = 0`` counts 0)."""
    mdp, H = task.mdp, task.horizon
    pi = policy.double()
    pi = pi.unsqueeze(0).expand(H, *pi.shape) if pi.dim() == 2 else pi[:H]
    executed = mdp.executed_policy(pi)
    log_ratio = torch.log(occupancy_average(task, policy)) - torch.log(reference.double())     # [S, A]
    step = beta * torch.where(executed > 0, executed * log_ratio, 0.0).sum(-1)                  # [H, S]
    return float((time_indexed_values(mdp, pi, step) * mdp.start.double()).sum())
