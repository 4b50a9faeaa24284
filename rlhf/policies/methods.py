"""Alignment methods behind one registry: what :func:`rlhf.align` runs.

A method is an :class:`AlignmentMethod`: a name, its hyperparameters and their defaults, and a
``fit`` that turns an :class:`AlignProblem` (a task, one dataset per seed, a reference policy,
the options) into one policy per seed. Direct methods (DPO and its relatives) share one ``fit``
(:func:`direct_method`): each is a loss of a pair, :class:`PairLoss`, as a pure function of the
pair's two summed log-ratios, trained on tabular policy logits by the batched optimiser
(:mod:`.fitting`) or, on population data, solved exactly (:mod:`.newton`).

Adding a method: a module with its loss and one :func:`register_alignment_method` call (the
built-ins: :mod:`.rlhf_method`, :mod:`.dpo`, :mod:`.ipo`, :mod:`.cdpo`, :mod:`.slic`, :mod:`.cpl`).

Notation: for a trajectory τ = (s_t, a_t)_t, its summed log-ratio is
``h(τ) = Σ_t [log π(a_t|s_t) − log π_ref(a_t|s_t)]`` (TRL's ``policy_logps − reference_logps``);
for a pair, ``z = h₁ − h₂`` (TRL's ``logits``) and ``y = P(first preferred)``. TRL's losses take
hard labels (chosen first); a soft label y mixes the two orders: ``y·ℓ(h₁, h₂) + (1 − y)·ℓ(h₂, h₁)``.

A loss that reads ties (:attr:`PairLoss.reads_ties`: Rao–Kupper and Davidson DPO, :mod:`.tie_dpo`)
takes the label ``[..., 2]``: y (a tie counted ½) and ``t = P(tie)`` (:attr:`rlhf.PreferenceData.tie`),
so the outcomes are first ``y − t/2``, second ``1 − y − t/2``, tie t. A method of rankings of K
trajectories (:class:`rlhf.RankingData`; Plackett–Luce DPO, :mod:`.pl_dpo`) is a
:class:`RankingLoss` of the K summed log-ratios by position (best first), fitted the same two ways
(:func:`ranking_method`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from ..core.registry import Registry

if TYPE_CHECKING:
    from .align import AlignFit, AlignProblem

Tensor = torch.Tensor


@dataclass(frozen=True)
class PairLoss:
    """A direct method's loss of pairs, ``ℓ(h₁, h₂, y)`` elementwise over ``[...]``, and its derivatives."""

    loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    """``ℓ[...]`` of the summed log-ratios ``h₁[...]``, ``h₂[...]`` and labels ``y[...]``."""
    gradient: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
    """``(∂ℓ/∂h₁, ∂ℓ/∂h₂)``."""
    curvature: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]] | None = None
    """``(∂²ℓ/∂h₁², ∂²ℓ/∂h₁∂h₂, ∂²ℓ/∂h₂²)``; None for a loss that is not twice differentiable."""
    smoothed: Callable[[float], PairLoss] | None = None
    """For a loss without curvature: a twice-differentiable loss within ``κ·log 2`` of it everywhere
    (``κ`` the smoothing), which the population solver follows as κ → 0."""
    reads_ties: bool = False
    """Whether its label argument is ``[..., 2]``, (y, P(tie)) stacked on a last dimension (see the module
    docstring), rather than y ``[...]``."""


@dataclass(frozen=True)
class RankingLoss:
    """A direct method's loss of rankings, ``ℓ(h[..., K], pattern[...])`` over the summed log-ratios of a
    ranking's K trajectories by position (best first) and its tie pattern (int64 ``Σ_j tied_j·2^j``,
    :func:`rlhf.learning.rankings.tie_patterns`; 0 untied), and its derivatives (always twice
    differentiable)."""

    loss: Callable[[Tensor, Tensor], Tensor]
    """``ℓ[...]``."""
    gradient: Callable[[Tensor, Tensor], Tensor]
    """``∂ℓ/∂h[..., K]``."""
    curvature: Callable[[Tensor, Tensor], Tensor]
    """``∂²ℓ/∂h∂h[..., K, K]``."""


def margin_loss(value: Callable[[Tensor, Tensor], Tensor], slope: Callable[[Tensor, Tensor], Tensor],
                bend: Callable[[Tensor, Tensor], Tensor] | None = None,
                smoothed: Callable[[float], PairLoss] | None = None) -> PairLoss:
    """A :class:`PairLoss` that depends on the pair only through its margin ``z = h₁ − h₂``:
    ``value(z, y)``, its derivative ``slope(z, y)`` and second derivative ``bend(z, y)`` in z."""
    def gradient(h1: Tensor, h2: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        d = slope(h1 - h2, y)
        return d, -d

    def curvature(h1: Tensor, h2: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert bend is not None
        c = bend(h1 - h2, y)
        return c, -c, c

    return PairLoss(lambda h1, h2, y: value(h1 - h2, y), gradient, curvature if bend is not None else None, smoothed)


@dataclass(frozen=True)
class AlignmentMethod:
    """A registered alignment method."""

    name: str
    """What :func:`rlhf.align` calls it (``method="dpo"``)."""
    fit: Callable[[AlignProblem], AlignFit]
    """One policy per seed of the problem (and the method's own metrics)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The method's hyperparameters besides β, by TRL's names, with their defaults."""
    uses_reference: bool = True
    """Whether its loss reads the reference policy (CPL's does not; every method is still measured
    against the reference)."""
    description: str = ""
    """One line for listings: the paper and what is fitted."""
    accepts_rankings: bool = False
    """Whether its ``fit`` takes rankings (:class:`rlhf.RankingData`) as well as pairs; :func:`rlhf.align`
    refuses rankings for a method that does not."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


ALIGNMENT_METHODS: Registry[AlignmentMethod] = Registry("alignment method")
"""Every registered alignment method by name, in registration order."""


def register_alignment_method(method: AlignmentMethod) -> AlignmentMethod:
    """Make ``method`` known to :func:`rlhf.align` by its name; returns it. ValueError if the name is taken."""
    return ALIGNMENT_METHODS.register(method.name, method)


def direct_method(name: str, make_loss: Callable[..., PairLoss], params: Mapping[str, Any] | None = None,
                  uses_reference: bool = True, description: str = "") -> AlignmentMethod:
    """A direct method: ``make_loss(beta=..., length=T, **params)`` gives its :class:`PairLoss` (T: the
    steps of the data's trajectories); it is fitted on tabular policy logits
    (:func:`rlhf.policies.fitting.fit_direct`)."""
    from .fitting import fit_direct  # the fitting module imports this one

    def fit(problem: AlignProblem) -> AlignFit:
        loss = make_loss(beta=problem.beta, length=problem.data[0].length, **problem.params)
        return fit_direct(problem, loss, uses_reference)

    return AlignmentMethod(name, fit, params or {}, uses_reference, description)


def ranking_method(name: str, make_loss: Callable[..., RankingLoss], params: Mapping[str, Any] | None = None,
                   description: str = "") -> AlignmentMethod:
    """A direct method of rankings: ``make_loss(beta=..., length=T, **params)`` gives its
    :class:`RankingLoss`; pairs (:class:`rlhf.PreferenceData`) are read as rankings of two
    (:meth:`rlhf.RankingData.from_pairs`: a soft label y weighs the two orders by y and 1 − y), and it
    is fitted on tabular policy logits (:func:`rlhf.policies.fitting.fit_ranking`)."""
    from dataclasses import replace

    from .fitting import fit_ranking  # the fitting module imports this one
    from .ranking_data import RankingData

    def fit(problem: AlignProblem) -> AlignFit:
        converted: dict[int, RankingData] = {}
        for d in problem.data:         # one conversion per distinct dataset (the population solver keys on it)
            if id(d) not in converted:
                converted[id(d)] = d if isinstance(d, RankingData) else RankingData.from_pairs(d)
        ranked = replace(problem, data=tuple(converted[id(d)] for d in problem.data))  # type: ignore[misc]
        loss = make_loss(beta=problem.beta, length=ranked.data[0].length, **problem.params)
        return fit_ranking(ranked, loss)

    return AlignmentMethod(name, fit, params or {}, True, description, accepts_rankings=True)
