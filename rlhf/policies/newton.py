"""The exact optimum of a pair loss over a dataset: damped Newton on tabular parameters, in float64.

The problem (a direct method on population data, or the Bradley–Terry reward fit of ``rlhf``)::

    minimise  L(θ) = Σ_p w_p · ℓ(h_{i_p}, h_{j_p}, y_p)       h_n = X_n · φ(θ) − c_n

over parameters ``θ[F]``: ``X[N, F]`` counts how often trajectory n takes each feature, ``c[N]`` is
a constant per trajectory (the reference's summed log-probability), and ``φ`` is either the identity
(a reward table: ``h`` linear in θ) or the log-softmax over groups of ``A`` consecutive entries
(policy logits, one group per state or per (step, state): ``φ = log π``).

Derivatives, with ``g_n = Σ_p w_p (ℓ₁ [n = i_p] + ℓ₂ [n = j_p])`` and ``D = ∂h/∂θ [N, F]``
(``D = X`` for the identity; ``D[n, (r, a)] = X[n, (r, a)] − V[n, r]·π(a|r)`` for the log-softmax,
``V[n, r]`` the visits of trajectory n to group r)::

    ∇L = Dᵀ g
    ∇²L = Dᵀ M D − Σ_r u_r · (diag π_r − π_r π_rᵀ)        u_r = Σ_n g_n V[n, r]

with ``M[N, N]`` the pairs' second derivatives (``w·ℓ₁₁`` at (i, i), ``w·ℓ₁₂`` at (i, j) and (j, i),
``w·ℓ₂₂`` at (j, j)). A step solves ``(∇²L + μ·I) δ = −∇L`` (Levenberg–Marquardt damping μ, raised
until the matrix is positive definite, by Cholesky) and backtracks until ``L`` decreases enough
(Armijo, 10⁻⁴). It has converged when ``max |∇L| <= tolerance``, or when Newton's decrement
``−∇L·δ <= 10⁻¹⁸·(1 + |L|)`` (the loss can fall by no more). Softmax logits are free to shift within
a group; the damping keeps each step out of that null space. Where the loss has no finite minimiser
(DPO on deterministic preferences: it falls as e^(−βz) forever) the gradient still falls below the
tolerance on the way; the report then says ``bounded=False`` and gives the direction the loss keeps
falling along (moving ``max_move`` further still lowers it), and the policy is the limit along it.

A loss without curvature (SLiC's hinge) is replaced by its smoothing at κ = 10⁰, 10⁻¹, …,
``smallest_smoothing`` (10⁻⁶), each solve starting from the last (the levels before the last to a
gradient of 10⁻⁸): the smoothed loss lies within ``κ·log 2`` of the hinge, so the result's objective
is within ``smallest_smoothing·log 2`` (+ the tolerance) of the hinge's minimum.

A loss of rankings (:class:`RankedProblem`, a :class:`~rlhf.policies.methods.RankingLoss`) is the same
problem with K trajectories a term: ``L = Σ_q w_q · ℓ(h[m_q], pattern_q)`` over rows ``m_q[K]`` of
trajectories by position, ``g_n = Σ_q w_q Σ_k ∂ℓ/∂h_k [n = m_qk]`` and ``M`` the sum of each row's
``w·∂²ℓ/∂h∂h`` at ``(m_qk, m_ql)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .methods import PairLoss, RankingLoss


@dataclass(frozen=True)
class SolverReport:
    """How a population solve ended."""

    iterations: int
    """Newton steps taken (over all smoothing levels)."""
    gradient: float
    """``max |∇L|`` at the result."""
    loss: float
    """``L`` at the result (for a smoothed loss: the unsmoothed one)."""
    converged: bool
    """Whether ``gradient <= tolerance`` or Newton's decrement vanished (see the module docstring)."""
    bounded: bool
    """False when the loss has no finite minimiser (see :func:`solve`)."""
    direction: torch.Tensor | None = None
    """Where ``bounded`` is False: the direction ``d[F]`` (``max |d| = 1``) along which the loss keeps falling."""


@dataclass(frozen=True)
class Problem:
    """The data of :func:`solve` (see the module docstring for the symbols)."""

    X: torch.Tensor
    """``[N, F]`` float64 feature counts."""
    c: torch.Tensor
    """``[N]`` float64 constants subtracted from ``h``."""
    first: torch.Tensor
    """``[P]`` int64 ``i_p``."""
    second: torch.Tensor
    """``[P]`` int64 ``j_p``."""
    y: torch.Tensor
    """``[P]`` float64 labels."""
    w: torch.Tensor
    """``[P]`` float64 weights."""
    group: int | None
    """Entries per softmax group (A), or None for a linear parametrisation."""


@dataclass(frozen=True)
class RankedProblem:
    """The data of :func:`solve` for a loss of rankings (see the module docstring)."""

    X: torch.Tensor
    """``[N, F]`` float64 feature counts."""
    c: torch.Tensor
    """``[N]`` float64 constants subtracted from ``h``."""
    members: torch.Tensor
    """``[Q, K]`` int64 each ranking's trajectories by position (best first)."""
    labels: torch.Tensor
    """``[Q]`` int64 each ranking's tie pattern."""
    w: torch.Tensor
    """``[Q]`` float64 weights."""
    group: int | None
    """Entries per softmax group (A), or None for a linear parametrisation."""


_DECREMENT = 1e-18
"""Converged also when Newton's decrement ``−∇L·δ`` is below this (relative to 1 + |L|): the loss cannot
fall by more, whatever rounding leaves in the gradient (a nearly kinked smoothed hinge)."""
_DENSE_M_MAX = 4096
"""Up to this many trajectories ``M`` is a dense [N, N] matrix; above, ``M·D`` is built pair by pair."""


def solve(problem: Problem | RankedProblem, loss: PairLoss | RankingLoss, theta0: torch.Tensor,
          tolerance: float = 1e-10, max_iterations: int = 200, max_move: float = 1e3, smallest_smoothing: float = 1e-6,
          ) -> tuple[torch.Tensor, SolverReport]:
    """``(θ[F], report)``: the minimiser of the problem's loss from ``theta0`` (see the module docstring)."""
    theta = theta0.double().clone()
    if loss.curvature is not None:
        theta, report, step = _newton(problem, loss, theta, tolerance, max_iterations, max_move)
        return theta, _recession(problem, loss, theta, report, step, max_move)
    if not isinstance(loss, PairLoss) or loss.smoothed is None:
        raise ValueError("a loss without curvature needs a smoothed form for the population solver")
    iterations, kappa = 0, 1.0
    while True:
        last = kappa <= smallest_smoothing
        # the levels before the last only warm-start it: solved to a looser tolerance
        theta, report, _ = _newton(problem, loss.smoothed(kappa), theta, tolerance if last else max(tolerance, 1e-8),
                                   max_iterations, max_move)
        iterations += report.iterations
        if last or not report.bounded:
            break
        kappa /= 10
    value = float(_objective(problem, loss, theta))
    return theta, SolverReport(iterations, report.gradient, value, report.converged, report.bounded)


def _recession(problem: Problem | RankedProblem, loss: PairLoss | RankingLoss, theta: torch.Tensor,
               report: SolverReport, step: torch.Tensor | None, max_move: float) -> SolverReport:
    """The report, marked unbounded (with the direction) when moving ``max_move`` further along the last
    Newton step still lowers the loss by more than a millionth: then the gradient only fell below the
    tolerance on the way to an infimum at infinity (DPO's loss on deterministic pairs falls as e^(−βz))."""
    if step is None or not bool(step.abs().max() > 0):
        return report
    direction = step / step.abs().max()
    value = float(_objective(problem, loss, theta))
    far = float(_objective(problem, loss, theta + max_move * direction))
    if report.bounded and not far < value - 1e-6 * abs(value):
        return report
    return SolverReport(report.iterations, report.gradient, report.loss, report.converged, False, direction)


def limit_policy(theta: torch.Tensor, direction: torch.Tensor | None, group: int) -> torch.Tensor:
    """``π[R, A]`` float64: ``softmax(θ)`` per group, or where a direction is given the limit of
    ``softmax(θ + s·d)`` as s → ∞: the softmax of θ over the actions whose ``d`` is largest (within
    10⁻⁶), 0 elsewhere."""
    logits = theta.double().view(-1, group)
    if direction is None:
        return torch.softmax(logits, -1)
    d = direction.double().view(-1, group)
    best = d >= d.amax(-1, keepdim=True) - 1e-6
    return torch.softmax(logits.masked_fill(~best, -torch.inf), -1)


def _log_params(problem: Problem | RankedProblem, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(φ(θ)[F], π[R, A] or None)``."""
    if problem.group is None:
        return theta, None
    logits = theta.view(-1, problem.group)
    logp = torch.log_softmax(logits, -1)
    return logp.reshape(-1), logp.exp()


def _objective(problem: Problem | RankedProblem, loss: PairLoss | RankingLoss, theta: torch.Tensor) -> torch.Tensor:
    h = problem.X @ _log_params(problem, theta)[0] - problem.c
    if isinstance(problem, RankedProblem):
        assert isinstance(loss, RankingLoss)
        return (problem.w * loss.loss(h[problem.members], problem.labels)).sum()
    assert isinstance(loss, PairLoss)
    return (problem.w * loss.loss(h[problem.first], h[problem.second], problem.y)).sum()


def _derivatives(problem: Problem | RankedProblem, loss: PairLoss | RankingLoss, h: torch.Tensor,
                 ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(g[N], D ↦ M·D)`` at the trajectories' log-ratios ``h[N]`` (see the module docstring)."""
    N = h.shape[0]
    if isinstance(problem, RankedProblem):
        assert isinstance(loss, RankingLoss)
        members, w = problem.members, problem.w
        by_position = h[members]                                                  # [Q, K]
        flat = members.reshape(-1)
        g = torch.zeros(N, dtype=torch.float64).index_add_(
            0, flat, (w.unsqueeze(-1) * loss.gradient(by_position, problem.labels)).reshape(-1))

        def ranked_times(D: torch.Tensor) -> torch.Tensor:
            m = w.view(-1, 1, 1) * loss.curvature(by_position, problem.labels)   # [Q, K, K]
            return _ranked_m_times(D, members, m)

        return g, ranked_times
    assert isinstance(loss, PairLoss) and loss.curvature is not None
    curvature, first, second, y, w = loss.curvature, problem.first, problem.second, problem.y, problem.w
    h1, h2 = h[first], h[second]
    d1, d2 = loss.gradient(h1, h2, y)
    g = torch.zeros(N, dtype=torch.float64).index_add_(0, first, w * d1).index_add_(0, second, w * d2)

    def times(D: torch.Tensor) -> torch.Tensor:
        c11, c12, c22 = curvature(h1, h2, y)
        return _m_times(D, first, second, w * c11, w * c12, w * c22)

    return g, times


def _newton(problem: Problem | RankedProblem, loss: PairLoss | RankingLoss, theta: torch.Tensor, tolerance: float,
            max_iterations: int, max_move: float) -> tuple[torch.Tensor, SolverReport, torch.Tensor | None]:
    """``(θ, report, the last step taken or None)``."""
    assert loss.curvature is not None
    X = problem.X
    N, F = X.shape
    start = theta.clone()
    mu = 1e-8
    visits = None if problem.group is None else X.view(N, -1, problem.group).sum(-1)       # [N, R]
    iterations, bounded, flat = 0, True, False
    value = _objective(problem, loss, theta)
    taken: torch.Tensor | None = None
    while True:
        logp, pi = _log_params(problem, theta)
        h = X @ logp - problem.c
        g, curvature_times = _derivatives(problem, loss, h)
        D = X if pi is None or visits is None else X - (visits.unsqueeze(-1) * pi).reshape(N, F)
        grad = D.T @ g
        worst = float(grad.abs().max()) if F else 0.0
        if worst <= tolerance or iterations >= max_iterations:
            break
        hessian = D.T @ curvature_times(D)
        if pi is not None and visits is not None:
            u = (visits * g.unsqueeze(-1)).sum(0)                              # [R]
            blocks = torch.diag_embed(pi) - pi.unsqueeze(-1) * pi.unsqueeze(-2)   # [R, A, A]
            R, A = pi.shape
            by_group, r = hessian.view(R, A, R, A), torch.arange(R)
            by_group[r, :, r, :] = by_group[r, :, r, :] - u.view(R, 1, 1) * blocks
        scale = 1.0 + float(hessian.diagonal().abs().max())
        while True:          # Levenberg–Marquardt: damp until positive definite
            factor, info = torch.linalg.cholesky_ex(hessian + (mu * scale) * torch.eye(F, dtype=torch.float64))
            if int(info) == 0:
                break
            mu *= 10
        step = -torch.cholesky_solve(grad.unsqueeze(-1), factor).squeeze(-1)
        slope = float(grad @ step)
        if -slope <= _DECREMENT * (1 + abs(float(value))):     # Newton's decrement: nothing left to gain
            flat = True
            break
        t = 1.0
        while True:
            candidate = theta + t * step
            new_value = _objective(problem, loss, candidate)
            if float(new_value) <= float(value) + 1e-4 * t * slope or t < 1e-12:
                break
            t /= 2
        mu = max(mu / 10, 1e-12) if t == 1.0 else mu * 10
        iterations += 1
        if float(new_value) > float(value):        # no progress at all: at the optimum up to rounding
            break
        theta, value, taken = candidate, new_value, t * step
        if float((theta - start).abs().max()) > max_move:
            bounded = False
            break
    report = SolverReport(iterations, worst, float(value), worst <= tolerance or flat, bounded,
                          None if bounded or taken is None else taken / taken.abs().max())
    return theta, report, taken


def _m_times(D: torch.Tensor, first: torch.Tensor, second: torch.Tensor, m11: torch.Tensor, m12: torch.Tensor,
             m22: torch.Tensor) -> torch.Tensor:
    """``M·D`` ``[N, F]`` for the pairs' second-derivative matrix M (see the module docstring)."""
    N = D.shape[0]
    if N <= _DENSE_M_MAX:
        M = torch.zeros(N * N, dtype=torch.float64)
        M.index_add_(0, first * N + first, m11).index_add_(0, first * N + second, m12)
        M.index_add_(0, second * N + first, m12).index_add_(0, second * N + second, m22)
        return M.view(N, N) @ D
    out = torch.zeros_like(D)
    d_first, d_second = D[first], D[second]
    out.index_add_(0, first, m11.unsqueeze(-1) * d_first + m12.unsqueeze(-1) * d_second)
    out.index_add_(0, second, m12.unsqueeze(-1) * d_first + m22.unsqueeze(-1) * d_second)
    return out


def _ranked_m_times(D: torch.Tensor, members: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``M·D`` ``[N, F]`` for rankings ``members[Q, K]`` with weighted second derivatives ``m[Q, K, K]``."""
    N, K = D.shape[0], members.shape[-1]
    if N <= _DENSE_M_MAX:
        cells = (members.unsqueeze(-1) * N + members.unsqueeze(-2)).reshape(-1)
        M = torch.zeros(N * N, dtype=torch.float64).index_add_(0, cells, m.reshape(-1))
        return M.view(N, N) @ D
    out = torch.zeros_like(D)
    rows = [D[members[:, k]] for k in range(K)]
    for k in range(K):
        terms = m[:, k, 0].unsqueeze(-1) * rows[0]
        for j in range(1, K):
            terms = terms + m[:, k, j].unsqueeze(-1) * rows[j]
        out.index_add_(0, members[:, k], terms)
    return out


def finite_log(p: torch.Tensor) -> torch.Tensor:
    """``log p`` with 0 mapped to −10⁴ (a logit whose probability is exactly 0 in float64: exp(−10⁴) = 0)."""
    return torch.log(p.double()).clamp_min(-1e4)

