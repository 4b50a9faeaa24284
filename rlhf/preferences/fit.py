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
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..core.rollout import Trajectories, step_rewards
from ..core.truths import truths_of
from .models import PREFERENCE_MODELS, preference_model
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
