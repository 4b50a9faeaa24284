"""Gymnasium toy-text and seals tabular environments as tasks (#15), checked against the environments themselves."""

import math

import numpy as np
import pytest
import torch

import rlhf

gymnasium = pytest.importorskip("gymnasium")
seals = pytest.importorskip("seals")
from rlhf.tasks.ecosystem import from_gymnasium, from_seals  # noqa: E402

GYM = {"FrozenLake-v1": {}, "FrozenLake8x8-v1": {}, "CliffWalking-v1": {"horizon": 60},
       "CliffWalkingSlippery-v1": {"horizon": 60}, "Taxi-v4": {}}
SEALS = ["seals/CliffWorld7x4-v0", "seals/Random-v0", "seals/Branching-v0", "seals/InitShiftTrain-v0",
         "seals/RiskyPath-v0"]


def gym_model(env_id):
    env = gymnasium.make(env_id)
    return env.unwrapped.P, np.asarray(env.unwrapped.initial_state_distrib), env.spec


def test_imported_transitions_rewards_and_starts_are_the_environment_s():
    for env_id in ("FrozenLake-v1", "CliffWalking-v1", "CliffWalkingSlippery-v1"):
        P, start, _ = gym_model(env_id)
        task = from_gymnasium(env_id, horizon=10)
        S = len(P)
        dense = task.mdp.dense_transitions().double()                    # [A, S + 1, S + 1]
        assert dense.shape == (4, S + 1, S + 1)
        torch.testing.assert_close(dense.sum(-1), torch.ones(4, S + 1, dtype=torch.float64))
        expected = torch.zeros_like(dense)
        reward = torch.zeros(S + 1, 4, dtype=torch.float64)
        for s in range(S):
            for a in range(4):
                for prob, nxt, r, terminated in P[s][a]:
                    expected[a, s, S if terminated else nxt] += prob
                    reward[s, a] += prob * r
        expected[:, S, S] = 1.0                                          # the absorbing state
        torch.testing.assert_close(dense, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(task.true_reward.double(), reward, atol=1e-6, rtol=0)
        assert float(task.true_reward[S].abs().max()) == 0.0
        torch.testing.assert_close(task.mdp.start.double(), torch.as_tensor(np.append(start, 0.0)))


def test_large_environments_stay_sparse():
    task = from_gymnasium("Taxi-v4")
    assert tuple(task.mdp.next_states.shape) == (6, 501, 1) and task.horizon == 200


def independent_gym_optimum(env_id, horizon):
    """max over non-stationary policies of the expected return in ``horizon`` steps, from P alone."""
    P, start, _ = gym_model(env_id)
    v = np.zeros(len(P))
    for _ in range(horizon):
        v = np.array([max(sum(p * (r + (0.0 if term else v[nxt])) for p, nxt, r, term in P[s][a])
                          for a in range(len(P[s]))) for s in range(len(P))])
    return float(start @ v)


def independent_seals_optimum(env_id):
    env = gymnasium.make(env_id)
    H = env.unwrapped.horizon or env.spec.max_episode_steps
    env = env.unwrapped
    T, R, start = env.transition_matrix, env.reward_matrix, env.initial_state_dist
    S, A, _ = T.shape
    r = R if R.ndim == 2 else (T * R).sum(-1) if R.ndim == 3 else np.repeat(R[:, None], A, axis=1)
    v = np.zeros(S)
    for _ in range(H):
        v = (r + T @ v).max(-1)
    return float(start @ v)


def optimum(task):
    q = rlhf.soft_value_iteration(task.mdp, task.true_reward, task.horizon, 1.0, math.inf)
    return float((task.mdp.start.double() * q.amax(-1).double()).sum())


def test_the_optimum_matches_gymnasium_s_published_values_and_an_independent_program():
    assert round(optimum(from_gymnasium("FrozenLake-v1")), 2) == 0.74             # H = 100
    assert round(optimum(from_gymnasium("FrozenLake8x8-v1")), 2) == 0.91          # H = 200
    for env_id, kwargs in GYM.items():
        task = from_gymnasium(env_id, **kwargs)
        if env_id != "Taxi-v4":                                                # 500 states: too slow in pure Python
            assert optimum(task) == pytest.approx(independent_gym_optimum(env_id, task.horizon), abs=1e-6 * 100)
    for env_id in SEALS:
        assert optimum(from_seals(env_id)) == pytest.approx(independent_seals_optimum(env_id), abs=1e-4)


def test_rollouts_match_the_environment_s_own_step_statistics():
    for env_id in ("FrozenLake-v1", "CliffWalkingSlippery-v1"):
        env = gymnasium.make(env_id)
        env.reset(seed=0)
        task = from_gymnasium(env_id, horizon=10)
        dense = task.mdp.dense_transitions()
        n = 3000
        for s, a in [(0, 1), (5 if env_id.startswith("Frozen") else 13, 2), (6, 0)]:
            counts = np.zeros(task.mdp.num_states)
            for _ in range(n):
                env.unwrapped.s = s
                _, _, terminated, _, _ = env.step(a)
                counts[task.mdp.num_states - 1 if terminated else int(env.unwrapped.s)] += 1
            p = dense[a, s].double().numpy()
            sigma = np.sqrt(n * p * (1 - p)) + 1e-9
            assert (np.abs(counts - n * p) <= 5 * sigma + 1e-9).all(), (env_id, s, a)
            assert counts.sum() == n


def test_seals_rewards_of_every_shape_are_read():
    for env_id in SEALS:
        env = gymnasium.make(env_id).unwrapped
        task = from_seals(env_id)
        T, R = env.transition_matrix, env.reward_matrix
        S, A, _ = T.shape
        expected = R if R.ndim == 2 else (T * R).sum(-1) if R.ndim == 3 else np.repeat(R[:, None], A, axis=1)
        torch.testing.assert_close(task.true_reward.double(), torch.as_tensor(expected), atol=1e-5, rtol=1e-6)
        torch.testing.assert_close(task.mdp.dense_transitions().double(),
                                   torch.as_tensor(T.transpose(1, 0, 2)).double(), atol=1e-6, rtol=0)
        assert task.horizon == (env.horizon or gymnasium.spec(env_id).max_episode_steps) and task.name == "seals"


def test_bad_environments_are_one_line_errors():
    with pytest.raises(ValueError, match="CliffWalking-v1 registers no max_episode_steps: pass horizon="):
        from_gymnasium("CliffWalking-v1")
    with pytest.raises(ValueError, match="CartPole-v1 is not a tabular Gymnasium environment"):
        from_gymnasium("CartPole-v1")
    with pytest.raises(ValueError, match="unknown environment id 'FrozenPond-v9'"):
        from_gymnasium("FrozenPond-v9")
    with pytest.raises(ValueError, match="is not a tabular seals environment"):
        from_seals("FrozenLake-v1")
    with pytest.raises(ValueError, match="FrozenLake-v1 cannot be made: .*no_such_option"):
        from_gymnasium("FrozenLake-v1", no_such_option=1)


def test_an_imported_task_learns_with_the_loop_unchanged():
    task = from_seals("seals/Random-v0")
    result = rlhf.train(task, budget=300, teacher="oracle", heldout_pairs=100)
    assert set(result.metrics) >= {"converged", "near_optimal", "scaled_return", "epic", "pref_accuracy",
                                   "greedy_return", "optimal_return"}
    assert result.metrics["near_optimal"] == 1.0 and result.metrics["pref_accuracy"] > 0.9
    assert result.metrics["optimal_return"] == pytest.approx(optimum(task))
    assert result.metrics["greedy_return"] <= result.metrics["optimal_return"] + 1e-6
