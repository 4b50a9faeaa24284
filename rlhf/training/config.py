"""The training configuration: everything :func:`rlhf.train` needs besides the task and the seed."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..learning import regret  # noqa: F401  (registers Knox et al. 2022's learner, learner_model="regret")
from ..learning.learner import FITS, LearnerConfig
from ..learning.learner_models import LEARNER_MODELS
from ..learning.queries import QUERIES, QUERY_RULES, SAMPLED_QUERIES
from ..preferences import recorded  # noqa: F401  (registers the recorded:DIR teacher kind)
from ..preferences.kinds import canonical_teacher_spec, labeller_from_spec
from ..preferences.labeller import Labeller, ScoresLabeller, answers_queries
from ..preferences.ties import TIE_MODELS, check_tie_param

RANK_LEARNERS = ("plackett-luce", "pair-split")
"""How a learner fits a ranking of K segments (``rank_learner=``; :mod:`rlhf.learning.rankings`)."""
RANK_COSTS = ("comparisons", "query")
"""What a ranking of K segments costs a person (``rank_cost=``): K − 1 comparisons, or one query."""
TIE_FITS = ("fixed", "learned")
"""Whether the learner's tie parameter stays at ``tie_param`` or is fitted with the reward."""
MAX_RANK = 9
"""The most segments a query may rank (InstructGPT's labellers ranked 4 to 9)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`rlhf.train` needs besides the task and the seed.

    Its *flat* form (:meth:`flat`, :meth:`replace`) inlines the learner's fields
    (``lr``, ``optimizer``, ``epochs``, ``batch_size``): the keys of a sweep's
    ``[task.train]`` table, of :func:`rlhf.train`'s keywords and of ``cells.csv``.
    """

    budget: int
    """Preference pairs the teacher is asked (skipped ones count), >= 1: comparisons asked of a person,
    a ranking of ``rank`` segments costing ``rank_cost`` of them."""
    teacher: str | Labeller = "boltzmann:1"
    """Teacher spec: a simulated teacher (see :class:`rlhf.Teacher`; canonicalised on construction), or
    a registered kind's (:mod:`rlhf.preferences.kinds`), such as ``"recorded:DIR"`` (a person's answers
    in a labels store, :class:`rlhf.RecordedTeacher`), kept as given, as a configuration does no I/O:
    :func:`rlhf.train` and a sweep resolve it (``recorded:/absolute/DIR@DIGEST``) with
    :func:`~rlhf.preferences.kinds.resolve_teacher_spec`; or a :class:`rlhf.Teacher`, or any object
    with an ``answer`` method (:class:`rlhf.Labeller`)."""
    pairs_per_round: int = 0
    """Pairs asked per round, re-planning between rounds; 0 = all in one round."""
    segment_length: int = 0
    """Steps per trajectory; 0 = the task's horizon."""
    query: str = "on-policy"
    """Which pairs the teacher is asked, a registered query rule (:mod:`rlhf.learning.queries`):
    ``"on-policy"``, pairs rolled out from the policy acting on the current learned model (the
    gridworld preset's); ``"uniform"``, uniformly random actions (the string preset's); or an active
    rule choosing from an on-policy pool of ``oversample`` × the round's pairs: ``"disagreement"``,
    ``"entropy"``, ``"info-gain"`` (these two and disagreement use the ensemble), ``"kcenter"``."""
    ensemble: int = 1
    """Reward models fitted side by side, each on its own bootstrap resample of every round's
    pairs; planning and metrics use their mean reward. 1 = a single model on all pairs."""
    oversample: int = 10
    """Candidate pool of an active query rule, in multiples of the round's pairs (B-Pref's
    ``large_batch``); unused by ``on-policy`` and ``uniform``."""
    learner_model: str = "partial"
    """How the learner fits and acts, a registered learner model (:mod:`rlhf.learning.learner_models`):
    ``"partial"``, Bradley–Terry on the summed learned reward, planned on (the presets);
    ``"advantage"``, Bradley–Terry on the summed learned optimal advantages ``Â[S, A]`` of the steps,
    acted on greedily, a free table scored by :func:`rlhf.metrics.advantage_metrics` (Knox et al.,
    2024: "Learning optimal advantage from preferences"); ``"regret"``, the task's reward fitted by
    Bradley–Terry on its summed optimal advantages A*_r̂ (planning inside the loss), then planned on
    (Knox et al., 2022: "Models of human preference for learning reward functions")."""
    fit: str = "round"
    """What the learner fits each round: ``"round"``, the round's new pairs (the seeds' loop; the
    presets); ``"all"``, every pair asked so far, its ``epochs`` passes warm-started from the previous
    round's parameters and optimiser state (an ensemble member on its own bootstrap resample of all
    of them, drawn afresh each round), as B-Pref and imitation train on their buffer of every label."""
    rank: int = 2
    """Segments per query, K in [2, 9]: the teacher ranks them (Plackett–Luce with its β, its noise
    applied to the ranking: :class:`rlhf.Teacher`). 2 is a pair (today's loop, bit for bit)."""
    rank_learner: str = "plackett-luce"
    """How the learner fits a ranking (:mod:`rlhf.learning.rankings`): ``"plackett-luce"``, the full
    ranking likelihood; ``"pair-split"``, InstructGPT's mean log-likelihood of all C(K, 2) pairs of a
    ranking as one batch element. Both are Bradley–Terry at K = 2."""
    rank_cost: str = "comparisons"
    """What a ranking of K segments costs a person, in the comparisons ``budget`` and
    ``pairs_per_round`` count: ``"comparisons"``, K − 1 (the least a ranking rests on); ``"query"``, 1.
    A round asks ``⌊comparisons so far / cost⌋ − ⌊comparisons before it / cost⌋`` rankings, so pairs and
    rankings are compared at equal effort; a pair costs 1 either way."""
    ties: str = "none"
    """The learner's tie model (:mod:`rlhf.preferences.ties`): ``"none"`` (Bradley–Terry and
    Plackett–Luce; a tie is a soft label 0.5, or every order of the tied segments alike),
    ``"rao-kupper"`` or ``"davidson"`` (a tie is a third outcome; with ``rank > 2`` they need
    ``rank_learner="pair-split"``). A teacher ties through its own spec (``equal:F``, the oracle's equal
    returns, ``rao-kupper:θ``, ``davidson:ν``)."""
    tie_param: float = 0.0
    """The learner's tie parameter, Rao–Kupper's θ > 1 or Davidson's ν > 0; 0 = the model's default
    (θ = 2, ν = 1: equal segments tie with probability 1/3). Unused with ``ties="none"``."""
    tie_fit: str = "fixed"
    """``"fixed"``: the tie parameter stays ``tie_param``; ``"learned"``: it starts there and is fitted
    with the reward, per seed, by the same optimiser (on ``φ = log(θ − 1)`` or ``log ν``); the fitted
    value is the metric ``fitted_tie_param``."""
    learner: LearnerConfig = LearnerConfig()
    """How the reward model is fitted each round."""
    discount: float = 1.0
    """γ in [0, 1] for planning."""
    temperature: float = 1.0
    """Soft-max temperature τ > 0 for planning and the policy softmax(τQ)."""
    heldout_pairs: int = 1000
    """Pairs drawn (from a separate stream) to measure ``pref_accuracy``."""

    def __post_init__(self) -> None:
        _check_int("budget", self.budget, 1)
        _check_int("pairs_per_round", self.pairs_per_round, 0)
        _check_int("segment_length", self.segment_length, 0)
        _check_int("heldout_pairs", self.heldout_pairs, 1)
        _check_int("ensemble", self.ensemble, 1)
        _check_int("oversample", self.oversample, 1)
        if self.query not in QUERIES:
            raise ValueError(f"query must be one of {', '.join(QUERIES)}, got {self.query!r}")
        if QUERY_RULES[self.query].needs_ensemble and self.ensemble < 2:
            raise ValueError(f"query {self.query!r} compares ensemble members: ensemble must be >= 2, "
                             f"got {self.ensemble}")
        if self.learner_model not in LEARNER_MODELS:
            raise ValueError(f"learner_model must be one of {', '.join(LEARNER_MODELS)}, "
                             f"got {self.learner_model!r}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        self._check_ranking()
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if isinstance(self.teacher, str):
            object.__setattr__(self, "teacher", canonical_teacher_spec(self.teacher))
        elif not isinstance(self.teacher, str) and not answers_queries(self.teacher):
            raise ValueError(f"teacher must be a spec string or have an answer(query) method, got {self.teacher!r}")

    def _check_ranking(self) -> None:
        """The ranking and tie fields, each error one line naming the field and the bad value."""
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or not 2 <= self.rank <= MAX_RANK:
            raise ValueError(f"rank must be an integer in [2, {MAX_RANK}], got {self.rank!r}")
        for name, known in (("rank_learner", RANK_LEARNERS), ("rank_cost", RANK_COSTS), ("ties", TIE_MODELS),
                            ("tie_fit", TIE_FITS)):
            if getattr(self, name) not in known:
                raise ValueError(f"{name} must be one of {', '.join(known)}, got {getattr(self, name)!r}")
        if isinstance(self.tie_param, bool) or not isinstance(self.tie_param, (int, float)):
            raise ValueError(f"tie_param must be a number (0: the tie model's default), got {self.tie_param!r}")
        if self.tie_param != 0:
            if self.ties == "none":
                raise ValueError(f"tie_param needs a tie model (ties='rao-kupper' or 'davidson'), got "
                                 f"{self.tie_param!r} with ties='none'")
            check_tie_param(self.ties, self.tie_param)
        if self.tie_fit == "learned" and self.ties == "none":
            raise ValueError("tie_fit 'learned' needs a tie model (ties='rao-kupper' or 'davidson'), got ties='none'")
        if self.rank > 2 and self.ties != "none" and self.rank_learner == "plackett-luce":
            raise ValueError(f"ties {self.ties!r} with rank {self.rank} needs rank_learner='pair-split' (the "
                             "tie models are pair models), got rank_learner='plackett-luce'")
        if not self.ranked:
            return
        if self.rank > 2 and not QUERY_RULES[self.query].samples:
            raise ValueError(f"query {self.query!r} chooses pairs: rank {self.rank} needs a sampling rule "
                             f"({', '.join(SAMPLED_QUERIES)}), got query={self.query!r}")
        if not LEARNER_MODELS[self.learner_model].ranks:
            raise ValueError(f"learner_model {self.learner_model!r} fits pairs only: it needs rank=2 and "
                             f"ties='none', got rank={self.rank}, ties={self.ties!r}")
        cost = self.query_cost
        for name in ("budget", "pairs_per_round"):
            value = getattr(self, name)
            if value and value < cost:
                raise ValueError(f"{name} must be 0 or >= {cost} (a rank-{self.rank} ranking costs {cost} "
                                 f"comparisons with rank_cost={self.rank_cost!r}), got {value}")

    @property
    def ranked(self) -> bool:
        """Whether the loop asks and fits rankings (``rank > 2``) or ties (``ties`` not ``"none"``)
        rather than plain Bradley–Terry pairs."""
        return self.rank > 2 or self.ties != "none"

    @property
    def query_cost(self) -> int:
        """Comparisons one query costs: K − 1 for a ranking with ``rank_cost="comparisons"``, else 1."""
        return self.rank - 1 if self.rank_cost == "comparisons" else 1

    def queries_in_round(self, index: int) -> int:
        """Queries (pairs, or rankings of ``rank`` segments) asked in round ``index``: the round's
        comparisons (:meth:`pairs_in_round`) at :attr:`query_cost` each, counted cumulatively (a round
        may be 0 when its comparisons do not reach a ranking's cost); pairs: :meth:`pairs_in_round`."""
        cost = self.query_cost
        before = index * self.round_size
        return (before + self.pairs_in_round(index)) // cost - before // cost

    def queries_before(self, index: int) -> int:
        """Queries asked in the rounds before round ``index``."""
        return index * self.round_size // self.query_cost

    @property
    def round_size(self) -> int:
        """Pairs in a full round: ``pairs_per_round``, or the whole budget when that is 0."""
        return self.pairs_per_round or self.budget

    @property
    def rounds(self) -> int:
        return -(-self.budget // self.round_size)

    def pairs_in_round(self, index: int) -> int:
        """Pairs asked in round ``index`` (the last round may be short); rounds before it asked
        ``index · round_size``."""
        return min(self.round_size, self.budget - index * self.round_size)

    def labeller(self) -> Labeller:
        """The teacher as a :class:`~rlhf.Labeller` (an object with ``answer(query)``)."""
        if isinstance(self.teacher, str):
            return labeller_from_spec(self.teacher)
        return self.teacher if isinstance(self.teacher, Labeller) else ScoresLabeller(self.teacher)

    @classmethod
    def flat_fields(cls) -> dict[str, type]:
        """``{name: int | float | str}`` of every flat field, in declaration order."""
        out: dict[str, type] = {}
        for f in dataclasses.fields(cls):
            if f.name == "learner":
                out |= {g.name: _HINTS[LearnerConfig][g.name] for g in dataclasses.fields(LearnerConfig)}
            else:
                out[f.name] = str if f.name == "teacher" else _HINTS[cls][f.name]
        return out

    def flat(self) -> dict[str, object]:
        """Every field by its flat name; the teacher as its spec (``str()`` of a custom one)."""
        learner = dataclasses.asdict(self.learner)
        return {name: learner[name] if name in learner else getattr(self, name) for name in self.flat_fields()
                } | {"teacher": str(self.teacher)}

    def replace(self, **changes: object) -> TrainConfig:
        """A copy with flat fields changed (``lr=0.05`` reaches the learner); an unknown
        name raises ``TypeError`` naming it, a bad value ``ValueError``."""
        known = self.flat_fields()
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise TypeError(f"unknown training field {unknown[0]!r} (fields: {', '.join(known)})")
        learner_names = {f.name for f in dataclasses.fields(LearnerConfig)}
        # values of any type: the dataclasses' __post_init__ checks them
        learner: dict[str, Any] = {k: v for k, v in changes.items() if k in learner_names}
        rest: dict[str, Any] = {k: v for k, v in changes.items() if k not in learner_names}
        if learner:
            rest["learner"] = dataclasses.replace(self.learner, **learner)
        return dataclasses.replace(self, **rest)


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


_HINTS = {cls: typing.get_type_hints(cls) for cls in (TrainConfig, LearnerConfig)}
