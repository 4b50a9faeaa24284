"""Simulated teachers: the B-Pref family (Lee et al., 2021) on any task.

A teacher sees the true step rewards of the two segments of each pair and
answers with a *soft label* ``y = P(first segment preferred)``. Its preference
model (Knox et al., 2022; :mod:`rlhf.preferences.models`) says what a step is worth:
``partial`` (the default) scores a segment by its summed true reward, ``regret`` by
its summed optimal advantage A*(s, a) under the true reward (the loop hands the
teacher its model's step scores), and gives the Boltzmann probability and its
entropy. Its parts are applied in B-Pref's order:

1. **skip f**: drop the pair when max(R̂₁, R̂₂) < f (it asks, but gets no answer);
2. **equal f**: when |R̂₁ − R̂₂| < f the label is 0.5;
3. **myopic γ**: step k of a length-T segment is weighted γ^(T−1−k) for step 4;
4. **Boltzmann β**: the label is drawn from softmax(β·[R₁, R₂]); β = ∞ is the
   oracle (ties give 0.5, or the second segment with ``ties="second"``);
5. **mistake ε**: the label is flipped with probability ε.

A tie model (``rao-kupper:θ`` or ``davidson:ν``, :mod:`rlhf.preferences.ties`; needs a finite β) makes
step 4 a draw of three outcomes, first, second or equal (label 0.5), from that model's probabilities
of ``β·(R₁ − R₂)`` (one uniform u: first if u < P(first), equal if u < P(first) + P(equal)); a flip
leaves an equal answer equal.

**Rankings** (:meth:`Teacher.rank`, a query of K > 2 segments, ``rank=K``): the same parts, applied to
a ranking (:mod:`rlhf.preferences.rankings`). Skip drops the whole ranking when no segment's R̂
reaches f; the Boltzmann part draws a Plackett–Luce ranking of ``β·R`` (myopic weights inside R; the
oracle sorts by R); mistakes swap each adjacent pair of the ranking, top to bottom, with probability ε;
then adjacent positions are tied where their R̂ differ by less than the ``equal`` threshold (and, for
the oracle with ``"half"`` ties, where their returns are equal). At K = 2 each of these is the pair
rule above. Tie models are pair models: a teacher with one does not rank.

R̂ is a *normalised* undiscounted return: ``(R − T·r_min) / (T·(r_max − r_min))``,
0 when every step earns the task's worst true reward and 1 when every step earns
its best. Thresholds are fractions of that scale, so they mean the same on
every task and need no running statistics (B-Pref's are data-dependent).

Specs (the sweep axis ``teacher``): ``boltzmann:1``, ``oracle``,
``deterministic`` (oracle, ties to the second: the string lab's human),
``mistake:0.1``, ``myopic:0.9``, ``skip:0.1``, ``equal:0.1``, the tie models ``rao-kupper:2``
and ``davidson:1``, and the preference model ``regret`` (or ``partial``), joined with ``+``, for
example ``oracle+mistake:0.1``, ``regret+boltzmann:1`` or ``boltzmann:1+davidson:1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import torch

from ..core import batched
from ..core.keys import Keys
from . import rankings
from .labeller import Labels, Query, mean_over_answered
from .models import PARTIAL_RETURN, PREFERENCE_MODELS, PreferenceModel, preference_model
from .ties import TIE_MODELS, check_tie_param, log_tie_param, ternary_entropy, tie_probabilities

_RATIONAL = {"oracle", "deterministic", "boltzmann"}
_NOISE = ("mistake", "myopic", "skip", "equal")
_TIES = tuple(m for m in TIE_MODELS if m != "none")


@dataclass(frozen=True)
class Teacher:
    """A simulated human; see the module docstring for the order of the parts."""

    beta: float = 1.0
    """Boltzmann rationality β > 0; ``math.inf`` is the noiseless oracle."""
    ties: str = "half"
    """Oracle ties: ``"half"`` (label 0.5) or ``"second"`` (the second wins)."""
    mistake: float = 0.0
    """ε in [0, 1]: probability that the label is flipped."""
    myopic: float = 1.0
    """γ in (0, 1]: step k of T weighted γ^(T−1−k); 1 is not myopic."""
    skip: float = 0.0
    """Skip the pair when both normalised returns are below this (0: never)."""
    equal: float = 0.0
    """Label 0.5 when normalised returns differ by less than this (0: never)."""
    preference_model: PreferenceModel = PARTIAL_RETURN
    """What a step is worth and how labels are drawn (:mod:`rlhf.preferences.models`): partial return
    (summed reward, the default) or regret (summed optimal advantage); a registered name is looked up."""
    tie_model: str = "none"
    """``"none"``, ``"rao-kupper"`` or ``"davidson"`` (:mod:`rlhf.preferences.ties`): a pair may be
    answered "equal" (label 0.5) with that model's probability."""
    tie_param: float = 0.0
    """The tie model's parameter: Rao–Kupper's θ > 1 or Davidson's ν > 0 (unused without one)."""

    def __post_init__(self) -> None:
        if not isinstance(self.preference_model, PreferenceModel):
            try:
                object.__setattr__(self, "preference_model", preference_model(self.preference_model))
            except ValueError as exc:
                raise ValueError(f"teacher {exc}") from None
        if not self.beta > 0:
            raise ValueError(f"teacher beta must be > 0, got {self.beta}")
        if self.ties not in ("half", "second"):
            raise ValueError(f"teacher ties must be 'half' or 'second', got {self.ties!r}")
        for name, low, high, low_open in (("mistake", 0, 1, False), ("myopic", 0, 1, True),
                                          ("skip", 0, 1, False), ("equal", 0, 1, False)):
            value = getattr(self, name)
            if not (low < value <= high if low_open else low <= value <= high):
                bracket = "(" if low_open else "["
                raise ValueError(f"teacher {name} must be in {bracket}{low}, {high}], got {value}")
        if self.tie_model not in TIE_MODELS:
            raise ValueError(f"teacher tie_model must be one of {', '.join(TIE_MODELS)}, got {self.tie_model!r}")
        if self.tie_model != "none":
            check_tie_param(self.tie_model, self.tie_param, f"teacher {self.tie_model}")
            if math.isinf(self.beta):
                raise ValueError(f"teacher {self.tie_model} needs a finite beta (a boltzmann:B part), got oracle")

    # ------------------------------------------------------------- spec I/O
    @classmethod
    def parse(cls, spec: str | Teacher) -> Teacher:
        """A teacher from a spec such as ``"boltzmann:1+mistake:0.1"``."""
        if isinstance(spec, Teacher):
            return spec
        kwargs: dict[str, Any] = {}                # field name -> float, or str for ties
        for term in str(spec).split("+"):
            name, _, arg = term.strip().partition(":")
            if name in _RATIONAL and ({"beta", "ties"} & kwargs.keys()):
                raise ValueError(f"teacher {spec!r} names two rational parts")
            if name in PREFERENCE_MODELS and "preference_model" in kwargs:
                raise ValueError(f"teacher {spec!r} names two preference models")
            if name in _TIES and "tie_model" in kwargs:
                raise ValueError(f"teacher {spec!r} names two tie models")
            try:
                if name in PREFERENCE_MODELS and not arg:
                    kwargs["preference_model"] = PREFERENCE_MODELS[name]
                elif name == "oracle" and not arg:
                    kwargs["beta"] = math.inf
                elif name == "deterministic" and not arg:
                    kwargs.update(beta=math.inf, ties="second")
                elif name in ("boltzmann", *_NOISE) and arg:
                    kwargs["beta" if name == "boltzmann" else name] = float(arg)
                elif name in _TIES and arg:
                    kwargs.update(tie_model=name, tie_param=float(arg))
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"teacher {spec!r}: cannot read {term.strip()!r} (expected oracle, deterministic, boltzmann:B, "
                    f"mistake:E, myopic:G, skip:F, equal:F, rao-kupper:THETA, davidson:NU, "
                    f"{' or '.join(PREFERENCE_MODELS)} joined by '+')"
                ) from None
        return cls(**kwargs)

    @staticmethod
    def is_term(name: str) -> bool:
        """Whether ``name`` is a word of the spec grammar :meth:`parse` reads."""
        return name in _RATIONAL or name in PREFERENCE_MODELS or name in _NOISE or name in _TIES

    def __str__(self) -> str:
        """The spec :meth:`parse` reads back: the parts that differ from the defaults, in B-Pref's order."""
        defaults = {f.name: f.default for f in fields(self)}
        parts = [self.preference_model.name] if self.preference_model != defaults["preference_model"] else []
        parts += [f"{name}:{spec_number(getattr(self, name))}" for name in ("skip", "equal", "myopic")
                  if getattr(self, name) != defaults[name]]
        if math.isinf(self.beta):
            parts.append("deterministic" if self.ties == "second" else "oracle")
        else:
            parts.append(f"boltzmann:{spec_number(self.beta)}")
        if self.tie_model != "none":
            parts.append(f"{self.tie_model}:{spec_number(self.tie_param)}")
        if self.mistake:
            parts.append(f"mistake:{spec_number(self.mistake)}")
        return "+".join(parts)

    @property
    def may_skip(self) -> bool:
        """Whether some pairs can come back unanswered (a ``skip`` part)."""
        return self.skip > 0

    @property
    def may_tie(self) -> bool:
        """Whether some answers can be "equal" (label 0.5, or tied positions of a ranking): an
        ``equal`` part, a tie model, or the oracle's ``"half"`` ties."""
        return self.equal > 0 or self.tie_model != "none" or (math.isinf(self.beta) and self.ties == "half")

    @property
    def ranks(self) -> bool:
        """Whether it answers queries of K > 2 segments (:meth:`rank`): every teacher but one with a
        tie model (those are pair models)."""
        return self.tie_model == "none"

    # -------------------------------------------------------------- labels
    def answer(self, query: Query) -> Labels:
        """:meth:`label` of the query's step scores, or :meth:`rank` of a ranking query's (the
        labeller protocol)."""
        if query.segment_scores is not None:
            return self.rank(query.segment_scores, query.score_range, query.keys)
        return self.label(query.scores_1, query.scores_2, query.score_range, query.keys)

    def label(
        self,
        rewards_1: torch.Tensor,
        rewards_2: torch.Tensor,
        reward_range: tuple[float, float],
        keys: Keys,
    ) -> Labels:
        """Answer B pairs from the step scores ``rewards_i[..., B, T]`` of their segments under the
        teacher's preference model (the true rewards, or A* for regret).

        ``reward_range`` is the task's (worst, best) step score, which normalises returns for
        ``skip`` and ``equal``. The Boltzmann (or tie model's) draw and the mistake of pair i use
        draws i of ``keys.fold(0)`` and ``keys.fold(1)``.
        """
        B, T = rewards_1.shape[-2:]
        answered = torch.ones(rewards_1.shape[:-1], dtype=torch.bool, device=rewards_1.device)
        if self.skip or self.equal:             # both compare returns normalised to [0, 1]
            low, high = reward_range
            scale = T * (high - low) if high > low else 1.0
            norm_1 = (batched.step_sums(rewards_1) - T * low) / scale
            norm_2 = (batched.step_sums(rewards_2) - T * low) / scale
            if self.skip:
                answered = torch.maximum(norm_1, norm_2) >= self.skip
            if self.equal:
                equal = (norm_1 - norm_2).abs() < self.equal

        # R₁ − R₂, step by step. A noiseless teacher compares in float64, where the steps' differences
        # of float32 scores and their sum are exact (unless the scores' magnitudes span more than
        # about 2²⁴), so segments of equal return tie whatever the order of their steps; in float32
        # a few did not (47 of 11,457 ties, 5x5 gridworld).
        noiseless = math.isinf(self.beta)
        dtype = torch.float64 if noiseless else rewards_1.dtype
        margin = rewards_1.to(dtype) - rewards_2.to(dtype)
        if self.myopic != 1.0:
            margin = margin * self.myopic ** torch.arange(T - 1, -1, -1, dtype=dtype, device=margin.device)
        margin = batched.step_sums(margin)
        if self.tie_model != "none":
            return self._label_with_ties(margin, answered, equal if self.equal else None, keys)
        if noiseless:
            p_first = (margin > 0).float()
            p_first[margin == 0] = 0.5 if self.ties == "half" else 0.0
            y = p_first.clone()
        else:
            p_first = self.preference_model.probability(self.beta * margin)
            y = (keys.fold(0).uniform(B) < p_first).float()
        if self.equal:
            y[equal] = 0.5
            p_first = torch.where(equal, torch.full_like(p_first, 0.5), p_first)
        if self.mistake:
            flip = keys.fold(1).uniform(B) < self.mistake
            y = torch.where(flip, 1.0 - y, y)

        return Labels(prefer_first=y, answered=answered,
                      entropy=mean_over_answered(self.preference_model.entropy(p_first),
                                                 answered if self.skip else None))

    def _label_with_ties(self, margin: torch.Tensor, answered: torch.Tensor, equal: torch.Tensor | None,
                         keys: Keys) -> Labels:
        """Pair labels under the tie model (see the module docstring): 1, 0 or 0.5 (equal); the entropy
        is the tie model's three outcomes' (before ``equal`` and mistakes, as a ranking's)."""
        B = margin.shape[-1]
        p_win, p_loss, p_tie = tie_probabilities(self.tie_model, self.beta * margin,
                                                 log_tie_param(self.tie_model, self.tie_param))
        u = keys.fold(0).uniform(B)
        y = torch.where(u < p_win, 1.0, torch.where(u < p_win + p_tie, 0.5, 0.0))
        entropy = ternary_entropy(p_win, p_loss, p_tie)
        if equal is not None:
            y = torch.where(equal, 0.5, y)
        if self.mistake:
            flip = keys.fold(1).uniform(B) < self.mistake
            y = torch.where(flip, 1.0 - y, y)
        return Labels(prefer_first=y, answered=answered,
                      entropy=mean_over_answered(entropy, answered if self.skip else None))

    def rank(self, scores: torch.Tensor, reward_range: tuple[float, float], keys: Keys) -> Labels:
        """Rank the K segments of each of B queries from their step scores ``scores[..., B, K, T]``
        (see "Rankings" in the module docstring): ``Labels.ranking`` and ``Labels.tied``, and
        ``prefer_first`` of segments 0 and 1. Ranking i's stage s and its mistake j use draws
        ``i·(K − 1) + s`` of ``keys.fold(0)`` and ``i·(K − 1) + j`` of ``keys.fold(1)``; the entropy
        is that of the Plackett–Luce distribution over orders (0 for the oracle; before mistakes and
        ties)."""
        if not self.ranks:
            raise ValueError(f"teacher {self}: a tie model is a pair model, it does not rank K > 2 segments")
        B, K, T = scores.shape[-3:]
        batch = scores.shape[:-3]
        noiseless = math.isinf(self.beta)
        dtype = torch.float64 if noiseless else scores.dtype
        weighted = scores.to(dtype)
        if self.myopic != 1.0:
            weighted = weighted * self.myopic ** torch.arange(T - 1, -1, -1, dtype=dtype, device=scores.device)
        returns = batched.step_sums(weighted)                                       # [..., B, K]
        answered = torch.ones((*batch, B), dtype=torch.bool, device=scores.device)
        normalised = None
        if self.skip or self.equal:
            low, high = reward_range
            scale = T * (high - low) if high > low else 1.0
            normalised = (batched.step_sums(scores) - T * low) / scale                # [..., B, K]
            if self.skip:
                answered = normalised.amax(-1) >= self.skip
        if noiseless:
            order = rankings.sorted_order(returns, self.ties)
            entropy = torch.zeros((*batch, B), dtype=scores.dtype, device=scores.device)
        else:
            logits = self.beta * returns
            order = rankings.sample_plackett_luce(logits, keys.fold(0).uniform(B * (K - 1)).view(*batch, B, K - 1))
            entropy = rankings.plackett_luce_entropy(logits)
        if self.mistake:
            order = rankings.adjacent_mistakes(order, keys.fold(1).uniform(B * (K - 1)).view(*batch, B, K - 1),
                                               self.mistake)
        tied = torch.zeros((*batch, B, K - 1), dtype=torch.bool, device=scores.device)
        if noiseless and self.ties == "half":
            ranked = rankings.at_positions(returns, order)
            tied |= ranked[..., :-1] == ranked[..., 1:]
        if self.equal:
            assert normalised is not None
            ranked = rankings.at_positions(normalised, order)
            tied |= (ranked[..., :-1] - ranked[..., 1:]).abs() < self.equal
        return Labels(prefer_first=rankings.prefer_first_of(order, tied), answered=answered,
                      entropy=mean_over_answered(entropy, answered if self.skip else None),
                      ranking=order, tied=tied)


def spec_number(x: float) -> str:
    """A number as a teacher spec writes it: ``:g`` (six significant digits), positional where that
    would take an exponent (a spec splits on ``+``, which ``1e+06`` holds)."""
    text = f"{x:g}"
    return text if "e" not in text else format(Decimal(repr(float(x))).normalize(), "f")
