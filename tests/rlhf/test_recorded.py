"""A person's labels (#16): the store, the teacher that replays it, and which simulated teacher fits them."""

import pytest
import torch

import rlhf
from rlhf.preferences.kinds import resolve_teacher_spec as resolve_recorded


def simulate_session(directory, task, config, seed, teacher_spec):
    """Answer a session's pairs as the simulated teacher would inside rlhf.train (same keys per round)."""
    teacher = rlhf.Teacher.parse(teacher_spec)
    keys = rlhf.Keys.from_seeds([seed])
    pairs = rlhf.session_pairs(task, config, seed)
    per_round = config.pairs_per_round or config.budget
    with rlhf.LabelStore(directory, {"task": task.name}) as store:
        for index in range(config.rounds):
            chunk = pairs[index * per_round:(index + 1) * per_round]
            first = rlhf.Trajectories(torch.stack([p[0].states for p in chunk]), torch.stack([p[0].actions for p in chunk]))
            second = rlhf.Trajectories(torch.stack([p[1].states for p in chunk]),
                                       torch.stack([p[1].actions for p in chunk]))
            labels = teacher.label(rlhf.step_rewards(task.true_reward, first).unsqueeze(0),
                                   rlhf.step_rewards(task.true_reward, second).unsqueeze(0), task.reward_range(),
                                   keys.fold(rlhf.training.phases.TEACHER, index))
            for i, y in enumerate(labels.prefer_first[0].tolist()):
                store.append(first[i], second[i], {1.0: "1", 0.0: "2", 0.5: "="}[y])
    return pairs


def shown(first, second):
    """The query of a run's first pairs: a recorded teacher reads only the segments and their position."""
    return rlhf.Query(first, second, None, None, (0.0, 1.0), None, asked_before=0)


@pytest.mark.parametrize(("make", "teacher"), [
    (lambda: rlhf.StringTask("ABC", "CAB"), "deterministic"),
    (lambda: rlhf.StringTask("ABCD", "DABC"), "boltzmann:1"),
    (lambda: rlhf.GridWorld(size=4, horizon=8), "oracle"),
])
def test_training_on_recorded_labels_equals_training_with_the_teacher_that_gave_them(tmp_path, make, teacher):
    task = make()
    config = task.defaults.replace(budget=40, pairs_per_round=20, query="uniform", heldout_pairs=50)
    simulate_session(tmp_path, task, config, 3, teacher)
    recorded = rlhf.train(task, teacher=rlhf.RecordedTeacher(tmp_path), config=config, seed=3)
    simulated = rlhf.train(task, teacher=teacher, config=config, seed=3)
    assert torch.equal(recorded.reward, simulated.reward)
    assert recorded.metrics == simulated.metrics
    assert recorded.history["loss"] == simulated.history["loss"]


def test_session_pairs_are_the_pairs_train_asks(tmp_path):
    task = rlhf.StringTask("ABC", "ABC")
    config = task.defaults.replace(budget=12, pairs_per_round=5, query="uniform")
    pairs = rlhf.session_pairs(task, config, seed=2)
    asked = []
    rlhf.train(task, config=config, seed=2,
               on_round=lambda r: asked.extend((r.first[i], r.second[i]) for i in range(len(r.first))))
    assert len(pairs) == len(asked) == 12
    for (a1, a2), (b1, b2) in zip(pairs, asked, strict=True):
        assert torch.equal(a1.states, b1.states) and torch.equal(a2.actions, b2.actions)
    with pytest.raises(ValueError, match="query must be 'uniform', got 'on-policy'"):
        rlhf.session_pairs(task, config.replace(query="on-policy"), seed=2)


def test_the_store_undoes_exactly_the_last_answer_and_refuses_another_session(tmp_path):
    task = rlhf.StringTask("ABC", "ABC")
    pairs = rlhf.session_pairs(task, task.defaults.replace(budget=4), seed=0)
    with rlhf.LabelStore(tmp_path, {"task": "strings", "seed": 0}) as store:
        for (first, second), key in zip(pairs, "12=s", strict=True):
            store.append(first, second, key, "code-x")
        assert [a.answer for a in store.answers()] == ["1", "2", "=", "s"]
        assert store.undo().answer == "s" and [a.answer for a in store.answers()] == ["1", "2", "="]
        assert store.answers()[2].prefer_first == 0.5 and store.answers()[0].fingerprint == "code-x"
        with pytest.raises(ValueError, match="answer must be one of"):
            store.append(*pairs[3], "3")
    with pytest.raises(ValueError, match="holds labels for seed = 0, not 1"):
        rlhf.LabelStore(tmp_path, {"task": "strings", "seed": 1})
    teacher = rlhf.RecordedTeacher(tmp_path, missing="skip")
    first = rlhf.Trajectories(torch.stack([p[0].states for p in pairs]), torch.stack([p[0].actions for p in pairs]))
    second = rlhf.Trajectories(torch.stack([p[1].states for p in pairs]), torch.stack([p[1].actions for p in pairs]))
    labels = teacher.answer(shown(first, second))
    assert labels.prefer_first.tolist() == [1.0, 0.0, 0.5, 0.0] and labels.answered.tolist() == [True] * 3 + [False]
    with pytest.raises(ValueError, match="no answer to pair 3"):
        rlhf.RecordedTeacher(tmp_path).answer(shown(first, second))
    with pytest.raises(ValueError, match="answer 0 is to another pair"):              # pairs out of step
        teacher.answer(shown(first[1:], second[1:]))


def test_a_pair_shown_twice_keeps_both_answers(tmp_path):
    task = rlhf.StringTask("ABC", "ABC")
    (first, second), (other_1, other_2) = rlhf.session_pairs(task, task.defaults.replace(budget=2), seed=0)
    with rlhf.LabelStore(tmp_path, {"task": "strings"}) as store:
        store.append(first, second, "1")
        store.append(other_1, other_2, "=")
        store.append(first, second, "2")                         # the same pair again, answered otherwise
    both = rlhf.Trajectories(torch.stack([first.states, other_1.states, first.states]),
                             torch.stack([first.actions, other_1.actions, first.actions]))
    seconds = rlhf.Trajectories(torch.stack([second.states, other_2.states, second.states]),
                                torch.stack([second.actions, other_2.actions, second.actions]))
    labels = rlhf.RecordedTeacher(tmp_path).answer(shown(both, seconds))
    assert labels.prefer_first.tolist() == [1.0, 0.5, 0.0]


def test_a_recorded_spec_is_resolved_to_its_absolute_path_and_answers_where_a_run_starts(tmp_path, monkeypatch):
    task = rlhf.StringTask("ABC", "ABC")
    pairs = rlhf.session_pairs(task, task.defaults.replace(budget=2), seed=0)
    with rlhf.LabelStore(tmp_path / "me", {"task": "strings"}) as store:
        store.append(*pairs[0], "1")
    monkeypatch.chdir(tmp_path)
    assert rlhf.TrainConfig(budget=2, teacher="recorded:me").teacher == "recorded:me"    # a config does no I/O
    assert rlhf.TrainConfig(budget=2, teacher="recorded:nobody").teacher == "recorded:nobody"
    spec = resolve_recorded("recorded:me")
    assert spec.startswith(f"recorded:{tmp_path / 'me'}@") and resolve_recorded(spec) == spec    # read back as is
    assert resolve_recorded("boltzmann:1") == "boltzmann:1"
    config = rlhf.TrainConfig(budget=2, teacher=spec)
    with rlhf.LabelStore(tmp_path / "me") as store:
        store.append(*pairs[1], "2")
    assert resolve_recorded("recorded:me") != spec
    with pytest.raises(ValueError, match="its labels changed since this configuration was made"):
        config.labeller()
    run = rlhf.train(task, teacher="recorded:me", config=task.defaults.replace(budget=2))
    assert run.config.teacher == resolve_recorded("recorded:me")          # rlhf.train resolves it


def test_a_fitted_teacher_is_a_spec_teacher_parse_reads():
    fit = rlhf.TeacherFit("regret", beta=3.2e7, mistake=2e-14, myopic=0.99995, ci={}, log_likelihood=0.0,
                          heldout_log_likelihood=0.0, pairs=30)
    assert fit.spec == "regret+oracle"
    noisy = rlhf.TeacherFit("partial", beta=0.000123456, mistake=0.1234, myopic=0.9, ci={}, log_likelihood=0.0,
                            heldout_log_likelihood=0.0, pairs=30)
    assert noisy.spec == "myopic:0.9+boltzmann:0.000123+mistake:0.123"
    assert rlhf.Teacher.parse(noisy.spec) == rlhf.Teacher(beta=0.000123, mistake=0.123, myopic=0.9)


def test_fit_teacher_recovers_a_known_teacher_within_its_cis():
    """2,000 pairs labelled by boltzmann:0.5+mistake:0.1 on a task whose returns spread widely."""
    g = torch.Generator().manual_seed(0)
    S, A = 12, 3
    start = torch.full((S,), 1.0 / S)
    mdp = rlhf.TabularMDP.from_sparse(torch.randint(0, S, (A, S, 1), generator=g), torch.ones(A, S, 1), start)
    task = rlhf.TabularTask(mdp, torch.randn(S, A, generator=g) * 2, horizon=6)
    keys = rlhf.Keys.from_seeds([5])[0]
    first, second = rlhf.rollout(mdp, rlhf.uniform_policy(mdp), 4000, 6, keys.fold(0)).split()
    teacher = rlhf.Teacher.parse("boltzmann:0.5+mistake:0.1")
    labels = teacher.label(rlhf.step_rewards(task.true_reward, first), rlhf.step_rewards(task.true_reward, second),
                           task.reward_range(), keys.fold(1))
    fits = rlhf.fit_teacher(task, first, second, labels.prefer_first, resamples=100)
    fit = fits["partial"]
    assert fit.ci["beta"][0] <= 0.5 <= fit.ci["beta"][1] and fit.ci["mistake"][0] <= 0.1 <= fit.ci["mistake"][1]
    assert fit.ci["myopic"][1] >= 0.999 and fit.pairs == 2000
    assert fit.ci["beta"][1] - fit.ci["beta"][0] < 0.5                       # informative, not vacuous
    assert rlhf.Teacher.parse(fit.spec).preference_model == rlhf.PREFERENCE_MODELS["partial"]
    assert fit.heldout_log_likelihood > fits["regret"].heldout_log_likelihood    # the generating model wins


def test_a_sweep_learns_from_a_person_through_a_recorded_spec(tmp_path):
    """The string lab's sweep cell with teacher 'recorded:DIR' equals rlhf.train with the RecordedTeacher."""
    from helpers import run_cli

    from bench.sweep import config as sweep_config
    task = rlhf.StringTask("ABC", "ABC")
    labels = tmp_path / "labels"
    session = task.defaults.replace(budget=8, query="uniform")
    simulate_session(labels, task, session, 0, "deterministic")
    toml = tmp_path / "person.toml"
    toml.write_text(f"[strings]\nsizes = [3]\nslips = [0.0]\nbudgets = [8]\nteachers = ['recorded:{labels}']\n"
                    "seeds = [0]\n")
    cell = sweep_config.load(toml).cells[0]
    assert cell.train.teacher.startswith(f"recorded:{labels}@")
    run = tmp_path / "run"
    run_cli("run", "--config", str(toml), "--out", str(run), "--no-progress", check=True)
    import pandas as pd
    row = pd.read_csv(run / "cells.csv").iloc[0]
    direct = rlhf.train(task, teacher=rlhf.RecordedTeacher(labels), config=session, seed=0)
    assert row["status"] == "done" and row["epic"] == pytest.approx(direct.metrics["epic"], abs=0)
    with pytest.raises(ValueError, match="no labels store"):
        resolve_recorded(f"recorded:{tmp_path / 'nobody'}")
    toml.write_text(toml.read_text().replace(str(labels), str(tmp_path / "nobody")))
    with pytest.raises(sweep_config.ConfigError, match=r"teachers = 'recorded:.*nobody': .*no labels store"):
        sweep_config.load(toml)
