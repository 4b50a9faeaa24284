"""The advantage learner (#14; named regret until #29): Knox et al. (2024), Bradley–Terry on summed learned
optimal advantages Â[S, A], acted on greedily."""

import math

import pytest
import torch

import rlhf


def dense_return(mdp, policy, reward, horizon):
    """Expected undiscounted return of a stationary policy, by forward propagation in float64 (loops)."""
    P = mdp.dense_transitions().double()                             # [A, S, S]
    pi, r = policy.double(), reward.double().reshape(policy.shape[0], -1)     # [S, A] or [S, 1]
    d = mdp.start.double()
    total = 0.0
    for _ in range(horizon):
        total += float((d.unsqueeze(-1) * pi * r).sum())
        d = sum(((d * pi[:, a]) @ P[a]) for a in range(P.shape[0]))
    return total


def test_many_noiseless_regret_pairs_recover_the_optimal_advantages_of_a_small_world():
    world = rlhf.RandomGridWorld(3)                                   # 6 x 5, goal 1, roadblocks
    result = rlhf.train(world, teacher="regret+oracle", budget=3000, learner_model="advantage")
    assert result.reward.shape == (world.mdp.num_states, world.mdp.num_actions)
    assert result.metrics["epic"] < 0.1                               # Â ≈ A* up to scale and shift
    assert result.metrics["near_optimal"] == 1.0 and result.metrics["converged"] == 1.0
    assert result.metrics["pref_accuracy"] > 0.95


def test_it_is_the_partial_learner_s_fit_acted_on_greedily_instead_of_planned_on():
    """With pairs that do not depend on the learned model (uniform queries), both learners fit the same
    table; the advantage learner's metrics are those of acting greedily on it, checked by an independent
    dynamic program."""
    world = rlhf.RandomGridWorld(1)
    settings = dict(teacher="regret+boltzmann:1", budget=600, pairs_per_round=300, query="uniform")
    partial = rlhf.train(world, **settings)
    advantage = rlhf.train(world, learner_model="advantage", **settings)
    assert torch.equal(partial.reward, advantage.reward)
    table = advantage.reward
    greedy = (table == table.amax(-1, keepdim=True)).double()
    greedy /= greedy.sum(-1, keepdim=True)
    H = world.horizon
    uniform = torch.full_like(greedy, 1 / world.mdp.num_actions)
    from helpers import dense_hard_max_q
    v_star = float((world.mdp.start.double() * dense_hard_max_q(world.mdp, world.true_reward, H).amax(-1)).sum())
    j_uniform = dense_return(world.mdp, uniform, world.true_reward, H)
    expected = (dense_return(world.mdp, greedy, world.true_reward, H) - j_uniform) / (v_star - j_uniform)
    assert advantage.metrics["scaled_return"] == pytest.approx(expected, abs=1e-6)
    assert partial.metrics["scaled_return"] == pytest.approx(
        rlhf.scaled_return(world.mdp, table, world.true_reward, H), abs=0)
    assert advantage.metrics["scaled_return"] != partial.metrics["scaled_return"]
    advantages = rlhf.optimal_advantages(world.mdp, world.true_reward, H)
    assert advantage.metrics["epic"] == rlhf.epic_distance(table, advantages)
    assert partial.metrics["epic"] == rlhf.epic_distance(table, world.true_reward)


def test_on_policy_pairs_come_from_the_softmax_of_the_learned_advantages():
    """The history's true return after each round is that of softmax(Â), not of planning on Â."""
    task = rlhf.GridWorld(size=4, horizon=8)
    tables = []
    result = rlhf.train(task, budget=60, pairs_per_round=20, learner_model="advantage", heldout_pairs=50,
                        on_round=lambda record: tables.append(record.reward_model.reward().clone()))
    assert len(tables) == 3 and tables[0].shape == (16, 5)
    for table, logged in zip(tables, result.history["true_return"], strict=True):
        policy = rlhf.soft_policy(table)
        assert logged == pytest.approx(dense_return(task.mdp, policy, task.true_reward, task.horizon), rel=1e-7)
        planned = rlhf.plan(task, table, task.defaults)
        assert logged != pytest.approx(float(rlhf.expected_returns(task.mdp, planned, task.true_reward, 8)),
                                       rel=1e-4)
    # a learned advantage is not a reward: the gridworld's reward metrics (goal, TV) do not apply
    assert set(result.metrics) == {"converged", "near_optimal", "scaled_return", "epic", "pref_accuracy"}
    assert not math.isnan(result.metrics["scaled_return"])


def test_an_unknown_learner_model_is_one_line_naming_the_field():
    with pytest.raises(ValueError, match="learner_model must be one of partial, advantage, regret, got 'contrarian'"):
        rlhf.TrainConfig(budget=10, learner_model="contrarian")
