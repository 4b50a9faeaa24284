"""The training configuration: everything :func:`rlhf.train` needs besides the task and the seed."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..learning import regret  # noqa: F401  (registers Knox et al. 2022's learner, learner_model="regret")
from ..learning.learner import FITS, LearnerConfig
from ..learning.learner_models import LEARNER_MODELS
from ..learning.queries import QUERIES, QUERY_RULES
from ..preferences import recorded  # noqa: F401  (registers the recorded:DIR teacher kind)
from ..preferences.kinds import canonical_teacher_spec, labeller_from_spec
from ..preferences.labeller import Labeller, ScoresLabeller, answers_queries


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`rlhf.train` needs besides the task and the seed.

    Its *flat* form (:meth:`flat`, :meth:`replace`) inlines the learner's fields
    (``lr``, ``optimizer``, ``epochs``, ``batch_size``): the keys of a sweep's
    ``[task.train]`` table, of :func:`rlhf.train`'s keywords and of ``cells.csv``.
    """

    budget: int
    """Preference pairs the teacher is asked (skipped ones count), >= 1."""
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
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if isinstance(self.teacher, str):
            object.__setattr__(self, "teacher", canonical_teacher_spec(self.teacher))
        elif not isinstance(self.teacher, str) and not answers_queries(self.teacher):
            raise ValueError(f"teacher must be a spec string or have an answer(query) method, got {self.teacher!r}")

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
