"""One reward update (the seed's 50 Adam steps on 100 pairs of length 30), and a whole seed run."""

import pytest

import rlhf
from rlhf.learning.learner import LearnerConfig, RewardLearner

from ..timings import reference
from ..timings.report import BATCH_SEEDS
from .conftest import MEDIAN_OF_3, MEDIAN_OF_5, SOME, UPDATE_SIZES, grid, info

TEN = {"rounds": 10, "warmup_rounds": 1}
"""An update of a millisecond or two."""


def pairs(task, n=100, length=30):
    keys = rlhf.Keys.from_seeds([0])[0]
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, length, keys.fold(0)).split()
    labels = (keys.fold(1).uniform(n) < 0.5).float()
    return first, second, labels


def time_update(benchmark, fresh_updater, args, rounds):
    """Time ``updater.update(*args)``, with a fresh updater each round: optimiser state
    (Adam's moments and step count) must not carry over from one timed round to the next.
    ``rounds``: pedantic's ``rounds`` and ``warmup_rounds`` (a schedule of ``conftest``)."""
    loss = benchmark.pedantic(lambda updater, *a: updater.update(*a),
                              setup=lambda: ((fresh_updater(), *args), {}), **rounds)
    assert loss > 0


@pytest.mark.benchmark(group="reward_update")
@pytest.mark.parametrize("size", UPDATE_SIZES)
def test_reward_update(benchmark, size):
    task = grid(size, 0.0)
    first, second, labels = pairs(task)
    info(benchmark, "reward_update", "fast", size * size, task="gridworld", size=size, slip=0.0)
    key = rlhf.Keys.from_seeds([0])[0]
    time_update(benchmark, lambda: RewardLearner(task.new_reward_model(key), task.defaults.learner),
                (first, second, labels), rounds=SOME if size >= 1000 else TEN)


@pytest.mark.benchmark(group="reward_update")
@pytest.mark.parametrize("size", UPDATE_SIZES)
def test_reward_update_reference(benchmark, size):
    first, second, labels = pairs(grid(size, 0.0))
    info(benchmark, "reward_update", "reference", size * size, task="gridworld", size=size, slip=0.0)
    index = (1 - labels).long()            # the seed's label: index of the preferred segment
    time_update(benchmark, lambda: reference.SeedAgent(size * size), (first.states, second.states, index),
                rounds=MEDIAN_OF_3 if size >= 1000 else SOME)


@pytest.mark.benchmark(group="reward_update_strings")
def test_reward_update_strings(benchmark):
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    first, second, labels = pairs(task, n=200, length=3)
    info(benchmark, "reward_update_strings", "fast", 3, task="strings", size=3, slip=0.0)
    time_update(benchmark, lambda: RewardLearner(task.new_reward_model(rlhf.Keys.from_seeds([0])[0]),
                                                 LearnerConfig("sgd", 0.01, 5, 1)),
                (first, second, labels), rounds=TEN)


@pytest.mark.benchmark(group="seed_run")
def test_seed_gridworld_run(benchmark):
    info(benchmark, "seed_run", "fast", 25, task="gridworld", size=5, slip=0.0)
    result = benchmark.pedantic(rlhf.train_preset, args=("seed-gridworld",), **MEDIAN_OF_5)
    assert result.metrics["goal_hit"] == 1.0


@pytest.mark.benchmark(group="seed_run")
def test_seed_gridworld_run_reference(benchmark):
    info(benchmark, "seed_run", "reference", 25, task="gridworld", size=5, slip=0.0)
    history = benchmark.pedantic(reference.seed_gridworld_run, **MEDIAN_OF_3)     # ~3 s a call
    assert max(history["learned_distribution"]) == history["learned_distribution"][-1]   # goal (4, 4)



@pytest.mark.benchmark(group="seed_batch")
def test_seed_gridworld_batch(benchmark):
    """100 seeds of the seed run as one batched call (compare: 100 × the one-seed run below)."""
    info(benchmark, "seed_batch", "batched", 25, task="gridworld", size=5, slip=0.0, seeds=BATCH_SEEDS)
    task = rlhf.preset_task("seed-gridworld")
    results = benchmark.pedantic(rlhf.train_batch, args=(task, range(BATCH_SEEDS)), **MEDIAN_OF_3)
    assert sum(r.metrics["goal_hit"] for r in results) >= 0.9 * BATCH_SEEDS


@pytest.mark.benchmark(group="seed_batch")
def test_seed_gridworld_one_seed_at_a_time(benchmark):
    """One seed alone (rlhf.train); 100 such runs cost 100 × this median."""
    info(benchmark, "seed_batch", "one-seed", 25, task="gridworld", size=5, slip=0.0, seeds=1)
    task = rlhf.preset_task("seed-gridworld")
    result = benchmark.pedantic(rlhf.train, args=(task,), kwargs={"seed": 7}, **MEDIAN_OF_5)
    assert result.metrics["goal_hit"] == 1.0
