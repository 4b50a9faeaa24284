"""Fitting a direct method's tabular policy: logits ``θ[(H,) S, A]``, ``π = softmax(θ)`` per state
(per step and state for a time-indexed policy), started at the reference (``θ = log π_ref``).

A trajectory's summed log-ratio is linear in ``ℓ = log π − log π_ref`` (flattened to ``[F]``,
feature ``f = (t·S + s)·A + a``, t = 0 when stationary): ``h = X·ℓ`` with ``X[n, f]`` the
trajectory's feature counts. Its actions are the recorded, executed ones: with action noise (the
string task's slip) they are scored as if the policy had chosen them, as DPO scores a response it is
given. On sampled data every seed is fitted at once by full-batch Adam
(torch's fused kernel, the reward learner's: :mod:`rlhf.learning.learner`) with the closed-form
gradient::

    h₁ = X₁·ℓ,  h₂ = X₂·ℓ                      (row vector × matrix per seed: rlhf.core.batched.vecmat)
    G  = X₁ᵀ(w·∂ℓ/∂h₁) + X₂ᵀ(w·∂ℓ/∂h₂)         (∂L/∂ℓ, [F])
    ∇θ = G − (Σ_a G)·π                         (through the log-softmax, per state)

Logits are padded to whole SIMD blocks, sums over a state's actions are elementwise adds in action
order (:func:`rlhf.core.batched.step_sums`: a reduction over the last dimension rounded differently
with the batch's size, measured), and every kernel gives a seed the same bits in any batch, so seed
k alone equals seed k in a batch. On population data the loss is minimised exactly
(:mod:`rlhf.policies.newton`, float64). The method's ``loss`` (and the solver's report) come back
per seed.

A loss of rankings (:func:`fit_ranking`) is fitted the same two ways: its rows' K trajectories by
position ``X[q, k, :]`` give ``h[q, k]`` (one row-vector product over the Q·K of them) and
``G = Σ_{q,k} X[q, k]ᵀ·(w_q·∂ℓ/∂h[q, k])`` (one more); a loss that reads ties
(:attr:`~rlhf.policies.methods.PairLoss.reads_ties`) gets each pair's ``(prefer_first, tie)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from ..core import batched
from ..core.rollout import Trajectories
from ..learning.learner import _SIMD_BLOCK, _adam
from .align import AlignFit, AlignProblem
from .data import PreferenceData
from .methods import PairLoss, RankingLoss
from .newton import Problem, RankedProblem, SolverReport, finite_log, limit_policy, solve
from .ranking_data import RankingData


def step_features(traj: Trajectories, num_states: int, num_actions: int, time_indexed: bool) -> torch.Tensor:
    """``[..., T]`` int64 feature ``(t·S + s)·A + a`` of every step (t = 0 when stationary)."""
    f = traj.states * num_actions + traj.actions
    if time_indexed:
        T = traj.states.shape[-1]
        f = f + torch.arange(T, device=f.device) * (num_states * num_actions)
    return f


def feature_counts(features: torch.Tensor, num_features: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[..., F]`` how often each feature occurs in each row of ``features[..., T]`` (integers, exact)."""
    counts = torch.zeros(*features.shape[:-1], num_features, dtype=dtype, device=features.device)
    return counts.scatter_add_(-1, features, torch.ones((), dtype=dtype, device=features.device).expand(features.shape))


def _layout(problem: AlignProblem) -> tuple[int, int, int, bool]:
    """``(S, A, steps, time_indexed)`` of the problem's policy (steps = 1 when stationary)."""
    mdp, opts = problem.task.mdp, problem.options
    H = problem.task.horizon
    if opts.time_indexed:
        longest = max(d.length for d in problem.data)
        if longest > H:
            raise ValueError(f"a time-indexed policy has {H} steps; the data's trajectories have {longest}")
    return mdp.num_states, mdp.num_actions, H if opts.time_indexed else 1, opts.time_indexed


def _check_support(problem: AlignProblem, data: PreferenceData | RankingData, A: int) -> None:
    """The reference must give every action the data contains positive probability (its log-ratio is infinite)."""
    used = (data.trajectories.states * A + data.trajectories.actions).reshape(-1)
    if bool((problem.reference.reshape(-1)[used] <= 0).any()):
        raise ValueError("the reference gives probability 0 to an action the data contains: its log-ratio "
                         "is infinite (smooth the reference, e.g. an sft reference's prior)")


def fit_direct(problem: AlignProblem, loss: PairLoss, uses_reference: bool = True) -> AlignFit:
    """One policy per seed minimising ``Σ_p w_p ℓ(h₁, h₂, y)`` (see the module docstring)."""
    S, A, steps, time_indexed = _layout(problem)
    for d in problem.data:
        if uses_reference:
            _check_support(problem, d, A)
    theta0 = finite_log(problem.reference).reshape(-1).repeat(steps)          # [F] log π_ref: start there
    log_ref = theta0 if uses_reference else torch.zeros_like(theta0)         # 0: the loss does not read it
    if problem.exact:
        return _solve_each(problem, loss, theta0, S, A, time_indexed, steps, lambda d, X: Problem(
            X, X @ log_ref, d.first, d.second, _labels(d, loss), d.weight, A))
    return _adam_all(problem, loss, log_ref, theta0, S, A, time_indexed, steps)


def _labels(data: PreferenceData, loss: PairLoss) -> torch.Tensor:
    """The labels ``loss`` reads: ``prefer_first[P]``, or ``[P, 2]`` with the ties for a loss that reads them."""
    if not loss.reads_ties:
        return data.prefer_first
    assert data.tie is not None
    return torch.stack([data.prefer_first.double(), data.tie], -1)


def _policies(theta: torch.Tensor, S: int, A: int, steps: int, time_indexed: bool) -> torch.Tensor:
    """``[K, (H,) S, A]`` softmax of logits ``θ[K, F]``."""
    pi = torch.softmax(theta.view(theta.shape[0], -1, A), -1)
    return pi.view(theta.shape[0], steps, S, A) if time_indexed else pi.view(theta.shape[0], S, A)


def _solve_each(problem: AlignProblem, loss: PairLoss | RankingLoss, theta0: torch.Tensor, S: int, A: int,
                time_indexed: bool, steps: int, problem_of: Callable[[Any, torch.Tensor], Problem | RankedProblem],
                ) -> AlignFit:
    """The exact optimum for each seed's data (solved once per distinct dataset): ``problem_of(data, X)``
    is the Newton problem of one dataset, ``X`` its trajectories' float64 feature counts."""
    solved: dict[int, tuple[torch.Tensor, dict[str, float]]] = {}
    policies, extra = [], []
    for d in problem.data:
        if id(d) not in solved:
            X = feature_counts(step_features(d.trajectories, S, A, time_indexed), theta0.numel(), torch.float64)
            theta, report = solve(problem_of(d, X), loss, theta0, problem.options.tolerance,
                                  problem.options.max_iterations)
            pi = limit_policy(theta, report.direction, A)
            solved[id(d)] = pi.view(steps, S, A) if time_indexed else pi.view(S, A), solver_metrics(report)
        policies.append(solved[id(d)][0])
        extra.append(dict(solved[id(d)][1]))
    return AlignFit(torch.stack(policies), extra)


def solver_metrics(report: SolverReport) -> dict[str, float]:
    """A population solve's report as metrics: ``loss``, ``solver_iterations``, ``solver_gradient``,
    ``solver_converged``, ``solver_bounded`` (0: no finite minimiser; the policy is the limit along the
    direction the loss keeps falling, :func:`~rlhf.policies.newton.limit_policy`)."""
    return {"loss": report.loss, "solver_iterations": float(report.iterations), "solver_gradient": report.gradient,
            "solver_converged": float(report.converged), "solver_bounded": float(report.bounded)}


def _adam_all(problem: AlignProblem, loss: PairLoss, log_ref: torch.Tensor, theta0: torch.Tensor, S: int, A: int,
              time_indexed: bool, steps: int) -> AlignFit:
    """Every seed by full-batch Adam, batched (see the module docstring)."""
    data = problem.data
    shapes = {(len(d), d.length) for d in data}
    if len(shapes) != 1:
        raise ValueError(f"a batch of seeds needs datasets of equal size and length, got (pairs, length) "
                         f"{sorted(shapes)}")
    K, F = len(data), log_ref.numel()
    firsts, seconds = zip(*(d.pairs() for d in data), strict=True)
    f1 = torch.stack([step_features(t, S, A, time_indexed) for t in firsts])             # [K, P, T]
    f2 = torch.stack([step_features(t, S, A, time_indexed) for t in seconds])
    X1, X2 = feature_counts(f1, F), feature_counts(f2, F)                                # [K, P, F]
    X1t, X2t = X1.transpose(1, 2).contiguous(), X2.transpose(1, 2).contiguous()          # [K, F, P]
    y = torch.stack([_labels(d, loss) for d in data]).float()
    w = torch.stack([d.weight for d in data]).float()

    def feature_gradient(ratio: torch.Tensor) -> torch.Tensor:
        h1, h2 = batched.vecmat(ratio, X1t), batched.vecmat(ratio, X2t)
        d1, d2 = loss.gradient(h1, h2, y)
        return batched.vecmat(d1 * w, X1) + batched.vecmat(d2 * w, X2)                # [K, F]

    theta, ratio = _adam_on_logits(problem, theta0, log_ref, K, A, feature_gradient)
    h1, h2 = batched.vecmat(ratio, X1t), batched.vecmat(ratio, X2t)
    final = batched.vecmat(loss.loss(h1, h2, y) * w, torch.ones(K, h1.shape[-1], 1)).squeeze(-1)
    return AlignFit(_policies(theta.clone(), S, A, steps, time_indexed), [{"loss": float(v)} for v in final])


def _adam_on_logits(problem: AlignProblem, theta0: torch.Tensor, log_ref: torch.Tensor, seeds: int, A: int,
                    feature_gradient: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch Adam on tabular softmax logits ``θ[seeds, F]`` from ``theta0``, for the problem's steps at
    its learning rate: each step ``feature_gradient(ratio)`` is the loss's gradient ``[seeds, F]`` with
    respect to the log-ratios ``log π − log π_ref`` of every feature, chained through each state's
    softmax. Returns θ and the final log-ratios. Every direct method's sampled-data fit, pairs or
    rankings, is this loop with its own gradient."""
    F = log_ref.numel()
    ref = log_ref.float().expand(seeds, F)
    padded = torch.zeros(seeds, -(-F // _SIMD_BLOCK) * _SIMD_BLOCK)
    theta, grad = padded[:, :F], torch.zeros_like(padded)
    theta.copy_(theta0.float().expand(seeds, F))
    adam = _adam(padded, grad, torch.zeros_like(padded), torch.zeros_like(padded), problem.options.lr)
    numbers = torch.arange(1, problem.options.steps + 1, dtype=torch.float32)

    def log_ratios() -> tuple[torch.Tensor, torch.Tensor]:
        logits = theta.reshape(seeds, -1, A)
        top = logits.amax(-1, keepdim=True)
        logp = logits - top - torch.log(batched.step_sums(torch.exp(logits - top))).unsqueeze(-1)
        return logp.view(seeds, F), logp.view(seeds, F) - ref

    for step in range(problem.options.steps):
        logp, ratio = log_ratios()
        by_state = feature_gradient(ratio).view(seeds, -1, A)
        grad[:, :F] = (by_state - batched.step_sums(by_state).unsqueeze(-1)
                       * torch.exp(logp.view(seeds, -1, A))).view(seeds, F)
        adam([numbers[step]])
    return theta, log_ratios()[1]


# ------------------------------------------------------------------ rankings
def fit_ranking(problem: AlignProblem, loss: RankingLoss) -> AlignFit:
    """One policy per seed minimising ``Σ_q w_q ℓ(h[rankings_q], pattern_q)`` over rankings
    (:class:`rlhf.RankingData`; see the module docstring)."""
    from ..learning.rankings import tie_patterns

    S, A, steps, time_indexed = _layout(problem)
    data = cast(tuple[RankingData, ...], problem.data)
    for each in data:
        _check_support(problem, each, A)
    theta0 = finite_log(problem.reference).reshape(-1).repeat(steps)
    log_ref, F = theta0, theta0.numel()
    if problem.exact:
        return _solve_each(problem, loss, theta0, S, A, time_indexed, steps, lambda d, X: RankedProblem(
            X, X @ log_ref, d.rankings, tie_patterns(d.tied), d.weight, A))

    shapes = {(len(d), d.rank, d.length) for d in data}
    if len(shapes) != 1:
        raise ValueError(f"a batch of seeds needs datasets of equal size, rank and length, got (rankings, rank, "
                         f"length) {sorted(shapes)}")
    seeds, (Q, K, _) = len(data), next(iter(shapes))
    features = torch.stack([step_features(Trajectories(d.trajectories.states[d.rankings],
                                                       d.trajectories.actions[d.rankings]), S, A, time_indexed)
                            for d in data])                                                  # [seeds, Q, K, T]
    X = feature_counts(features, F).view(seeds, Q * K, F)
    Xt = X.transpose(1, 2).contiguous()                                                       # [seeds, F, Q·K]
    pattern = torch.stack([tie_patterns(d.tied) for d in data])                              # [seeds, Q]
    w = torch.stack([d.weight for d in data]).float()

    def feature_gradient(ratio: torch.Tensor) -> torch.Tensor:
        h = batched.vecmat(ratio, Xt).view(seeds, Q, K)
        return batched.vecmat((loss.gradient(h, pattern) * w.unsqueeze(-1)).view(seeds, Q * K), X)   # [seeds, F]

    theta, ratio = _adam_on_logits(problem, theta0, log_ref, seeds, A, feature_gradient)
    h = batched.vecmat(ratio, Xt).view(seeds, Q, K)
    final = batched.vecmat(loss.loss(h, pattern) * w, torch.ones(seeds, Q, 1)).squeeze(-1)
    return AlignFit(_policies(theta.clone(), S, A, steps, time_indexed), [{"loss": float(v)} for v in final])
