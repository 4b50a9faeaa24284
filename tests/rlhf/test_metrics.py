import pytest
import torch

import rlhf


def test_epic_invariances(rng):
    true = torch.randn(30, generator=rng)
    potential = torch.randn(30, generator=rng)
    assert rlhf.epic_distance(3.0 * true + 2.0, true) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.epic_distance(-true, true) == pytest.approx(1.0, abs=1e-6)
    other = rlhf.epic_distance(potential, true)
    assert 0.0 < other < 1.0


def test_epic_on_tables_ignores_per_position_shifts(rng):
    table = torch.randn(4, 3, generator=rng)
    shifted = 0.5 * table + torch.randn(4, 1, generator=rng)          # per-position shift, scaled
    assert rlhf.epic_distance(shifted, table) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.epic_distance(-table, table) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < rlhf.epic_distance(torch.randn(4, 3, generator=rng), table) < 1.0


def test_total_variation():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])
    assert rlhf.total_variation(p, q) == pytest.approx(0.5)
    assert rlhf.total_variation(p, p) == 0.0


def test_regret_is_zero_for_the_truth_and_one_for_a_constant_reward():
    task = rlhf.GridWorld(size=5, start=[(0, 0)])
    assert rlhf.normalized_regret(task.mdp, task.true_reward, task.true_reward, 30) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.normalized_regret(task.mdp, torch.zeros(25), task.true_reward, 30) == pytest.approx(1.0, abs=1e-5)
    assert rlhf.normalized_regret(task.mdp, -task.true_reward, task.true_reward, 30) > 1.0


def test_preference_accuracy_ignores_ties():
    learned = torch.tensor([1.0, -1.0, 2.0, 0.5])
    truth = torch.tensor([2.0, 1.0, 0.0, 3.0])
    assert rlhf.preference_accuracy(learned, truth) == pytest.approx(2 / 3)
