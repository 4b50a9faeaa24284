"""fit = "all" (#29): the learner refits every pair asked so far each round, warm-started."""

import pytest
import torch

import rlhf
from rlhf.learning.learner import LearnerConfig, RewardLearner
from rlhf.training import phases


def assert_same_run(one: rlhf.RunResult, other: rlhf.RunResult) -> None:
    """History and metrics equal bit for bit (repr: exact for floats, NaN equals NaN), and the reward."""
    assert repr(one.history) == repr(other.history) and repr(one.metrics) == repr(other.metrics)
    assert torch.equal(one.reward, other.reward)

ONE_ROUND = [
    pytest.param(lambda: rlhf.preset_task("seed-gridworld"), dict(budget=100), id="seed-gridworld"),
    pytest.param(lambda: rlhf.preset_task("seed-strings"), dict(), id="seed-strings-sgd-per-pair"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(budget=30, query="disagreement", ensemble=3, oversample=2), id="ensemble-disagreement"),
    pytest.param(lambda: rlhf.GridWorld(size=4, horizon=8), dict(budget=40, teacher="skip:0.1+boltzmann:1",
                                                                 batch_size=8), id="skipping-minibatches"),
    pytest.param(lambda: rlhf.RandomGridWorld(3), dict(budget=300, learner_model="advantage"), id="advantage"),
    pytest.param(lambda: rlhf.RandomGridWorld(3), dict(budget=300, learner_model="regret"), id="regret"),
    pytest.param(lambda: rlhf.RandomGridWorld(3), dict(budget=60, learner_model="regret", ensemble=2,
                                                       teacher="skip:0.1+regret+boltzmann:1"), id="regret-ensemble"),
]


@pytest.mark.parametrize(("make", "settings"), ONE_ROUND)
def test_with_one_round_fit_all_is_fit_round_bit_for_bit(make, settings):
    task = make()
    runs = {fit: rlhf.train_batch(task, [0, 1], heldout_pairs=50, pairs_per_round=0, fit=fit, **settings)
            for fit in ("round", "all")}
    for alone, inside in zip(runs["round"], runs["all"], strict=True):
        assert_same_run(alone, inside)
        assert alone.config.fit == "round" and inside.config.fit == "all"


def test_each_round_fits_every_pair_so_far_warm_started(keys):
    """Two updates of a fit="all" learner = the same learner (state carried over) given the first round,
    then both rounds' pairs at once: the second update fits the concatenation."""
    task = rlhf.GridWorld(size=4, horizon=6)
    config = LearnerConfig("adam", 0.05, 20, 0)
    rounds = []
    for r in range(2):
        first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 60, 6, keys.fold(r)).split()
        rounds.append((first, second, (keys.fold(10 + r).uniform(30) < 0.5).float()))
    keeper = RewardLearner(task.new_reward_model(keys), config, fit="all")
    by_hand = RewardLearner(task.new_reward_model(keys), config, fit="round")
    for learner in (keeper, by_hand):
        learner.update(*rounds[0])
    keeper.update(*rounds[1])
    both = [rlhf.Trajectories(torch.cat([a.states, b.states]), torch.cat([a.actions, b.actions]))
            for a, b in zip(rounds[0][:2], rounds[1][:2], strict=True)]
    by_hand.update(*both, torch.cat([rounds[0][2], rounds[1][2]]))
    assert torch.equal(keeper.model.theta, by_hand.model.theta)
    assert keeper.buffer is not None and keeper.buffer.size == 60 and by_hand.buffer is None
    fresh = RewardLearner(task.new_reward_model(keys), config, fit="round")
    fresh.update(*both, torch.cat([rounds[0][2], rounds[1][2]]))
    assert not torch.equal(fresh.model.theta, keeper.model.theta)         # warm-started, not refitted from scratch


def test_ensemble_members_resample_every_pair_so_far_each_round(monkeypatch):
    sizes = []
    real = phases.bootstrap_weights
    monkeypatch.setattr(phases, "bootstrap_weights", lambda keys, e, n: sizes.append(n) or real(keys, e, n))
    task = rlhf.GridWorld(size=4, horizon=6)
    rlhf.train(task, budget=60, pairs_per_round=20, ensemble=2, fit="all", heldout_pairs=20)
    assert sizes == [20, 40, 60]
    sizes.clear()
    rlhf.train(task, budget=60, pairs_per_round=20, ensemble=2, fit="round", heldout_pairs=20)
    assert sizes == [20, 20, 20]


def test_fit_is_a_flat_training_field():
    assert "fit" in rlhf.TrainConfig.flat_fields() and rlhf.TrainConfig(budget=5).fit == "round"
    assert rlhf.TrainConfig(budget=5).replace(fit="all").flat()["fit"] == "all"
    with pytest.raises(ValueError, match="fit must be one of round, all, got 'everything'"):
        rlhf.TrainConfig(budget=5, fit="everything")
    task = rlhf.GridWorld(size=4, horizon=6)
    kept = rlhf.train(task, budget=60, pairs_per_round=20, fit="all", heldout_pairs=20)
    forgot = rlhf.train(task, budget=60, pairs_per_round=20, heldout_pairs=20)
    assert kept.config.fit == "all" and kept.history["loss"][0] == forgot.history["loss"][0]
    assert kept.history["loss"][1:] != forgot.history["loss"][1:]


def test_a_large_model_cannot_keep_every_pair():
    model = rlhf.StateLogSoftmaxReward(5000)
    learner = RewardLearner(model, LearnerConfig(), fit="all")
    states = torch.zeros(2, 3, dtype=torch.long)
    traj = rlhf.Trajectories(states, states)
    with pytest.raises(ValueError, match="fit='all' needs a model of at most 4096 features, got 5000"):
        learner.update(traj, traj, torch.ones(2))
