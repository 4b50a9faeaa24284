"""Which simulated teacher is this person? Maximum likelihood over the B-Pref family.

For each preference model (partial return, regret) the labels' likelihood under the simulated
teacher ``myopic:γ + boltzmann:β + mistake:ε`` is::

    m = Σ_t γ^(T−1−t) (s₁(t) − s₂(t))          s = the model's step scores: r (partial), A* (regret)
    P(first) = ε + (1 − 2ε) σ(β m)
    log L = Σ_i y_i log P_i + (1 − y_i) log(1 − P_i)      y = 1, 0 or ½ ("equal"); skips left out

(:class:`rlhf.Teacher`'s Boltzmann, mistake and myopic parts draw labels from exactly this, with
the preference model's Bradley–Terry σ; here σ is differentiated, in float64;
``=`` answers enter as soft labels ½ and skips are left out: the threshold rules of its
``equal`` and ``skip`` parts are not modelled). β, ε and γ are fitted on
unconstrained scales (β = e^b, ε = σ(e)/2, γ = σ(g)) by damped Newton; the bootstrap's
resamples are fitted side by side as one tensor program. CIs are percentile-bootstrap
intervals over pairs; each model is also fitted on 80% of the pairs and scored on the other
20% (held-out log-likelihood per pair), which is how the models are compared.

Rankings of K segments (``python -m bench label --rank K``): :func:`fit_ranking_teacher` fits the
Plackett–Luce β and, by option, a Rao–Kupper or Davidson tie parameter, with bootstrap CIs over rankings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..core.rollout import Trajectories, step_rewards
from ..core.truths import truths_of
from .models import PREFERENCE_MODELS, preference_model
from .rankings import likelihood_tables
from .teachers import Teacher

if TYPE_CHECKING:    # type only: the protocol lives in a higher layer (rlhf.training)
    from ..training.protocol import Task

PARAMETERS = ("beta", "mistake", "myopic")
ORACLE_BETA = 1e6
"""A fitted β at least this is reported as the noiseless oracle (it only grows with more iterations)."""
MIN_PAIRS = 10
"""Fewer answered pairs than this are not fitted."""
_STEPS = 100


@dataclass(frozen=True)
class TeacherFit:
    """One preference model's fit."""

    preference_model: str
    """The preference model's name (:data:`rlhf.PREFERENCE_MODELS`)."""
    beta: float
    mistake: float
    myopic: float
    ci: dict[str, tuple[float, float]]
    """Percentile-bootstrap CI of each parameter (``confidence`` two-sided)."""
    log_likelihood: float
    """Mean log-likelihood per answered pair, fitted and scored on all of them."""
    heldout_log_likelihood: float
    """Mean log-likelihood per answered pair on the held-out 20%, fitted on the other 80%."""
    pairs: int

    def teacher(self) -> Teacher:
        """The fitted teacher, each parameter to three significant digits: the oracle where β ran off
        to its bound (the labels never contradict the model's ordering), no mistake below 0.001, not
        myopic above 0.999."""
        return Teacher(beta=math.inf if self.beta >= ORACLE_BETA else _three_digits(self.beta),
                       mistake=_three_digits(self.mistake) if self.mistake >= 0.001 else 0.0,
                       myopic=_three_digits(self.myopic) if self.myopic < 0.999 else 1.0,
                       preference_model=preference_model(self.preference_model))

    @property
    def spec(self) -> str:
        """The fitted teacher (:meth:`teacher`) as a spec string :meth:`rlhf.Teacher.parse` reads."""
        return str(self.teacher())


def _three_digits(x: float) -> float:
    return float(f"{x:.3g}")


def fit_teacher(task: Task, first: Trajectories, second: Trajectories, prefer_first: torch.Tensor,
                answered: torch.Tensor | None = None, *, preference_models: Iterable[str] | None = None,
                resamples: int = 200, confidence: float = 0.95, seed: int = 0,
                discount: float = 1.0) -> dict[str, TeacherFit]:
    """Fit each preference model named in ``preference_models`` (default: every registered one) to
    labels ``prefer_first[n]`` (1, 0 or 0.5) of the pairs ``first``, ``second`` (``[n, T]``) of
    ``task``, each scoring steps with its model's step scores (the task's truths at discount γ);
    ``answered[n]`` drops skipped pairs. Deterministic: resamples and the held-out split come from
    a generator seeded with ``seed``."""
    models = [preference_model(name) for name in (PREFERENCE_MODELS if preference_models is None
                                                   else preference_models)]
    truths = truths_of(task)
    keep = torch.ones_like(prefer_first, dtype=torch.bool) if answered is None else answered.bool()
    y = prefer_first[keep].double()
    check_enough(y.numel())
    generator = torch.Generator().manual_seed(seed)
    n = y.numel()
    boot = torch.randint(0, n, (resamples, n), generator=generator)
    counts = torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(1, boot, torch.ones_like(boot).double())
    order = torch.randperm(n, generator=generator)
    train = torch.zeros(n, dtype=torch.float64)
    train[order[: n - n // 5]] = 1.0
    weights = torch.cat([torch.ones(1, n, dtype=torch.float64), train.unsqueeze(0), counts])   # [2 + R, n]
    alpha = (1 - confidence) / 2
    out = {}
    for model in models:
        scores = model.step_scores(truths, discount)
        diff = (step_rewards(scores, first) - step_rewards(scores, second))[keep].double()          # [n, T]
        params = _fit(diff, y, weights)                                                             # [2 + R, 3]
        heldout = _log_likelihood(diff, y, params[1:2])[0]
        test = 1.0 - train
        values = dict(zip(PARAMETERS, params[0].tolist(), strict=True))
        ci = {name: (float(torch.quantile(params[2:, j], alpha)), float(torch.quantile(params[2:, j], 1 - alpha)))
              for j, name in enumerate(PARAMETERS)}
        out[model.name] = TeacherFit(
            model.name, values["beta"], values["mistake"], values["myopic"], ci,
            float(_log_likelihood(diff, y, params[:1])[0].mean()),
            float((heldout * test).sum() / test.sum()), n)
    return out


def check_enough(answered: int) -> None:
    if answered < MIN_PAIRS:
        raise ValueError(f"fit_teacher needs at least {MIN_PAIRS} answered pairs, got {answered}")


def _natural(raw: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` unconstrained (b, e, g) to (β, ε, γ)."""
    return torch.stack([raw[..., 0].exp(), torch.sigmoid(raw[..., 1]) / 2, torch.sigmoid(raw[..., 2])], -1)


def _log_likelihood(diff: torch.Tensor, y: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``[P, n]`` per-pair log-likelihoods of labels ``y[n]`` under each parameter row ``params[P, 3]``."""
    beta, eps, gamma = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    T = diff.shape[-1]
    weights = gamma ** torch.arange(T - 1, -1, -1, dtype=diff.dtype)                    # [P, T]
    margin = weights @ diff.T                                                          # [P, n]
    p = eps + (1 - 2 * eps) * torch.sigmoid(beta * margin)
    p = p.clamp(1e-12, 1 - 1e-12)
    return y * p.log() + (1 - y) * (1 - p).log()


def _fit(diff: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``[P, 3]`` (β, ε, γ) maximising each row of ``weights[P, n]``'s weighted mean log-likelihood.

    Damped Newton (Levenberg–Marquardt) on each row's three unconstrained parameters, all rows at
    once: the rows' losses are independent, so the gradient of their sum is each row's gradient and
    its Hessian is block-diagonal (three more backward passes give every row's 3×3 block). A step
    is kept only where it lowers that row's loss, and each row's damping adapts on its own."""
    def losses(raw: torch.Tensor) -> torch.Tensor:
        return -(_log_likelihood(diff, y, _natural(raw)) * weights).sum(-1) / weights.sum(-1)

    raw = torch.tensor([0.0, -2.0, 3.0], dtype=torch.float64).repeat(weights.shape[0], 1)
    damping = torch.full((weights.shape[0], 1, 1), 1e-3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    with torch.enable_grad():
        for _ in range(_STEPS):
            x = raw.clone().requires_grad_(True)
            current = losses(x)
            (gradient,) = torch.autograd.grad(current.sum(), x, create_graph=True)
            hessian = torch.stack([torch.autograd.grad(gradient[:, j].sum(), x, retain_graph=True)[0]
                                   for j in range(3)], 1)                                   # [P, 3, 3]
            step = torch.linalg.solve(hessian.detach() + damping * eye, gradient.detach())
            trial = (raw - step).clamp(-30.0, 30.0)
            with torch.no_grad():
                better = losses(trial) < current.detach()
            raw = torch.where(better.unsqueeze(-1), trial, raw)
            damping = torch.where(better.view(-1, 1, 1), damping / 3, damping * 4).clamp(1e-9, 1e9)
            if float(gradient.detach().abs().max()) < 1e-7:     # at γ → 1 the step need not shrink; the gradient does
                break
    return _natural(raw)


# ------------------------------------------------------------------ rankings (``label --rank K``)
RANKING_TIE_MODELS = ("none", "rao-kupper", "davidson")
"""How :func:`fit_ranking_teacher` reads a ranking's ties (see its docstring)."""
MIN_RANKINGS = 10
"""Fewer answered rankings than this are not fitted."""


@dataclass(frozen=True)
class RankingTeacherFit:
    """One preference model's fit to rankings (:func:`fit_ranking_teacher`)."""

    preference_model: str
    beta: float
    """The Plackett–Luce (or, with a tie model, the tie model's) rationality β."""
    tie_model: str
    """``"none"``, ``"rao-kupper"`` or ``"davidson"``."""
    tie_param: float
    """θ (Rao–Kupper) or ν (Davidson); NaN without a tie model."""
    ci: dict[str, tuple[float, float]]
    """Percentile-bootstrap CI (over rankings) of ``beta`` and, with a tie model, ``tie_param``."""
    log_likelihood: float
    """Mean log-likelihood per ranking at the fit (a composite one with a tie model)."""
    rankings: int
    rank: int
    """K, the segments a ranking orders."""

    def teacher(self) -> Teacher:
        """The fitted teacher, each parameter to three significant digits (the oracle where β ran off to
        its bound; a tie model only with a finite β). A teacher with a tie model answers pairs only."""
        model = preference_model(self.preference_model)
        if self.beta >= ORACLE_BETA:
            return Teacher(beta=math.inf, preference_model=model)
        if self.tie_model == "none":
            return Teacher(beta=_three_digits(self.beta), preference_model=model)
        low = 1.0 if self.tie_model == "rao-kupper" else 0.0
        param = _three_digits(self.tie_param)
        if not param > low:
            return Teacher(beta=_three_digits(self.beta), preference_model=model)
        return Teacher(beta=_three_digits(self.beta), preference_model=model, tie_model=self.tie_model,
                       tie_param=param)

    @property
    def spec(self) -> str:
        """The fitted teacher (:meth:`teacher`) as a spec string."""
        return str(self.teacher())


def fit_ranking_teacher(task: Task, segments: Trajectories, order: torch.Tensor, tied: torch.Tensor | None = None,
                        answered: torch.Tensor | None = None, *, preference_models: Iterable[str] | None = None,
                        ties: str = "none", resamples: int = 200, confidence: float = 0.95, seed: int = 0,
                        discount: float = 1.0) -> dict[str, RankingTeacherFit]:
    """Fit a person's rationality β (and a tie parameter) to rankings of K segments, per preference model.

    ``segments[n, K, T]`` the queries' segments of ``task``, ``order[n, K]`` each ranking (segment
    indices, best first), ``tied[n, K − 1]`` (positions j and j + 1 equal; none when omitted),
    ``answered[n]`` drops rankings. Each model scores a segment by ``R = Σ_t s(t)``, its step scores
    ``s`` at ``discount`` (:mod:`rlhf.preferences.models`), and with ``x_p = β·R`` at position p:

    * ``ties="none"``: Plackett–Luce, ``log P(order) = Σ_{p<K−1} [x_p − logsumexp(x_p, …, x_{K−1})]``
      (:mod:`rlhf.preferences.rankings`, what :meth:`rlhf.Teacher.rank` draws). A tied group enters as
      the mean of this over the orders it allows (at K = 2 a tie is the soft label ½, as in
      :func:`fit_teacher`), computed exactly by its subsets (as :mod:`rlhf.learning.rankings`).
    * ``ties="rao-kupper"`` or ``"davidson"`` (:mod:`rlhf.preferences.ties`): every pair of positions
      s < t is an outcome, s ahead or a tie, with that model's probability of the margin ``x_s − x_t``
      and tie parameter θ > 1 or ν > 0; a ranking's log-likelihood is the sum over its C(K, 2) pairs.
      At K = 2 that is the tie model's likelihood; for K > 2 it is a composite likelihood (the
      ``pair-split`` learner's), whose estimates are consistent when each pair's outcome follows the
      model, and whose bootstrap over whole rankings accounts for the pairs of a ranking sharing it.
      Needs some tie in the rankings (else the parameter runs to its bound: ValueError).

    β = e^b, θ = 1 + e^φ, ν = e^φ, fitted by damped Newton in float64, every bootstrap resample side by
    side. CIs: percentile-bootstrap over rankings, ``resamples`` draws from a generator seeded with
    ``seed`` (deterministic). :func:`fit_teacher`, for pairs, is unchanged."""
    if ties not in RANKING_TIE_MODELS:
        raise ValueError(f"ties must be one of {', '.join(RANKING_TIE_MODELS)}, got {ties!r}")
    models = [preference_model(name) for name in (PREFERENCE_MODELS if preference_models is None
                                                   else preference_models)]
    n_all, K, _ = segments.states.shape
    if order.shape != (n_all, K):
        raise ValueError(f"order must be [n, K] = [{n_all}, {K}] like the segments, got {list(order.shape)}")
    tied = torch.zeros(n_all, K - 1, dtype=torch.bool) if tied is None else tied.bool()
    keep = torch.ones(n_all, dtype=torch.bool) if answered is None else answered.bool()
    n = int(keep.sum())
    if n < MIN_RANKINGS:
        raise ValueError(f"fit_ranking_teacher needs at least {MIN_RANKINGS} answered rankings, got {n}")
    order, tied = order[keep], tied[keep]
    if ties != "none" and not bool(tied.any()):
        raise ValueError(f"ties={ties!r} fits a tie parameter: none of the {n} rankings has a tie")
    truths = truths_of(task)
    generator = torch.Generator().manual_seed(seed)
    boot = torch.randint(0, n, (resamples, n), generator=generator)
    counts = torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(1, boot, torch.ones_like(boot).double())
    weights = torch.cat([torch.ones(1, n, dtype=torch.float64), counts])                     # [1 + R, n]
    alpha = (1 - confidence) / 2
    names = ("beta",) if ties == "none" else ("beta", "tie_param")
    out = {}
    for model in models:
        scores = model.step_scores(truths, discount)
        returns = step_rewards(scores, segments).double().sum(-1)[keep]                    # [n, K]
        ranked = torch.take_along_dim(returns, order, dim=-1)                              # by position
        if ties == "none":
            per_ranking = _plackett_luce_terms(ranked, tied)
            init = torch.zeros(1, dtype=torch.float64)
        else:
            per_ranking = _tie_terms(ranked, tied, ties)
            default = 2.0 if ties == "rao-kupper" else 1.0                                  # DEFAULT_TIE_PARAMS
            init = torch.tensor([0.0, math.log(default - 1.0) if ties == "rao-kupper" else math.log(default)],
                                dtype=torch.float64)
        raw = _newton(lambda x, f=per_ranking: -(f(x) * weights).sum(-1) / weights.sum(-1), init, weights.shape[0])
        params = _ranking_natural(raw, ties)                                                # [1 + R, d]
        ci = {name: (float(torch.quantile(params[1:, j], alpha)), float(torch.quantile(params[1:, j], 1 - alpha)))
              for j, name in enumerate(names)}
        out[model.name] = RankingTeacherFit(
            model.name, float(params[0, 0]), ties, float(params[0, 1]) if ties != "none" else math.nan, ci,
            float(per_ranking(raw[:1])[0].mean()), n, K)
    return out


def _ranking_natural(raw: torch.Tensor, ties: str) -> torch.Tensor:
    """``[P, d]`` unconstrained (b[, φ]) to (β[, θ or ν])."""
    beta = raw[:, :1].exp()
    if ties == "none":
        return beta
    param = 1.0 + raw[:, 1:2].exp() if ties == "rao-kupper" else raw[:, 1:2].exp()
    return torch.cat([beta, param], -1)


def _plackett_luce_terms(ranked: torch.Tensor, tied: torch.Tensor):
    """``f(raw[P, 1]) -> [P, n]``: each ranking's (tie-averaged) Plackett–Luce log-likelihood at β = e^b
    of its returns by position ``ranked[n, K]``."""
    K = ranked.shape[-1]
    a, masks, coef = likelihood_tables(K, "plackett-luce", True)   # log-lik a·x − Σ coef·lse
    pattern = (tied.to(torch.int64) * (1 << torch.arange(K - 1))).sum(-1)
    a, masks, coef = a[pattern], masks[pattern], coef[pattern]                             # [n, K], [n, Q, K], [n, Q]
    used = coef.abs().sum(0) > 0
    masks, coef = masks[:, used], coef[:, used]
    linear = (a * ranked).sum(-1)                                                           # [n]
    spread = ranked.unsqueeze(-2).expand(masks.shape)                                      # [n, Q, K]

    def terms(raw: torch.Tensor) -> torch.Tensor:
        beta = raw[:, 0].exp().view(-1, 1, 1, 1)
        logits = torch.where(masks, beta * spread, -torch.inf)       # masked after β: no ∞·0 in the gradient
        lse = torch.logsumexp(logits, -1)                                                  # [P, n, Q]
        return beta.view(-1, 1) * linear - (coef * lse).sum(-1)

    return terms


def _tie_terms(ranked: torch.Tensor, tied: torch.Tensor, model: str):
    """``f(raw[P, 2]) -> [P, n]``: each ranking's composite log-likelihood under the tie model (its
    C(K, 2) position pairs, each s ahead of t or tied)."""
    K = ranked.shape[-1]
    first, second = zip(*itertools.combinations(range(K), 2), strict=True)
    first_t, second_t = torch.tensor(first), torch.tensor(second)
    zero = torch.zeros(tied.shape[0], 1, dtype=torch.int64)
    groups = torch.cat([zero, torch.cumsum((~tied).to(torch.int64), -1)], -1)
    same = (groups[:, first_t] == groups[:, second_t]).double()                            # [n, C]
    margin = ranked[:, first_t] - ranked[:, second_t]                                      # [n, C]

    def terms(raw: torch.Tensor) -> torch.Tensor:
        beta = raw[:, 0].exp().view(-1, 1, 1)
        z = beta * margin
        phi = raw[:, 1].view(-1, 1, 1)
        if model == "rao-kupper":
            eta = torch.nn.functional.softplus(phi)                                          # log θ, θ = 1 + e^φ
            log_win = torch.nn.functional.logsigmoid(z - eta)
            log_tie = torch.log(torch.expm1(2 * eta)) + log_win + torch.nn.functional.logsigmoid(-z - eta)
        else:
            lam = phi.expand_as(z)                                                           # log ν
            total = torch.logsumexp(torch.stack([z / 2, -z / 2, lam], -1), -1)
            log_win, log_tie = z / 2 - total, lam - total
        return (same * log_tie + (1 - same) * log_win).sum(-1)

    return terms


def _newton(losses, init: torch.Tensor, rows: int) -> torch.Tensor:
    """``[rows, d]`` unconstrained parameters minimising each row of ``losses(raw[rows, d]) -> [rows]`` (rows
    independent), from ``init[d]``: damped Newton with each row's d×d Hessian block, as :func:`_fit`."""
    d = init.shape[0]
    raw = init.repeat(rows, 1)
    damping = torch.full((rows, 1, 1), 1e-3, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    with torch.enable_grad():
        for _ in range(_STEPS):
            x = raw.clone().requires_grad_(True)
            current = losses(x)
            (gradient,) = torch.autograd.grad(current.sum(), x, create_graph=True)
            hessian = torch.stack([torch.autograd.grad(gradient[:, j].sum(), x, retain_graph=True)[0]
                                   for j in range(d)], 1)                                   # [rows, d, d]
            step = torch.linalg.solve(hessian.detach() + damping * eye, gradient.detach())
            trial = (raw - step).clamp(-30.0, 30.0)
            with torch.no_grad():
                better = losses(trial) < current.detach()
            raw = torch.where(better.unsqueeze(-1), trial, raw)
            damping = torch.where(better.view(-1, 1, 1), damping / 3, damping * 4).clamp(1e-9, 1e9)
            if float(gradient.detach().abs().max()) < 1e-9 or float(step.abs().max()) < 1e-12:
                break
    return raw.detach()
