"""A labelling session: a person answers the pairs ``rlhf.train`` would ask, one at a time.

The engine behind ``python -m bench label`` (:mod:`bench.labelling.app` is its terminal UI). A
session is a task, a training configuration with ``query="uniform"`` and a seed, so its pairs
are fixed before any answer (:func:`rlhf.session_pairs`): resuming, undoing and replaying
are exact, and ``rlhf.train(session.task, teacher=rlhf.RecordedTeacher(DIR), config=session.config,
seed=session.spec.seed)`` learns from the person's answers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

import rlhf
from rlhf.core.rollout import step_features
from rlhf.preferences import recorded
from rlhf.preferences.fit import check_enough
from rlhf.preferences.models import score_margins
from rlhf.preferences.recorded import pair_key
from rlhf.tasks.registry import LABEL_OPTIONS

from .. import provenance


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
        the ``render`` hook's ``segment_length`` when it sets one, e.g. a gridworld's 8 steps)."""
        return task.defaults.replace(budget=self.pairs, query="uniform", segment_length=self.render.segment_length)

    def fields(self) -> dict:
        """What the store records and checks on resume (only the options of this task)."""
        keep = {"task", "pairs", "seed", *self.render.options}
        return {k: v for k, v in dataclasses.asdict(self).items() if k in keep}


class Session:
    """A person's session: the pairs, the store, and what the answers so far teach the model."""

    def __init__(self, spec: SessionSpec, directory: str | Path) -> None:
        self.spec, self.directory = spec, Path(directory)
        self.task = spec.make_task()
        self.config = spec.train_config(self.task)
        self.pairs = rlhf.session_pairs(self.task, self.config, spec.seed)
        self.store = rlhf.LabelStore(directory, spec.fields())
        self.fingerprint = provenance.code_fingerprint()
        answered = self.store.answers()
        for answer, (first, second) in zip(answered, self.pairs, strict=False):      # resume: the same pairs
            if pair_key(answer.first, answer.second) != pair_key(first, second):
                raise ValueError(f"{directory}: answer {answer.position} is to another pair than this session "
                                 "draws (recorded by other code?): use another directory")

    def close(self) -> None:
        self.store.close()

    @property
    def answered(self) -> int:
        return len(self.store)

    @property
    def done(self) -> bool:
        return self.answered >= len(self.pairs)

    def current(self) -> tuple[rlhf.Trajectories, rlhf.Trajectories]:
        """The pair on screen: the first unanswered one."""
        return self.pairs[self.answered]

    def answer(self, key: str) -> None:
        """Record (and commit) the answer to the current pair: ``1``, ``2``, ``=`` or ``s``."""
        if self.done:
            raise ValueError("every pair of this session is answered")
        first, second = self.current()
        self.store.append(first, second, key, self.fingerprint)

    def undo(self) -> bool:
        """Remove the last answer (it is asked again next); False when there is none."""
        return self.store.undo() is not None

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

    def fit(self, resamples: int = 200) -> dict[str, rlhf.TeacherFit]:
        """Which simulated teacher the answers resemble (:func:`rlhf.fit_teacher`)."""
        answers = self.store.answers()
        check_enough(sum(a.prefer_first is not None for a in answers))
        first, second = _stacked(answers)
        labels, answered = recorded.label_tensors([a.prefer_first for a in answers])
        return rlhf.fit_teacher(self.task, first, second, labels, answered, resamples=resamples,
                                discount=self.config.discount)


def _stacked(answers: list[recorded.Answer]) -> tuple[rlhf.Trajectories, rlhf.Trajectories]:
    """The answered pairs as two ``[n, T]`` batches of segments."""
    def side(segments: list[rlhf.Trajectories]) -> rlhf.Trajectories:
        return rlhf.Trajectories(torch.stack([t.states for t in segments]), torch.stack([t.actions for t in segments]))
    return side([a.first for a in answers]), side([a.second for a in answers])
