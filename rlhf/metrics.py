"""Convergence metrics: small functions with stated shapes."""

from __future__ import annotations

import math

import torch

from .core.mdp import TabularMDP
from .core.planning import policy_return, soft_policy, soft_value_iteration, uniform_policy


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
) -> float:
    """True-reward regret of planning on ``learned``, scaled to the uniform policy.

    ``(J(π_true) − J(π_learned)) / (J(π_true) − J(π_uniform))`` where π_x is the
    soft-optimal policy for reward x and J the exact expected true return over
    ``horizon`` steps: 0 = as good as planning on the truth, 1 = no better than
    acting uniformly at random (it can exceed 1 when worse). 0 when the truth
    is no better than random (nothing to learn).
    """
    def soft_optimal_return(r: torch.Tensor) -> float:
        q = _plan_alone(mdp, r, horizon, discount, temperature)
        return policy_return(mdp, soft_policy(q, temperature), true, horizon)

    # The truth's two returns are the same for every learned reward: once per MDP and setting.
    j_true = mdp.cached(("metrics.normalized_regret", _reward_key(true), horizon, discount, temperature),
                        lambda: soft_optimal_return(true))
    j_uniform = uniform_return(mdp, true, horizon)
    j_learned = soft_optimal_return(learned)
    gap = j_true - j_uniform
    return (j_true - j_learned) / gap if gap > 1e-9 * max(1.0, abs(j_true)) else 0.0


def _plan_alone(mdp: TabularMDP, reward: torch.Tensor, horizon: int, discount: float,
                temperature: float) -> torch.Tensor:
    """``Q[S, A]`` for ``reward`` ([S] or [S, A]) planned as a batch of one: the planner's result
    for a reward does not depend on its batch, so this is what the training loop's batches give."""
    r = torch.as_tensor(reward, dtype=torch.float32)
    table = (r if r.dim() == 2 else r.unsqueeze(-1)).unsqueeze(0)
    return soft_value_iteration(mdp, table, horizon, discount, temperature)[0]


def _reward_key(reward: torch.Tensor) -> tuple:
    """A reward's identity by content, for :meth:`TabularMDP.cached` (its shape and bytes)."""
    return tuple(reward.shape), torch.as_tensor(reward, dtype=torch.float32).cpu().numpy().tobytes()


NEAR_OPTIMAL_SCALED_RETURN = 0.9
"""Knox et al.'s criterion: a policy is near-optimal when its scaled return is at least this."""


def near_optimal(scaled: float) -> tuple[float, float]:
    """``(scaled_return, near_optimal)`` as every task reports them: where no policy beats random
    (scaled return NaN) any policy is optimal, so 1 and 1 (nothing to learn)."""
    if math.isnan(scaled):
        return 1.0, 1.0
    return scaled, float(scaled >= NEAR_OPTIMAL_SCALED_RETURN)


def scaled_return(mdp: TabularMDP, learned: torch.Tensor, true: torch.Tensor, horizon: int,
                  discount: float = 1.0) -> float:
    """Scale-free quality of the learned reward's greedy policy (Knox et al., 2022):
    ``(J(π_greedy) − J(π_uniform)) / (V* − J(π_uniform))`` under the true reward.

    π_greedy plans on ``learned`` with the hard max (``temperature=math.inf``, ties split
    evenly), so a reward's scale does not matter, only its ordering of behaviours. J is the
    exact expected undiscounted return over ``horizon`` steps from the start distribution,
    and V* the optimal one (start-averaged max_a Q* of the hard-max recurrence). 1 = optimal,
    0 = no better than random. A stationary greedy policy can fall short of the finite-horizon
    optimum even for the true reward (0.96 on a 15×15 grid from the corner with slip 0.2,
    measured); on the tasks here it is 1 otherwise. NaN when the truth is no better than random.
    """
    return scaled_policy_return(mdp, greedy_policy(mdp, learned, horizon, discount), true, horizon)


def greedy_policy(mdp: TabularMDP, reward: torch.Tensor, horizon: int, discount: float = 1.0) -> torch.Tensor:
    """``pi[S, A]``: greedy on the hard-max Q of ``reward`` over ``horizon`` steps, ties split evenly."""
    return soft_policy(_plan_alone(mdp, reward, horizon, discount, math.inf), math.inf)


def optimal_return(mdp: TabularMDP, true: torch.Tensor, horizon: int) -> float:
    """V*: the optimal expected undiscounted return in ``horizon`` steps, start-averaged (non-stationary
    optimum of the hard-max recurrence; once per MDP and reward)."""
    def build() -> float:
        v_star = soft_value_iteration(mdp, torch.as_tensor(true, dtype=torch.float32), horizon, 1.0, math.inf)
        return float((mdp.start.double() * v_star.amax(-1).double()).sum())
    return mdp.cached(("metrics.optimal_return", _reward_key(true), horizon), build)


def uniform_return(mdp: TabularMDP, true: torch.Tensor, horizon: int) -> float:
    """The uniform policy's expected undiscounted return in ``horizon`` steps under ``true``: every
    scaled metric's zero (once per MDP and reward)."""
    return mdp.cached(("metrics.uniform_return", _reward_key(true), horizon),
                      lambda: policy_return(mdp, uniform_policy(mdp), true, horizon))


def scaled_policy_return(mdp: TabularMDP, policy: torch.Tensor, true: torch.Tensor, horizon: int) -> float:
    """``(J(π) − J(π_uniform)) / (V* − J(π_uniform))`` of a stationary policy ``pi[S, A]`` under the
    true reward (see :func:`scaled_return`); NaN when the truth is no better than random."""
    return scale_return(mdp, policy_return(mdp, policy, true, horizon), true, horizon)


def scale_return(mdp: TabularMDP, j_policy: float, true: torch.Tensor, horizon: int) -> float:
    """A policy's return ``J`` in ``horizon`` steps under the true reward, scaled so that the uniform
    policy is 0 and the optimum 1 (:func:`scaled_policy_return` for a return already evaluated)."""
    j_star, j_uniform = optimal_return(mdp, true, horizon), uniform_return(mdp, true, horizon)
    gap = j_star - j_uniform
    return (j_policy - j_uniform) / gap if gap > 1e-9 * max(1.0, abs(j_star)) else float("nan")


def advantage_metrics(mdp: TabularMDP, learned: torch.Tensor, true: torch.Tensor, true_advantages: torch.Tensor,
                      horizon: int) -> dict[str, float]:
    """Metrics of a learned optimal-advantage table ``Â[S, A]`` (the regret learner's model; Knox
    et al., 2024), which is acted on greedily, not planned on: ``scaled_return`` and
    ``near_optimal`` of the greedy policy argmax_a Â(s, a) (ties split evenly); ``converged`` =
    ``near_optimal``; ``epic``, the EPIC distance from the truth's optimal advantages A*, the
    quantity Â estimates (A* is the true reward shaped by the optimal value, so a distance from
    the reward itself would count that shaping as an error)."""
    scaled, near = near_optimal(scaled_policy_return(mdp, soft_policy(learned, math.inf), true, horizon))
    return {"converged": near, "near_optimal": near, "scaled_return": scaled,
            "epic": epic_distance(learned, true_advantages)}


def preference_accuracy(logit_learned: torch.Tensor, margin_true: torch.Tensor) -> float:
    """Fraction of pairs whose learned preference ``sign(R̂₁ − R̂₂)`` agrees with the
    truth's ``sign(R₁ − R₂)``; true ties are left out (NaN if every pair is a tie)."""
    return float(preference_accuracies(logit_learned, margin_true))


def preference_accuracies(logit_learned: torch.Tensor, margin_true: torch.Tensor) -> torch.Tensor:
    """:func:`preference_accuracy` of each row of ``[..., B]`` logits and margins: ``[...]``."""
    strict = margin_true != 0
    agree = ((logit_learned > 0) == (margin_true > 0)) & strict
    return agree.sum(-1).double() / strict.sum(-1)
