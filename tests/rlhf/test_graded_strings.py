"""The string task's graded rewards (``reward="random:K"`` or a given table) and the K-armed bandit."""

import pytest
import torch

import rlhf


def test_the_default_is_the_seeds_match_reward():
    task = rlhf.StringTask()
    assert task.target == "ABC" and task.reward_spec == "match" and repr(task) == \
        "StringTask(vocab='ABC', target='ABC', slip=0.0)"
    assert torch.equal(task.true_reward, torch.eye(3)) and task.reward_range() == (0.0, 1.0)


def test_random_reward_is_a_fixed_table_of_its_key():
    a = rlhf.StringTask(vocab="ABC", target="ABCAB", reward="random:3")
    b = rlhf.StringTask(vocab="ABC", target="CCCCC", reward="random:3")
    c = rlhf.StringTask(vocab="ABC", target="ABCAB", reward="random:4")
    assert torch.equal(a.true_reward, b.true_reward) and not torch.equal(a.true_reward, c.true_reward)
    expected = rlhf.Keys.from_seeds([3])[0].fold(11).uniform(15).view(5, 3)
    assert torch.equal(a.true_reward, expected)
    assert bool((a.true_reward * 2**24 == torch.round(a.true_reward * 2**24)).all())
    assert a.target == "".join("ABC"[int(i)] for i in a.true_reward.argmax(-1))
    low, high = a.reward_range()
    assert low == float(a.true_reward.min()) and high == float(a.true_reward.max())
    assert "reward='random:3'" in repr(a)
    assert rlhf.StringTask(vocab="XYZ", reward="random:0").horizon == 3


def test_a_given_table_and_the_bandit():
    table = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    task = rlhf.StringTask(vocab="xy", reward=table)
    assert task.target == "yx" and task.horizon == 2 and torch.equal(task.true_reward, table)
    bandit = rlhf.StringTask.bandit([0.2, 1.0, 0.5])
    assert bandit.vocab == "abc" and bandit.horizon == 1 and bandit.mdp.num_states == 1 and bandit.target == "b"
    traj = rlhf.rollout(bandit.mdp, rlhf.uniform_policy(bandit.mdp), 300, 1, rlhf.Keys.from_seeds([0])[0])
    assert set(traj.actions.reshape(-1).tolist()) == {0, 1, 2}
    # the optimum of E[r] − β·KL(π‖uniform) on a bandit is softmax(r/β)
    planned = rlhf.kl_regularized_policy(bandit.mdp, bandit.true_reward, 1, 0.5)
    torch.testing.assert_close(planned[0, 0], torch.softmax(bandit.true_reward[0] / 0.5, -1))


@pytest.mark.parametrize("reward,match", [("random", "random:K"), ("random:-1", "random:K"), ("gold", "random:K"),
                                          (torch.zeros(2, 3), r"\[3, 3\]"), (torch.tensor([[float("inf")] * 3] * 3),
                                                                             "finite")])
def test_bad_rewards_are_refused(reward, match):
    with pytest.raises(ValueError, match=match):
        rlhf.StringTask(vocab="ABC", target="ABC", reward=reward)


def test_training_on_a_graded_reward():
    task = rlhf.StringTask(vocab="ABC", target="ABCA", reward="random:1")
    metrics = rlhf.train(task, teacher="oracle", budget=200, seed=0).metrics
    assert 0.0 <= metrics["position_accuracy"] <= 1.0 and metrics["scaled_return"] == pytest.approx(1.0, abs=1e-6)
