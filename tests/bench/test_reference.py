"""The seed-style references double as oracles: they must agree with the fast package."""

import pytest
import torch
from helpers import keys_from

import rlhf
from bench.timings import reference
from rlhf.learning.learner import LearnerConfig, RewardLearner


@pytest.mark.parametrize("size,slip", [(3, 0.0), (4, 0.2), (6, 0.1)])
def test_transitions_by_search_equal_index_arithmetic(size, slip):
    torch.testing.assert_close(reference.dense_transitions_by_search(size, slip),
                               rlhf.GridWorld(size=size, slip=slip).mdp.dense_transitions())


def test_dense_planner_equals_sparse_planner(rng):
    task = rlhf.GridWorld(size=6, slip=0.1)
    reward = torch.randn(36, 5, generator=rng)
    P = reference.dense_transitions_by_search(6, 0.1)
    torch.testing.assert_close(reference.dense_soft_value_iteration(P, reward, 30, 0.9, 0.7),
                               rlhf.soft_value_iteration(task.mdp, reward, 30, 0.9, 0.7), rtol=1e-5, atol=1e-4)


def test_seed_update_agrees_with_the_closed_form_learner(rng):
    """Same data, same Adam: both fit the same preference logits.

    θ itself is compared loosely: where a state's true gradient is 0, autograd through
    ``log_softmax`` leaves rounding noise of ~1e-9 that Adam normalises into steps of
    up to ``lr`` (the closed form gives exactly 0 there).
    """
    task = rlhf.GridWorld(size=4, horizon=8)
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 60, 8, keys_from(rng)).split()
    prefer_first = (torch.rand(30, generator=rng) < 0.5).float()
    seed_agent = reference.SeedAgent(16)
    seed_agent.update(first.states, second.states, (1 - prefer_first).long())
    model = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
    RewardLearner(model, LearnerConfig("adam", 1e-2, 50)).update(first, second, prefer_first)
    from rlhf.preferences.models import score_margins          # the loop's Bradley–Terry logit of a learned reward
    torch.testing.assert_close(score_margins(model.reward(), first.states, second.states),
                               score_margins(seed_agent.reward().detach(), first.states, second.states),
                               rtol=1e-3, atol=0.05)
    torch.testing.assert_close(model.theta, seed_agent.theta.detach(), rtol=0, atol=0.01)


def test_seed_run_reference_learns_the_goal():
    history = reference.seed_gridworld_run(seed=0, rounds=40)
    assert len(history["loss"]) == 40
    distribution = torch.tensor(history["learned_distribution"])
    assert int(distribution.argmax()) == 24
