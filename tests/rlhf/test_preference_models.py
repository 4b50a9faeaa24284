"""Preference models as objects with a registry (#23), and the task's truths they read, computed once."""

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import rlhf
from rlhf.core import truths as truths_module
from rlhf.learning import learner_models
from rlhf.preferences import models


def test_the_registry_holds_partial_return_and_regret_by_name():
    assert list(rlhf.PREFERENCE_MODELS) == ["partial", "regret"]
    partial, regret = rlhf.PREFERENCE_MODELS["partial"], rlhf.PREFERENCE_MODELS["regret"]
    assert isinstance(partial, rlhf.PreferenceModel) and str(regret) == "regret"
    assert rlhf.Teacher().preference_model is partial
    assert rlhf.Teacher(preference_model="regret").preference_model == regret
    with pytest.raises(ValueError, match="preference model must be one of partial, regret, got 'ties'"):
        rlhf.Teacher(preference_model="ties")
    with pytest.raises(ValueError, match="already registered"):
        rlhf.register_preference_model(models.Regret())


def test_the_models_score_steps_with_the_truths_and_share_bradley_terry():
    task = rlhf.GridWorld(size=3, horizon=4)
    partial, regret = rlhf.PREFERENCE_MODELS["partial"], rlhf.PREFERENCE_MODELS["regret"]
    assert partial.step_scores(task.truths) is task.true_reward
    assert partial.score_range(task.truths) == task.reward_range()
    advantages = rlhf.optimal_advantages(task.mdp, task.true_reward, task.horizon)
    assert torch.equal(regret.step_scores(task.truths), advantages)
    assert regret.score_range(task.truths) == (float(advantages.min()), 0.0)
    margin = torch.tensor([-30.0, 0.0, 2.0])
    p = partial.probability(margin)
    torch.testing.assert_close(p, torch.sigmoid(margin))
    torch.testing.assert_close(regret.entropy(p), -(p * p.log() + (1 - p) * (1 - p).log()).nan_to_num(0.0))


def test_learner_models_are_a_registry_of_their_own_each_assuming_a_preference_model():
    """Knox et al.'s two regret learners assume one preference model and fit different things."""
    assert list(rlhf.LEARNER_MODELS) == ["partial", "advantage", "regret"]
    assumed = {name: model.preference_model for name, model in rlhf.LEARNER_MODELS.items()}
    assert assumed == {"partial": "partial", "advantage": "regret", "regret": "regret"}
    assert all(m in rlhf.PREFERENCE_MODELS for m in assumed.values())
    with pytest.raises(ValueError, match="already registered"):
        rlhf.register_learner_model(learner_models.PartialLearner())


def test_a_learner_acts_as_its_model_says():
    task = rlhf.GridWorld(size=3, horizon=4)
    table = torch.randn(1, 9, 5, generator=torch.Generator().manual_seed(0))
    config = task.defaults
    for name in ("partial", "regret"):                                   # rewards: planned on
        planned = rlhf.LEARNER_MODELS[name].policy(task.mdp, table, task.horizon, 1.0, 1.0)
        assert torch.equal(planned, rlhf.plan(task, table, config))
    assert torch.equal(rlhf.LEARNER_MODELS["advantage"].policy(task.mdp, table, task.horizon, 1.0, 1.0),
                       torch.softmax(table, -1))


@dataclass(frozen=True)
class Contrarian(models.PreferenceModel):
    """A toy preference model in one class: a step is worth minus its true reward."""

    name: ClassVar[str] = "contrarian"

    def step_scores(self, truths, discount=1.0):
        return -truths.true_reward

    def score_range(self, truths, discount=1.0):
        low, high = truths.reward_range
        return -high, -low


@dataclass(frozen=True)
class ContrarianLearner(learner_models.LearnerModel):
    """A toy learner in one class: the partial learner's fit and planning, assuming the contrarian model."""

    name: ClassVar[str] = "contrarian"
    preference_model: ClassVar[str] = "contrarian"


def test_a_new_model_and_its_learner_are_one_class_and_one_registration_each(request):
    request.addfinalizer(lambda: models.PREFERENCE_MODELS.remove("contrarian"))
    request.addfinalizer(lambda: rlhf.LEARNER_MODELS._items.pop("contrarian", None))
    rlhf.register_preference_model(Contrarian())
    rlhf.register_learner_model(ContrarianLearner())
    teacher = rlhf.Teacher.parse("contrarian+oracle")
    assert str(teacher) == "contrarian+oracle" and rlhf.Teacher.parse(str(teacher)) == teacher
    task = rlhf.GridWorld(size=3, horizon=4)
    contrary = rlhf.train(task, teacher="contrarian+oracle", budget=200, pairs_per_round=100,
                          learner_model="contrarian")
    plain = rlhf.train(task, teacher="oracle", budget=200, pairs_per_round=100)
    assert contrary.metrics["goal_hit"] == 0.0 and plain.metrics["goal_hit"] == 1.0   # taught to avoid the goal
    assert contrary.metrics["pref_accuracy"] == 1.0          # agreement with its own (contrarian) noiseless teacher


def test_optimal_advantages_are_computed_once_per_task(monkeypatch):
    """The regret teacher's scores, the regret learner's metrics and held-out margins, and fit_teacher
    all read one A* from the task's truths."""
    calls = []
    real = truths_module.optimal_advantages
    monkeypatch.setattr(truths_module, "optimal_advantages", lambda *a, **k: calls.append(a) or real(*a, **k))
    world = rlhf.RandomGridWorld(1)
    result = rlhf.train(world, teacher="regret+boltzmann:1", budget=60, pairs_per_round=30,
                        learner_model="advantage", heldout_pairs=20)
    again = rlhf.train(world, teacher="regret+oracle", budget=30, learner_model="regret", heldout_pairs=20, seed=1)
    first, second = rlhf.rollout(world.mdp, rlhf.uniform_policy(world.mdp), 40, 3, rlhf.Keys.from_seeds([0])[0]).split()
    rlhf.fit_teacher(world, first, second, torch.ones(20), resamples=5)
    assert len(calls) == 1 and {"epic", "near_optimal"} <= result.metrics.keys() <= again.metrics.keys()


def test_the_truths_outlive_inference_mode_and_scale_returns():
    task = rlhf.GridWorld(size=3, horizon=4)
    with torch.inference_mode():
        advantages = task.truths.optimal_advantages()
    assert not advantages.is_inference()
    j_star, j_uniform = task.truths.optimal_return, task.truths.uniform_return
    assert task.truths.scaled(j_star) == 1.0 and task.truths.scaled(j_uniform) == 0.0
    assert rlhf.PREFERENCE_MODELS["partial"].step_scores(truths_module.truths_of(task)) is task.true_reward


def test_one_spec_grammar_for_teachers_and_fitted_teachers():
    fit = rlhf.TeacherFit("partial", beta=1234567.0 / 3, mistake=0.01234, myopic=0.98765, ci={}, log_likelihood=0.0,
                          heldout_log_likelihood=0.0, pairs=30)
    assert fit.spec == str(fit.teacher()) == "myopic:0.988+boltzmann:412000+mistake:0.0123"
    assert str(rlhf.Teacher(beta=2e7)) == "boltzmann:20000000"          # no exponent: a spec splits on '+'
    assert rlhf.Teacher.parse("boltzmann:20000000").beta == 2e7
