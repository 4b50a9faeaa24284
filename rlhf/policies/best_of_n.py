"""Best-of-n under a reference policy, ranked by a proxy reward: exact for a task small enough to
enumerate, sampled with counter-based keys otherwise.

Best-of-n draws n trajectories independently from the reference π_ref, scores each by its proxy
return ``R̂(τ) = Σ_t r̂(s_t, a_t)`` (float64, summed in step order; the executed actions, as every
reward here) and keeps the best; **ties among the n samples are broken uniformly at random**.

**Exact distribution** (:func:`best_of_n`, :func:`best_of_n_curve`). Enumerate the trajectories
(:func:`~rlhf.core.enumeration.enumerate_trajectories`) with their reference probabilities ``p(τ)``,
sort them by R̂ and group equal returns into blocks ``B_1 < … < B_m``. With ``F_j = Σ_{k≤j} p(B_k)``
the reference CDF in that order, the best sample lies in block j with probability ``F_j^n − F_{j−1}^n``
(all n samples in ``B_1 ∪ … ∪ B_j``, not all in ``B_1 ∪ … ∪ B_{j−1}``), and::

    P_bon(τ) = (F_j^n − F_{j−1}^n) · p(τ) / p(B_j)            for τ in B_j.

The split inside a block: given that the best sample lies in ``B_j``, the samples that fell in ``B_j``
are independent draws of π_ref conditioned on ``B_j``, so a uniformly chosen one of them is τ with
probability ``p(τ)/p(B_j)``, whatever their number. Without ties every block is one trajectory and
this is ``P(rank j) = F_j^n − F_{j−1}^n``. (A rule that broke ties by a fixed order instead would give
the whole block's mass to one trajectory: a different distribution with a larger KL.)
Computed as ``F_j^n = exp(n·log1p(−G_j))`` with ``G_j`` the mass above block j (summed from the top,
so the top blocks, where large n puts its mass, keep full relative precision).

**Exact KL.** ``P_bon/p`` is constant on a block, so::

    KL(π_bon ‖ π_ref) = Σ_j P(B_j) · log(P(B_j) / p(B_j)),

a KL between distributions over trajectories (for a noiseless deterministic MDP that is the KL of
the sequences, the quantity :func:`rlhf.policy_kl` gives a policy). It is 0 at n = 1 and never above
the analytic value ``log n − (n−1)/n`` (Stiennon et al., 2020; Gao et al., 2023; :attr:`BestOfN.kl_bound`):
that value is the KL of best-of-n for a *continuous* proxy — with ``U = F(R̂)`` uniform on [0, 1] the
best sample's U has density ``n·u^(n−1)``, and ``∫ n·u^(n−1)·log(n·u^(n−1)) du = log n − (n−1)/n`` — and
the blocks are a partition of [0, 1] into the intervals ``(F_{j−1}, F_j]``, on which the continuous
best-of-n puts exactly ``P(B_j)`` and the uniform ``p(B_j)``; coarsening never increases a KL (the
data-processing inequality), with equality only when the density ratio is constant on every block,
which ``n·u^(n−1)`` is not for n > 1 (Beirami et al., 2024). So the bound is loose wherever the proxy
has atoms: ties, few trajectories, or one trajectory carrying much of the reference's mass; with M
equally likely distinct returns the KL is a Riemann sum of that integral and approaches it as M grows.

**Sampled** (:func:`best_of_n_sampled`): for tasks too large to enumerate, ``draws`` independent
best-of-n selections from ``draws·n`` reference rollouts (:func:`rlhf.rollout` under
``keys.fold(SAMPLE)``), ties broken by 32-bit uniform draws under ``keys.fold(TIES)``. The proxy and
gold returns are sample means with standard errors; the KL is the plug-in value of the exact
formula on the empirical distribution of the ``draws·n`` reference returns (consistent, and exact
in the limit, but an estimate: it sees only the atoms the sample hit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.enumeration import MAX_TRAJECTORIES, count_trajectories, enumerate_trajectories
from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.rollout import Trajectories, rollout, step_rewards
from .reference import reference_policy

SAMPLE, TIES = 1, 2
"""Purposes (:meth:`rlhf.Keys.fold`) of a sampled best-of-n's rollouts and tie-breaking draws."""


def kl_bound(n: int) -> float:
    """``log n − (n−1)/n``: best-of-n's KL for a continuous proxy, an upper bound on every other."""
    return math.log(n) - (n - 1) / n


class _Distance:
    """What a best-of-n (exact or sampled) derives from its ``n`` and ``kl``."""

    n: int
    kl: float

    @property
    def kl_bound(self) -> float:
        """``log n − (n−1)/n`` (never below the exact :attr:`kl`)."""
        return kl_bound(self.n)

    @property
    def d(self) -> float:
        """``√KL``, Gao et al.'s distance."""
        return math.sqrt(max(self.kl, 0.0))


@dataclass(frozen=True)
class BestOfN(_Distance):
    """Best-of-n's exact distribution over the reference's trajectories and its numbers."""

    n: int
    kl: float
    """``KL(π_bon ‖ π_ref)`` over trajectories, exact (nats)."""
    proxy_return: float
    """``E_bon[R̂]``, exact."""
    gold_return: float
    """``E_bon[R]`` under the task's true reward, exact."""
    probs: torch.Tensor = field(compare=False)
    """``[M]`` float64: ``P_bon(τ)`` of each enumerated trajectory."""
    reference_probs: torch.Tensor = field(compare=False)
    """``[M]`` float64: ``p(τ)`` under the reference."""
    trajectories: Trajectories = field(compare=False)
    """``[M, T]`` every trajectory of positive reference probability, in lexicographic order."""


@dataclass(frozen=True)
class SampledBestOfN(_Distance):
    """A sampled best-of-n: ``draws`` selections of the best of n reference rollouts."""

    n: int
    draws: int
    kl: float
    """Plug-in estimate of the KL from the ``draws·n`` reference returns (see the module docstring)."""
    proxy_return: float
    """The mean proxy return of the kept trajectories."""
    proxy_stderr: float
    """Its standard error (sample standard deviation / √draws)."""
    gold_return: float
    """The mean true return of the kept trajectories."""
    gold_stderr: float
    """Its standard error."""
    chosen: Trajectories = field(compare=False)
    """``[draws, T]`` the trajectory each selection kept."""


def best_of_n(task: Any, proxy: torch.Tensor, n: int, reference: Any = None) -> BestOfN:
    """Exact best-of-``n`` under ``reference`` (None: uniform; an ``[S, A]`` table or what :func:`rlhf.align`
    takes) ranked by ``proxy`` (``[S]`` or ``[S, A]``), over the task's horizon (see the module docstring).
    ValueError when the task has more trajectories than :data:`rlhf.core.enumeration.MAX_TRAJECTORIES`."""
    return best_of_n_curve(task, proxy, [n], reference)[0]


def best_of_n_curve(task: Any, proxy: torch.Tensor, ns: Sequence[int], reference: Any = None,
                    max_trajectories: int = MAX_TRAJECTORIES) -> list[BestOfN]:
    """:func:`best_of_n` for every n of ``ns``, enumerating and sorting the trajectories once."""
    ns = [_check_n(n) for n in ns]
    ref = reference_policy(task, reference)
    traj, p = trajectories_of(task.mdp, ref, task.horizon, max_trajectories)
    p = p / p.sum()
    r_hat = _returns(task, proxy, traj)
    gold = _returns(task, task.true_reward, traj)
    order = torch.sort(r_hat, stable=True).indices
    values, block = torch.unique_consecutive(r_hat[order], return_inverse=True)
    mass = torch.zeros(values.shape[0], dtype=torch.float64).index_add_(0, block, p[order])     # p(B_j)
    mass = mass / mass.sum()
    masses = block_probabilities(mass, ns)                                     # [len(ns), m]  P(B_j)
    ratio = torch.where(mass > 0, masses / mass, 0.0)                          # P_bon / p on each block
    probs = torch.empty(len(ns), p.shape[0], dtype=torch.float64)
    probs[:, order] = ratio[:, block] * p[order]                               # [len(ns), M]
    kls = (torch.xlogy(masses, masses) - torch.xlogy(masses, mass)).sum(-1).clamp_min(0.0).tolist()
    proxies, golds = (masses @ values).tolist(), (probs @ gold).tolist()
    return [BestOfN(n, kls[k], proxies[k], golds[k], probs[k], p, traj) for k, n in enumerate(ns)]


def trajectories_of(mdp: TabularMDP, policy: torch.Tensor, length: int,
                    max_trajectories: int = MAX_TRAJECTORIES) -> tuple[Trajectories, torch.Tensor]:
    """:func:`~rlhf.core.enumeration.enumerate_trajectories` of ``policy[S, A]`` (float64), the same
    trajectories, order and bits. A deterministic, noiseless MDP with one start state (a string task)
    takes a shortcut: its trajectories are its action sequences, grown step by step in lexicographic
    order, with nothing to merge and nothing to sort."""
    starts = torch.nonzero(mdp.start > 0).squeeze(-1)
    if not mdp.deterministic or mdp.action_noise or starts.numel() != 1 or length < 1:
        return enumerate_trajectories(mdp, policy, length, max_trajectories)
    policy = policy.double()
    count = count_trajectories(mdp, policy, length)
    if count > max_trajectories:
        raise ValueError(f"{count:.4g} trajectories of {length} steps, more than {max_trajectories}: too many to "
                         "enumerate (sample the task instead)")
    successors = mdp.action_successors                                        # [A, S]
    states, actions = starts.view(1, 1), starts.new_empty(1, 0)
    p = mdp.start.double()[starts]
    for t in range(length):
        here = states[:, -1]
        step = policy[here]                                                   # [n, A]
        row, action = torch.nonzero(step > 0, as_tuple=True)                  # row-major: lexicographic
        p = p[row] * step[row, action]
        actions = torch.cat([actions[row], action.unsqueeze(-1)], -1)
        states = states[row] if t == length - 1 else \
            torch.cat([states[row], successors[action, here[row]].unsqueeze(-1)], -1)
    return Trajectories(states.contiguous(), actions.contiguous()), p


def block_probabilities(mass: torch.Tensor, ns: Sequence[int]) -> torch.Tensor:
    """``[len(ns), m]`` float64 ``F_j^n − F_{j−1}^n`` for blocks of reference mass ``mass[m]`` in ascending
    proxy order (see the module docstring)."""
    tail = torch.flip(torch.cumsum(torch.flip(mass.double(), [0]), 0), [0])   # G_{j−1}: mass at or above j
    tail = (tail / tail[0]).clamp(0.0, 1.0)
    tail[0] = 1.0
    above = torch.cat([tail[1:], tail.new_zeros(1)])                          # G_j: mass above block j
    log_hi, log_lo = torch.log1p(-above), torch.log1p(-tail)                  # log F_j, log F_{j−1}
    n = torch.tensor([float(v) for v in ns], dtype=torch.float64).unsqueeze(-1)
    # F_j^n − F_{j−1}^n = F_j^n · (1 − (F_{j−1}/F_j)^n); at n = 1 the masses themselves (KL exactly 0)
    out = torch.exp(n * log_hi) * -torch.expm1(n * (log_lo - log_hi))
    return torch.where(n == 1, mass.double() / mass.sum(), out)


def best_of_n_sampled(task: Any, proxy: torch.Tensor, n: int, draws: int = 4000, seed: int = 0,
                      reference: Any = None, keys: Keys | None = None) -> SampledBestOfN:
    """Best-of-``n`` estimated from ``draws`` selections (see the module docstring), under ``keys`` (a
    single key; default ``Keys.from_seeds([seed])[0]``): a pure function of the key."""
    n = _check_n(n)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an integer >= 2, got {draws!r}")
    mdp = task.mdp
    keys = Keys.from_seeds([seed], device=mdp.start.device)[0] if keys is None else keys
    if keys.shape != ():
        raise ValueError(f"keys must be a single key (shape ()), got shape {tuple(keys.shape)}")
    ref = reference_policy(task, reference).float()
    traj = rollout(mdp, ref, draws * n, task.horizon, keys.fold(SAMPLE))      # [draws·n, T]
    r_hat = _returns(task, proxy, traj).view(draws, n)
    gold = _returns(task, task.true_reward, traj).view(draws, n)
    tie_break = keys.fold(TIES).bits(draws * n).view(draws, n)                 # uniform in [0, 2³²)
    best = r_hat.amax(-1, keepdim=True)
    chosen = torch.where(r_hat == best, tie_break, -1).argmax(-1, keepdim=True)
    proxy_best, gold_best = r_hat.gather(-1, chosen).squeeze(-1), gold.gather(-1, chosen).squeeze(-1)
    counts = torch.unique(r_hat.reshape(-1), return_counts=True)[1]            # per distinct return, ascending
    empirical = counts.double() / counts.sum()
    masses = block_probabilities(empirical, [n])[0]
    kl = float((torch.xlogy(masses, masses) - torch.xlogy(masses, empirical)).sum())
    kept = traj.pick(torch.arange(draws, device=chosen.device) * n + chosen.squeeze(-1))      # [draws, T]
    return SampledBestOfN(n, draws, max(kl, 0.0), float(proxy_best.mean()), _stderr(proxy_best),
                          float(gold_best.mean()), _stderr(gold_best), kept)


def _stderr(x: torch.Tensor) -> float:
    return float(x.std(unbiased=True)) / math.sqrt(x.shape[0])


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return n


def _returns(task: Any, reward: torch.Tensor, traj: Trajectories) -> torch.Tensor:
    """``[...]`` float64 summed reward ``[S]`` or ``[S, A]`` of each trajectory, in step order."""
    table = torch.as_tensor(reward, device=traj.states.device).double()
    mdp = task.mdp
    shape = (mdp.num_states,) if table.dim() == 1 else (mdp.num_states, mdp.num_actions)
    if tuple(table.shape) != shape and tuple(table.shape) != (mdp.num_states, 1):
        raise ValueError(f"a reward must be [S] or [S, A] = [{mdp.num_states}, {mdp.num_actions}], "
                         f"got {tuple(table.shape)}")
    if table.dim() == 2 and table.shape[-1] == 1:
        table = table.squeeze(-1)
    steps = step_rewards(table, traj)
    total = steps[..., 0].clone()
    for t in range(1, steps.shape[-1]):       # step order, whatever the batch
        total += steps[..., t]
    return total
