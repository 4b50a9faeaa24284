"""Where a round of the batched seed run spends its time: each phase of one round of the
`seed-gridworld` loop, for one seed and for a batch of seeds, on the inputs a round sees
(200 trajectories of 30 steps a seed, 100 labelled pairs, 50 Adam steps). The ratio of
the two, per phase, says which phase keeps `seed_batch` from a larger speed-up."""

import pytest
import torch

import rlhf
from rlhf.learning.learner import RewardLearner
from rlhf.training.loop import plan

from ..timings.report import BATCH_SEEDS
from .conftest import info

PHASES = ("rollout", "label", "update", "plan")


def round_inputs(seeds: int):
    """A mid-run round's inputs for ``seeds`` seeds: a learned reward per seed (random), the
    policy planned on it, the round's pairs rolled out from that policy, and their labels."""
    task = rlhf.preset_task("seed-gridworld")
    keys = rlhf.Keys.from_seeds(range(seeds))
    cfg = task.defaults
    pairs = cfg.pairs_per_round
    reward = keys.fold(9).normal(task.mdp.num_states).unsqueeze(-1)               # [B, S, 1]
    policy = plan(task, reward, cfg)
    first, second = rlhf.rollout(task.mdp, policy, 2 * pairs, task.horizon, keys.fold(0)).split()
    teacher = cfg.labeller()
    scored = (rlhf.step_rewards(task.true_reward, first), rlhf.step_rewards(task.true_reward, second),
              task.reward_range(), keys.fold(1))
    return task, cfg, keys, reward, policy, first, second, teacher, scored


@pytest.mark.benchmark(group="seed_batch_phases")
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("seeds", [1, BATCH_SEEDS])
def test_seed_round_phase(benchmark, phase, seeds):
    task, cfg, keys, reward, policy, first, second, teacher, scored = round_inputs(seeds)
    info(benchmark, "seed_batch_phases", phase, task.mdp.num_states, task="gridworld", size=task.size,
         slip=task.slip, seeds=seeds)
    labels = teacher.label(*scored)
    with torch.inference_mode():
        if phase == "rollout":
            pairs = first.states.shape[-2]
            out = benchmark.pedantic(rlhf.rollout, args=(task.mdp, policy, 2 * pairs, task.horizon, keys.fold(0)),
                                     rounds=20, warmup_rounds=2)
            assert out.states.shape == (seeds, 2 * pairs, task.horizon)
        elif phase == "label":
            def label():      # what the loop does: the pairs' step rewards, then the teacher
                return teacher.label(rlhf.step_rewards(task.true_reward, first),
                                     rlhf.step_rewards(task.true_reward, second), *scored[2:])
            out = benchmark.pedantic(label, rounds=20, warmup_rounds=2)
            assert out.prefer_first.shape == first.states.shape[:2]
        elif phase == "update":
            def fresh():
                return (RewardLearner(task.new_reward_model(keys), cfg.learner), first, second,
                        labels.prefer_first), {}
            loss = benchmark.pedantic(lambda learner, *a: learner.update(*a), setup=fresh, rounds=20,
                                      warmup_rounds=2)
            assert bool((torch.as_tensor(loss) > 0).all())
        else:                 # plan on the learned reward, then the exact return logged each round
            def plan_and_evaluate():
                planned = plan(task, reward, cfg)
                return rlhf.expected_returns(task.mdp, planned, task.true_reward, task.horizon)
            returns = benchmark.pedantic(plan_and_evaluate, rounds=20, warmup_rounds=2)
            assert returns.shape == (seeds,)
