"""A labelling session: a person answers the pairs ``rlhf.train`` would ask, one at a time.

The engine behind ``python -m bench label`` (:mod:`bench.labelling.app` is its terminal UI). A
session is a task, a training configuration with ``query="uniform"`` and a seed, so its pairs
are fixed before any answer (:func:`rlhf.session_pairs`): resuming, undoing and replaying
are exact, and ``rlhf.train(session.task, teacher=rlhf.RecordedTeacher(DIR), config=session.config,
seed=session.spec.seed)`` learns from the person's answers.

A pair of two identical segments (one in 27 on ``--vocab ABC --target ABC``) is never shown: the
session answers it ``=`` for the person (:data:`AUTOMATIC_ANSWER`), so that its pairs, and the
store's, stay exactly those ``rlhf.train`` asks (:class:`rlhf.RecordedTeacher` replays by position
and checks each pair), while the person answers only pairs with something to compare.

The learned view (:meth:`Session.learned`) is refitted from the start on every answer so far,
with the task's ``render`` hook's learner (:attr:`rlhf.Render.learner`) where it sets one: the
string task's seed learner (SGD at lr 0.01) moves the reward by about 0.02 an answer from its
random start, too little for a person to see their answers teach anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

import rlhf
from rlhf.core.rollout import step_features, step_rewards
from rlhf.core.truths import truths_of
from rlhf.policies.data import stack
from rlhf.preferences import recorded
from rlhf.preferences.fit import check_enough
from rlhf.preferences.models import preference_model, score_margins
from rlhf.preferences.recorded import pair_key
from rlhf.tasks.registry import LABEL_OPTIONS

from .. import provenance

AUTOMATIC_ANSWER = "="
"""What the session answers for the person to a pair of two identical segments (never shown):
equal, as every preference model and teacher would (their returns are equal under any reward),
and a Bradley–Terry fit takes no step from it (the two segments' counts cancel)."""


@dataclass(frozen=True)
class SessionSpec:
    """What a session labels: the task (one registered with a ``render`` hook, :class:`rlhf.Render`),
    its options, the number of pairs and the seed."""

    task: str
    pairs: int = 30
    seed: int = 0
    vocab: str = "ABC"
    target: str = "ABC"
    size: int = 5
    slip: float = 0.0

    @property
    def render(self) -> rlhf.Render:
        """The task's ``render`` hook (ValueError when it has none: a person cannot label it)."""
        render = rlhf.task_spec(self.task).render
        if render is None:
            raise ValueError(f"task {self.task!r} has no render hook: the labelling program cannot draw it "
                             f"(tasks it can: {', '.join(rlhf.registered_tasks(render=True))})")
        return render

    def make_task(self) -> rlhf.Task:
        """The task, from the options its ``render`` hook reads."""
        return self.render.make({name: getattr(self, name) for name in LABEL_OPTIONS})

    def train_config(self, task: rlhf.Task) -> rlhf.TrainConfig:
        """The task's seed configuration, asking ``pairs`` pairs drawn uniformly (segments cut to
        the ``render`` hook's ``segment_length`` when it sets one, e.g. a gridworld's 8 steps),
        fitted by the hook's ``learner`` when it sets one (the string task's: Adam, see
        :data:`rlhf.tasks.builtins.LABEL_LEARNER`). The pairs do not depend on the learner."""
        config = task.defaults.replace(budget=self.pairs, query="uniform", segment_length=self.render.segment_length)
        learner = self.render.learner
        return config if learner is None else dataclasses.replace(config, learner=learner)

    def fields(self) -> dict:
        """What the store records and checks on resume (only the options of this task)."""
        keep = {"task", "pairs", "seed", *self.render.options}
        return {k: v for k, v in dataclasses.asdict(self).items() if k in keep}


class Queue:
    """What a labelling session asks, in order, and how far the store has got: ``items`` (pairs or
    queries), ``identical`` (per item: its segments are all the same, so the person is never shown it
    and the session answers it for them) and ``store`` (one stored answer per item, in order)."""

    items: list
    identical: list[bool]
    store: rlhf.LabelStore

    def close(self) -> None:
        self.store.close()

    @property
    def answered(self) -> int:
        """Items answered, by the person or (identical items) for them: the store's answers."""
        return len(self.store)

    @property
    def identical_answered(self) -> int:
        """Of those, the identical items the session answered without showing them."""
        return sum(self.identical[: self.answered])

    def _shown(self) -> int:
        """The position of the item on screen: the first unanswered one that is not identical
        (``len(items)`` when none is left)."""
        position = self.answered
        while position < len(self.items) and self.identical[position]:
            position += 1
        return position

    @property
    def done(self) -> bool:
        """Whether every item a person is shown is answered."""
        return self._shown() >= len(self.items)


class Session(Queue):
    """A person's session: the pairs, the store, and what the answers so far teach the model."""

    def __init__(self, spec: SessionSpec, directory: str | Path) -> None:
        self.spec, self.directory = spec, Path(directory)
        self.task = spec.make_task()
        self.config = spec.train_config(self.task)
        self.pairs = self.items = rlhf.session_pairs(self.task, self.config, spec.seed)
        self.store = rlhf.LabelStore(directory, spec.fields())
        self.fingerprint = provenance.code_fingerprint()
        self.identical = [identical(first, second) for first, second in self.pairs]
        """Per pair: whether its two segments are the same (never shown; answered ``=`` for the person)."""
        answered = self.store.answers()
        for answer, (first, second) in zip(answered, self.pairs, strict=False):      # resume: the same pairs
            if pair_key(answer.first, answer.second) != pair_key(first, second):
                raise ValueError(f"{directory}: answer {answer.position} is to another pair than this session "
                                 "draws (recorded by other code?): use another directory")

    def current(self) -> tuple[rlhf.Trajectories, rlhf.Trajectories]:
        """The pair on screen: the first unanswered one whose two segments differ."""
        return self.pairs[self._shown()]

    def answer_identical(self) -> int:
        """Answer (and commit) ``=`` to the unanswered identical pairs before the pair on screen;
        returns how many. :meth:`answer` calls it before and after the person's answer, so the
        store never stops before an identical pair (but where a kill fell between two commits)."""
        added = 0
        while self.answered < len(self.pairs) and self.identical[self.answered]:
            self.store.append(*self.pairs[self.answered], AUTOMATIC_ANSWER, self.fingerprint)
            added += 1
        return added

    def answer(self, key: str) -> None:
        """Record (and commit) the answer to the current pair: ``1``, ``2``, ``=`` or ``s``; then
        ``=`` to the identical pairs that follow it (:meth:`answer_identical`)."""
        if self.done:
            raise ValueError("every pair of this session is answered")
        self.answer_identical()
        first, second = self.current()
        self.store.append(first, second, key, self.fingerprint)
        self.answer_identical()

    def undo(self) -> bool:
        """Remove the person's last answer (it is asked again next), and the answers to identical pairs
        given for them after it; False when the person has given none."""
        if all(self.identical[: self.answered]):
            return False
        while self.identical[self.answered - 1]:
            self.store.undo()
        self.store.undo()
        return True

    def learned(self) -> rlhf.RunResult:
        """The model trained on the answers so far (unanswered pairs skipped), with the session's
        configuration and seed."""
        teacher = rlhf.RecordedTeacher(self.directory, missing="skip")
        return rlhf.train(self.task, teacher=teacher, config=self.config, seed=self.spec.seed)

    def agreement(self, result: rlhf.RunResult | None = None) -> float:
        """Share of the answered, non-equal pairs on which the learned reward prefers what the person
        preferred (NaN before any); ``result`` from :meth:`learned` (computed when not given)."""
        answers = [a for a in self.store.answers() if a.answer in ("1", "2")]
        if not answers:
            return float("nan")
        reward = (result or self.learned()).reward
        first, second = _stacked(answers)
        margin = score_margins(reward.reshape(-1), step_features(reward, first), step_features(reward, second))
        chose_first = torch.tensor([a.answer == "1" for a in answers])
        return float(((margin > 0) == chose_first).double().mean())

    def _persons_answers(self) -> list[recorded.Answer]:
        """The answers the person gave (not those to identical pairs, which say nothing about them)."""
        return [a for a in self.store.answers() if not self.identical[a.position]]

    def fit(self, resamples: int = 200) -> dict[str, rlhf.TeacherFit]:
        """Which simulated teacher the person's answers resemble (:func:`rlhf.fit_teacher`), one fit
        per preference model."""
        answers = self._persons_answers()
        check_enough(sum(a.prefer_first is not None for a in answers))
        first, second = _stacked(answers)
        labels, answered = recorded.label_tensors([a.prefer_first for a in answers])
        return rlhf.fit_teacher(self.task, first, second, labels, answered, resamples=resamples,
                                discount=self.config.discount)

    def same_models(self, models: list[str]) -> list[list[str]]:
        """``models`` grouped by what they say about the person's answered pairs: two preference
        models whose step scores differ by the same amount at every step of every pair are one
        model of these answers (their fits are the same). On the string task partial return and
        regret are: both segments are at the same position at every step, where an optimal
        advantage is the reward minus a constant of the position."""
        answers = [a for a in self._persons_answers() if a.prefer_first is not None]
        if not answers:
            return [[name] for name in models]
        first, second = _stacked(answers)
        truths = truths_of(self.task)
        differences = {}
        for name in models:
            scores = preference_model(name).step_scores(truths, self.config.discount)
            differences[name] = (step_rewards(scores, first) - step_rewards(scores, second)).double()
        groups: list[list[str]] = []
        for name in models:
            for group in groups:
                other = differences[group[0]]
                scale = max(float(other.abs().max()), 1.0)
                if torch.allclose(differences[name], other, rtol=0.0, atol=1e-6 * scale):
                    group.append(name)
                    break
            else:
                groups.append([name])
        return groups

    def fit_lines(self, resamples: int = 200) -> list[str]:
        """``--fit``'s report: one line per preference model (:meth:`fit`), or per group of models
        that are one model of these answers (:meth:`same_models`), with the fitted teacher, its
        bootstrap CIs and the held-out log-likelihood."""
        fits = self.fit(resamples)
        lines = []
        for group in self.same_models(list(fits)):
            fit = fits[group[0]]
            name = group[0] if len(group) == 1 else (
                f"{' and '.join(group)} (one model of these pairs: every step's score difference is the same "
                "under each, so is the fit)")
            spec = " or ".join(fits[model].spec for model in group)
            ci = ", ".join(f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in fit.ci.items())
            lines.append(f"{name}: {spec} ({ci}); held-out log-likelihood {fit.heldout_log_likelihood:.3f} "
                         f"per pair over {fit.pairs} answered pairs")
        return lines


def identical(first: rlhf.Trajectories, second: rlhf.Trajectories) -> bool:
    """Whether two segments are the same (states and actions): nothing for a person to compare."""
    return torch.equal(first.states, second.states) and torch.equal(first.actions, second.actions)


def _stacked(answers: list[recorded.Answer]) -> tuple[rlhf.Trajectories, rlhf.Trajectories]:
    """The answered pairs as two ``[n, T]`` batches of segments."""
    return stack([a.first for a in answers]), stack([a.second for a in answers])
