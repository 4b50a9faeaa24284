"""One round's update of the partial learner against Knox et al.'s (2022) regret learner, whose loss
plans (H backups forward and back per Adam step), at the presets' sizes and Knox's random worlds'.

The updates time a learner past its first round (a later round: no partial-return warm start) on
fresh pairs of uniform behaviour with coin-flip labels; ``learner_run`` times whole rounds (query,
label, update, plan, evaluate) of a 10-round run. One torch thread (the fixture in conftest)."""

import pytest

import rlhf
from rlhf.learning.learner import RewardLearner
from rlhf.learning.regret import RegretRewardLearner

from .conftest import MEDIAN_OF_3, SOME, info

CASES = {
    # name: (task, pairs a round, segment length)
    "seed-gridworld": (lambda: rlhf.preset_task("seed-gridworld"), 100, 30),
    "seed-strings": (lambda: rlhf.preset_task("seed-strings"), 10, 3),
    "random-world-3": (lambda: rlhf.RandomGridWorld(3), 300, 3),          # 6x5, horizon 22
    "random-world-5": (lambda: rlhf.RandomGridWorld(5), 300, 3),          # 15x10, horizon 50: the largest
}


def round_pairs(task, n, length, index):
    keys = rlhf.Keys.from_seeds([index])[0]
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, length, keys.fold(0)).split()
    return first, second, (keys.fold(1).uniform(n) < 0.5).float()


def learner(task, kind):
    model = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
    config = task.defaults
    if kind == "partial":
        return RewardLearner(model, config.learner)
    return RegretRewardLearner(model, config.learner, task.mdp, task.horizon, config.discount)


@pytest.mark.benchmark(group="learner_update")
@pytest.mark.parametrize("kind", ["partial", "regret"])
@pytest.mark.parametrize("case", list(CASES))
def test_one_round_update(benchmark, case, kind):
    make, n, length = CASES[case]
    task = make()
    info(benchmark, "learner_update", kind, task.mdp.num_states, task=case, size=task.mdp.num_states, slip=0.0,
         pairs=n, length=length, horizon=task.horizon)
    earlier, later = round_pairs(task, n, length, 0), round_pairs(task, n, length, 1)

    def setup():
        fitted = learner(task, kind)
        fitted.update(*earlier)                                 # past the first round
        return (fitted,), {}

    loss = benchmark.pedantic(lambda fitted: fitted.update(*later), setup=setup, **SOME)
    assert loss > 0


@pytest.mark.benchmark(group="learner_run")
@pytest.mark.parametrize("kind", ["partial", "regret"])
@pytest.mark.parametrize("case", ["seed-gridworld", "random-world-3"])
def test_ten_whole_rounds(benchmark, case, kind):
    make, n, _ = CASES[case]
    task = make()
    info(benchmark, "learner_run", kind, task.mdp.num_states, task=case, size=task.mdp.num_states, slip=0.0,
         rounds=10, pairs=n)
    result = benchmark.pedantic(rlhf.train, args=(task,), kwargs=dict(budget=10 * n, pairs_per_round=n,
                                                                       learner_model=kind, heldout_pairs=100),
                                **MEDIAN_OF_3)
    assert len(result.history["loss"]) == 10
