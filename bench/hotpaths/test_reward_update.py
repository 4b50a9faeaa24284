"""One reward update (the seed's 50 Adam steps on 100 pairs of length 30), and a whole seed run."""

import pytest
import torch

import rlhf
from bench import reference
from rlhf.learner import LearnerConfig, RewardLearner

from .conftest import UPDATE_SIZES, grid, info


def pairs(task, n=100, length=30):
    g = torch.Generator().manual_seed(0)
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, length, g).split()
    labels = (torch.rand(n, generator=g) < 0.5).float()
    return first, second, labels


def time_update(benchmark, fresh_updater, args, rounds):
    """Time ``updater.update(*args)``, with a fresh updater each round: optimiser state
    (Adam's moments and step count) must not carry over from one timed round to the next."""
    loss = benchmark.pedantic(lambda updater, *a: updater.update(*a),
                              setup=lambda: ((fresh_updater(), *args), {}), rounds=rounds, warmup_rounds=1)
    assert loss > 0


@pytest.mark.benchmark(group="reward_update")
@pytest.mark.parametrize("size", UPDATE_SIZES)
def test_reward_update(benchmark, size):
    task = grid(size, 0.0)
    first, second, labels = pairs(task)
    info(benchmark, "reward_update", "fast", size * size, task="gridworld", size=size, slip=0.0)
    time_update(benchmark, lambda: RewardLearner(task.new_reward_model(torch.Generator()), task.defaults.learner),
                (first, second, labels), rounds=10)


@pytest.mark.benchmark(group="reward_update")
@pytest.mark.parametrize("size", UPDATE_SIZES)
def test_reward_update_reference(benchmark, size):
    first, second, labels = pairs(grid(size, 0.0))
    info(benchmark, "reward_update", "reference", size * size, task="gridworld", size=size, slip=0.0)
    index = (1 - labels).long()            # the seed's label: index of the preferred segment
    time_update(benchmark, lambda: reference.SeedAgent(size * size), (first.states, second.states, index), rounds=5)


@pytest.mark.benchmark(group="reward_update_strings")
def test_reward_update_strings(benchmark):
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    first, second, labels = pairs(task, n=200, length=3)
    info(benchmark, "reward_update_strings", "fast", 3, task="strings", size=3, slip=0.0)
    time_update(benchmark, lambda: RewardLearner(task.new_reward_model(torch.Generator().manual_seed(0)),
                                                 LearnerConfig("sgd", 0.01, 5, 1)),
                (first, second, labels), rounds=10)


@pytest.mark.benchmark(group="seed_run")
def test_seed_gridworld_run(benchmark):
    info(benchmark, "seed_run", "fast", 25, task="gridworld", size=5, slip=0.0)
    result = benchmark.pedantic(rlhf.train_preset, args=("seed-gridworld",), rounds=10, warmup_rounds=1)
    assert result.metrics["goal_hit"] == 1.0


@pytest.mark.benchmark(group="seed_run")
def test_seed_gridworld_run_reference(benchmark):
    info(benchmark, "seed_run", "reference", 25, task="gridworld", size=5, slip=0.0)
    history = benchmark.pedantic(reference.seed_gridworld_run, rounds=3, warmup_rounds=0)
    assert max(history["learned_distribution"]) == history["learned_distribution"][-1]   # goal (4, 4)
