"""Teacher kinds: a spec prefix registered once names a labeller of one's own, in rlhf.train and in sweeps."""

import pytest
import torch

import rlhf
from rlhf.preferences import kinds


class AlwaysFirst:
    """Prefers the first segment of every pair."""

    def answer(self, query):
        shape = query.scores_1.shape[:-1]
        return rlhf.Labels(torch.ones(shape), torch.ones(shape, dtype=torch.bool), torch.zeros(shape[:-1]))


@pytest.fixture
def registry():
    """Registrations of the test's own, gone after it."""
    before = kinds.registered_teachers()
    yield
    for name in set(kinds.registered_teachers()) - set(before):
        kinds._REGISTRY.remove(name)


def test_a_registered_kind_is_a_teacher_spec(registry):
    made = []
    rlhf.register_teacher(rlhf.TeacherKind("always-first", make=lambda arg: made.append(arg) or AlwaysFirst()))
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    seen = []
    result = rlhf.train(task, teacher="always-first:x", budget=20, on_round=lambda r: seen.append(r.labels))
    assert result.config.teacher == "always-first:x" and made == ["x"]
    assert bool((seen[0].prefer_first == 1).all())
    by_object = rlhf.train(task, teacher=AlwaysFirst(), budget=20)
    assert torch.equal(by_object.reward, result.reward)


def test_a_kind_resolves_its_argument_where_a_run_is_set_up(registry):
    rlhf.register_teacher(rlhf.TeacherKind("first", make=lambda arg: AlwaysFirst(), resolve=lambda arg: arg.upper()))
    assert rlhf.TrainConfig(budget=1, teacher="first:a").teacher == "first:a"      # a configuration does no I/O
    assert rlhf.train(rlhf.StringTask(), teacher="first:a", budget=5).config.teacher == "first:A"


def test_names_taken_by_the_grammar_or_another_kind_are_refused(registry):
    with pytest.raises(ValueError, match="term of B-Pref"):
        rlhf.register_teacher(rlhf.TeacherKind("boltzmann", make=lambda arg: AlwaysFirst()))
    with pytest.raises(ValueError, match="already registered"):
        rlhf.register_teacher(rlhf.TeacherKind("recorded", make=lambda arg: AlwaysFirst()))
    with pytest.raises(ValueError, match="must be a word"):
        rlhf.TeacherKind("a b", make=lambda arg: AlwaysFirst())
    assert "recorded" in kinds.registered_teachers()
