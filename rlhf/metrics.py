"""Convergence metrics: small functions with stated shapes."""

from __future__ import annotations

import math

import torch

from .core.mdp import TabularMDP
from .core.planning import policy_return, single_reward_q, soft_policy
from .core.truths import TaskTruths


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """``½ Σ |p − q|`` between two distributions ``p[S]``, ``q[S]``."""
    return 0.5 * float((p - q).abs().sum())


def pearson_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """``√((1 − ρ)/2)`` of two flattened tensors; 0 identical up to scale and shift, 1 negated.

    A constant tensor has no direction: its distance to anything is defined as 0.5 (ρ = 0).
    """
    x = x.flatten().double() - x.double().mean()
    y = y.flatten().double() - y.double().mean()
    return _correlation_distance(x @ y, x.norm() * y.norm())


def _correlation_distance(cov: torch.Tensor, norm: torch.Tensor) -> float:
    """``√((1 − ρ)/2)``, clipped to [0, 1], for ``ρ = cov / norm`` (norm = √(var_x·var_y));
    ρ = 0 when the norm is 0 (a constant has no direction)."""
    rho = float(cov / norm) if norm > 0 else 0.0
    return max(0.0, (1.0 - min(1.0, rho)) / 2.0) ** 0.5


def _canonical_parts(reward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u[S, A], v[S])`` in float64, the parts of the canonical reward
    ``C(R)(s, a, s') = u(s, a) + γ·v(s')``: ``u = r − rowmean(r)`` (``[S, 1]`` zeros for an
    ``[S]`` reward) and ``v = rowmean(r) − mean(r)``."""
    r = reward.double()
    table = r if r.dim() == 2 else r.unsqueeze(-1)
    row = table.mean(-1)
    return table - row.unsqueeze(-1), row - row.mean()


def epic_distance(learned: torch.Tensor, true: torch.Tensor, discount: float = 1.0) -> float:
    """EPIC distance (Gleave et al., 2021, "Quantifying Differences in Reward Functions")
    between two tabular rewards, in float64.

    Rewards are ``r[S]`` (``R(s, a, s') = r(s)``) or ``r[S, A]`` (``R(s, a, s') = r(s, a)``);
    D_S and D_A are uniform and the coverage is uniform over (s, a, s'). The canonical
    reward (discount γ)::

        C(R)(s, a, s') = R(s, a, s') + γ·E[R(s', A, S')] − E[R(s, A, S')] − γ·E[R(S, A, S')]

    is ``u(s, a) + γ·v(s')`` with ``u = r − rowmean(r)`` (0 for ``[S]``) and
    ``v = rowmean(r) − mean(r)``. Both have mean 0 and (s, a), s' are independent under
    the coverage, so the Pearson correlation over all (s, a, s') needs no [S, A, S] tensor::

        ρ = (E[u_x·u_y] + γ²·E[v_x·v_y]) / √((E[u_x²] + γ²·E[v_x²])·(E[u_y²] + γ²·E[v_y²]))

    and the distance is ``√((1 − ρ)/2)``: 0 for rewards equal up to positive scaling and a
    constant, 1 for a negation; a constant reward has ρ = 0 (as in :func:`pearson_distance`).
    For ``[S]`` rewards it is the Pearson distance of the centred rewards. A per-state shift
    of an ``[S, A]`` reward is *not* an equivalence here (it is in the string task, whose
    :meth:`~rlhf.StringTask.convergence_metrics` removes it first).
    """
    if learned.shape != true.shape:
        raise ValueError(f"rewards must have the same shape, got {tuple(learned.shape)} and {tuple(true.shape)}")
    if learned.dim() not in (1, 2):
        raise ValueError(f"rewards must be [S] or [S, A], got {tuple(learned.shape)}")
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    (u_x, v_x), (u_y, v_y) = _canonical_parts(learned), _canonical_parts(true)
    g2 = discount ** 2

    def moment(u1: torch.Tensor, v1: torch.Tensor, u2: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        return (u1 * u2).mean() + g2 * (v1 * v2).mean()    # E[C₁·C₂]

    norm = (moment(u_x, v_x, u_x, v_x) * moment(u_y, v_y, u_y, v_y)).sqrt()
    return _correlation_distance(moment(u_x, v_x, u_y, v_y), norm)


def normalized_regret(
    mdp: TabularMDP,
    learned: torch.Tensor,
    true: torch.Tensor,
    horizon: int,
    discount: float = 1.0,
    temperature: float = 1.0,
    *,
    truths: TaskTruths | None = None,
) -> float:
    """True-reward regret of planning on ``learned``, scaled to the uniform policy.

    ``(J(π_true) − J(π_learned)) / (J(π_true) − J(π_uniform))`` where π_x is the
    soft-optimal policy for reward x and J the exact expected true return over
    ``horizon`` steps: 0 = as good as planning on the truth, 1 = no better than
    acting uniformly at random (it can exceed 1 when worse). 0 when the truth
    is no better than random (nothing to learn). ``truths``: the task's
    (:class:`~rlhf.core.truths.TaskTruths` of ``mdp``, ``true``, ``horizon``), which holds the
    truth's two returns; a new one when not given.
    """
    truths = truths or TaskTruths(mdp, true, horizon)
    j_true = truths.soft_optimal_return(discount, temperature)
    j_uniform = truths.uniform_return
    q = single_reward_q(mdp, learned, horizon, discount, temperature)
    j_learned = policy_return(mdp, soft_policy(q, temperature), true, horizon)
    gap = j_true - j_uniform
    return (j_true - j_learned) / gap if gap > 1e-9 * max(1.0, abs(j_true)) else 0.0


NEAR_OPTIMAL_SCALED_RETURN = 0.9
"""Knox et al.'s criterion: a policy is near-optimal when its scaled return is at least this."""


def near_optimal(scaled: float) -> tuple[float, float]:
    """``(scaled_return, near_optimal)`` as every task reports them: where no policy beats random
    (scaled return NaN) any policy is optimal, so 1 and 1 (nothing to learn)."""
    if math.isnan(scaled):
        return 1.0, 1.0
    return scaled, float(scaled >= NEAR_OPTIMAL_SCALED_RETURN)


def scaled_return_of_reward(mdp: TabularMDP, learned: torch.Tensor, true: torch.Tensor, horizon: int,
                            discount: float = 1.0, *, truths: TaskTruths | None = None) -> float:
    """Scale-free quality of a learned reward (``rlhf.scaled_return``; Knox et al., 2022): that of its
    greedy policy, ``(J(π_greedy) − J(π_uniform)) / (V* − J(π_uniform))`` under the true reward.

    π_greedy plans on ``learned`` with the hard max (``temperature=math.inf``, ties split
    evenly), so a reward's scale does not matter, only its ordering of behaviours. J is the
    exact expected undiscounted return over ``horizon`` steps from the start distribution,
    and V* the optimal one (start-averaged max_a Q* of the hard-max recurrence). 1 = optimal,
    0 = no better than random. A stationary greedy policy can fall short of the finite-horizon
    optimum even for the true reward (0.96 on a 15×15 grid from the corner with slip 0.2,
    measured); on the tasks here it is 1 otherwise. NaN when the truth is no better than random.
    ``truths`` as for :func:`normalized_regret`.
    """
    return scaled_return_of_policy(mdp, greedy_policy(mdp, learned, horizon, discount), true, horizon, truths=truths)


def greedy_policy(mdp: TabularMDP, reward: torch.Tensor, horizon: int, discount: float = 1.0) -> torch.Tensor:
    """``pi[S, A]``: greedy on the hard-max Q of ``reward`` over ``horizon`` steps, ties split evenly."""
    return soft_policy(single_reward_q(mdp, reward, horizon, discount, math.inf), math.inf)


def scaled_return_of_policy(mdp: TabularMDP, policy: torch.Tensor, true: torch.Tensor, horizon: int, *,
                            truths: TaskTruths | None = None) -> float:
    """``(J(π) − J(π_uniform)) / (V* − J(π_uniform))`` of a stationary policy ``pi[S, A]`` under the
    true reward (see :func:`scaled_return_of_reward`; a return already evaluated:
    :meth:`~rlhf.core.truths.TaskTruths.scaled`); NaN when the truth is no better than random."""
    truths = truths or TaskTruths(mdp, true, horizon)
    return truths.scaled(policy_return(mdp, policy, true, horizon))


def advantage_metrics(truths: TaskTruths, learned: torch.Tensor, discount: float = 1.0) -> dict[str, float]:
    """Metrics of a learned optimal-advantage table ``Â[S, A]`` (the regret learner's; Knox et al.,
    2024), which is acted on greedily, not planned on: ``scaled_return`` and ``near_optimal`` of the
    greedy policy argmax_a Â(s, a) (ties split evenly); ``converged`` = ``near_optimal``; ``epic``, the
    EPIC distance from the truth's optimal advantages A* (at discount γ), the quantity Â estimates (A*
    is the true reward shaped by the optimal value, so a distance from the reward itself would count
    that shaping as an error)."""
    greedy = soft_policy(learned, math.inf)
    scaled, near = near_optimal(scaled_return_of_policy(truths.mdp, greedy, truths.true_reward, truths.horizon,
                                                        truths=truths))
    return {"converged": near, "near_optimal": near, "scaled_return": scaled,
            "epic": epic_distance(learned, truths.optimal_advantages(discount))}


def preference_accuracy(logit_learned: torch.Tensor, margin_true: torch.Tensor) -> float:
    """Fraction of pairs whose learned preference ``sign(R̂₁ − R̂₂)`` agrees with the
    truth's ``sign(R₁ − R₂)``; true ties are left out (NaN if every pair is a tie)."""
    return float(preference_accuracies(logit_learned, margin_true))


def preference_accuracies(logit_learned: torch.Tensor, margin_true: torch.Tensor) -> torch.Tensor:
    """:func:`preference_accuracy` of each row of ``[..., B]`` logits and margins: ``[...]``."""
    strict = margin_true != 0
    agree = ((logit_learned > 0) == (margin_true > 0)) & strict
    return agree.sum(-1).double() / strict.sum(-1)
