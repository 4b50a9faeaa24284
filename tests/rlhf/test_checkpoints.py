"""Budgets as checkpoints of one run, and the device argument (#12)."""

import pytest
import torch

import rlhf
from rlhf.training.loop import on_device

from .test_batch_invariance import assert_same_run


@pytest.mark.parametrize(("make", "settings"), [
    (lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8), dict(pairs_per_round=20)),
    (lambda: rlhf.StringTask("ABC", "BCA"), dict(pairs_per_round=10, teacher="skip:0.2+boltzmann:2")),
])
def test_every_checkpoint_equals_a_standalone_run_of_its_budget(make, settings):
    task = make()
    budgets = [40, 20, 60, 50]                     # 50 is not a multiple of pairs_per_round: its own run
    curve = rlhf.train_checkpoints(task, [0, 3], budgets, heldout_pairs=50, **settings)
    assert list(curve) == budgets
    for budget in budgets:
        alone = rlhf.train_batch(task, [0, 3], budget=budget, heldout_pairs=50, **settings)
        for a, b in zip(alone, curve[budget], strict=True):
            assert b.config.budget == budget and len(b.history["loss"]) == -(-budget // settings["pairs_per_round"])
            assert_same_run(a, b)


def test_without_rounds_every_budget_is_its_own_run():
    task = rlhf.preset_task("seed-strings")          # pairs_per_round 0: all pairs in one round
    curve = rlhf.train_checkpoints(task, [1], [10, 30])
    assert_same_run(curve[30][0], rlhf.train(task, seed=1, budget=30))
    assert len(curve[10][0].history["loss"]) == len(curve[30][0].history["loss"]) == 1


def test_device_argument_moves_the_task_and_keeps_the_results():
    task = rlhf.GridWorld(size=3, horizon=5)
    on_cpu = rlhf.train(task, seed=2, budget=40, pairs_per_round=20, heldout_pairs=20, device="cpu")
    assert_same_run(on_cpu, rlhf.train(task, seed=2, budget=40, pairs_per_round=20, heldout_pairs=20))
    moved = on_device(task, "meta")                  # no arithmetic on meta: only where the tensors went
    assert moved.mdp.start.device.type == "meta" and moved.true_reward.device.type == "meta"
    assert moved.goal_states.device.type == "meta" and moved.mdp.moves.device.type == "meta"
    assert moved.truths is not task.truths and moved.truths.true_reward.device.type == "meta"
    assert task.mdp.start.device.type == "cpu" and on_device(task, "cpu") is task
    assert rlhf.Keys.from_seeds([1], device="meta").key.device.type == "meta"


def test_bad_seeds_are_one_line_errors():
    task = rlhf.preset_task("seed-strings")
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        rlhf.train_batch(task, [0, -1])
    with pytest.raises(ValueError, match="at least one seed"):
        rlhf.train_batch(task, [])
    assert torch.equal(rlhf.train_batch(task, [4, 4])[0].reward, rlhf.train_batch(task, [4, 4])[1].reward)
