"""One contract, run over every task (in the spirit of dm_env's EnvironmentTestMixin)."""

import pytest
import torch
from helpers import keys_from

import rlhf

TASKS = {
    "grid-seed": lambda: rlhf.GridWorld(size=5, slip=0.0, start=[(0, 0)], goal=[(4, 4)], horizon=30),
    "grid-slip-uniform-start": lambda: rlhf.GridWorld(size=4, slip=0.2, goal=[(1, 2), (3, 3)], horizon=7),
    "strings-seed": lambda: rlhf.StringTask(vocab="ABC", target="ABC"),
    "strings-slip": lambda: rlhf.StringTask(vocab="ABCD", target="DAB", slip=0.3),
    "random-gridworld": lambda: rlhf.RandomGridWorld(seed=3),
    "chain": lambda: chain_task(),
}
try:                                     # the envs extra: imported environments keep the contract too
    import gymnasium  # noqa: F401
    import seals  # noqa: F401
    TASKS |= {"gymnasium-FrozenLake": lambda: rlhf.from_gymnasium("FrozenLake-v1"),
              "gymnasium-CliffWalking": lambda: rlhf.from_gymnasium("CliffWalking-v1", horizon=20),
              "seals-CliffWorld": lambda: rlhf.from_seals("seals/CliffWorld7x4-v0")}
except ImportError:
    pass


def chain_task():
    """A user's own MDP (the README's chain): 6 states, left and right, paid at the end."""
    S = 6
    right, left = torch.arange(1, S + 1).clamp(max=S - 1), torch.arange(-1, S - 1).clamp(min=0)
    start = torch.zeros(S)
    start[0] = 1.0
    mdp = rlhf.TabularMDP.from_sparse(torch.stack([left, right]).unsqueeze(-1), torch.ones(2, S, 1), start)
    reward = torch.zeros(S, 2)
    reward[S - 2:, 1] = 1.0
    return rlhf.TabularTask(mdp, reward, horizon=10, label="chain")


@pytest.fixture(params=sorted(TASKS))
def task(request):
    return TASKS[request.param]()


def test_mdp_shapes_and_rows_sum_to_one(task):
    mdp = task.mdp
    S, A = mdp.num_states, mdp.num_actions
    assert mdp.next_states.shape == mdp.probs.shape and mdp.next_states.shape[:2] == (A, S)
    dense = mdp.dense_transitions()
    assert dense.shape == (A, S, S)
    torch.testing.assert_close(dense.sum(-1), torch.ones(A, S))
    assert (dense >= 0).all()
    torch.testing.assert_close(mdp.start.sum(), torch.tensor(1.0))


def test_true_reward_and_reward_model_shapes(task, rng):
    S, A = task.mdp.num_states, task.mdp.num_actions
    assert task.true_reward.shape in {(S,), (S, A)}
    assert task.new_reward_model(rlhf.Keys.from_seeds([0])[0]).reward().shape == task.true_reward.shape
    low, high = task.reward_range()
    assert low == pytest.approx(float(task.true_reward.min())) and high == pytest.approx(float(task.true_reward.max()))


def test_rollouts_follow_the_transitions(task, rng):
    mdp = task.mdp
    policy = rlhf.uniform_policy(mdp)
    traj = rlhf.rollout(mdp, policy, 64, task.horizon, keys_from(rng))
    assert traj.states.shape == traj.actions.shape == (64, task.horizon)
    assert (mdp.start[traj.states[:, 0]] > 0).all()
    executed = mdp.executed_transitions            # rollouts record the executed action
    s, a, s_next = traj.states[:, :-1], traj.actions[:, :-1], traj.states[:, 1:]
    assert (executed[a, s, s_next] > 0).all()


def test_train_is_deterministic_and_reports_every_field(task):
    def run(seed):
        return rlhf.train(task, budget=40, seed=seed, pairs_per_round=20, heldout_pairs=50)
    a, b, c = run(3), run(3), run(4)
    assert a.history == b.history and a.metrics == b.metrics
    assert torch.equal(a.reward, b.reward)
    assert not torch.equal(a.reward, c.reward)
    assert len({len(v) for v in a.history.values()}) == 1 and len(a.history["loss"]) == 2
    assert {"converged", "pref_accuracy", "epic"} <= a.metrics.keys()
    assert a.metrics["converged"] in (0.0, 1.0)


def test_every_task_is_a_runtime_checkable_task(task):
    assert isinstance(task, rlhf.Task)
    assert not isinstance(object(), rlhf.Task) and not isinstance(task.mdp, rlhf.Task)
