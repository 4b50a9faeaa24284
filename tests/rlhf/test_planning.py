import math

import pytest
import torch
from helpers import dense_hard_max_q

import rlhf


def brute_force_q(P, reward, horizon, discount, temperature, action_noise=0.0):
    """Loop-by-loop float64 soft VI on dense ``P[a, s, s']`` (executed actions), ``reward[s, a]``."""
    A, S, _ = P.shape
    P, r = P.double(), reward.double()
    q = torch.zeros(S, A, dtype=torch.float64)
    for _ in range(horizon):
        v = [math.log(sum(math.exp(temperature * float(q[s, a])) for a in range(A))) / temperature
             for s in range(S)]
        q_exec = torch.zeros(S, A, dtype=torch.float64)
        for s in range(S):
            for a in range(A):
                q_exec[s, a] = r[s, a] + discount * sum(float(P[a, s, t]) * v[t] for t in range(S))
        q = (1 - action_noise) * q_exec + action_noise * q_exec.mean(1, keepdim=True)
    return q


def random_sparse_mdp(rng, S=6, A=3, K=2):
    next_states = torch.randint(S, (A, S, K), generator=rng)
    probs = torch.rand(A, S, K, generator=rng) + 0.1
    probs = probs / probs.sum(-1, keepdim=True)
    return rlhf.TabularMDP.from_sparse(next_states, probs, torch.full((S,), 1.0 / S))


CASES = [  # (name, mdp factory, horizon, discount, temperature)
    ("grid-slip", lambda rng: rlhf.GridWorld(size=3, slip=0.3, goal=[(2, 1)]).mdp, 6, 0.9, 0.5),
    ("grid-hot", lambda rng: rlhf.GridWorld(size=3, slip=0.0).mdp, 5, 1.0, 2.5),
    ("sparse-random", random_sparse_mdp, 7, 0.8, 1.3),
    ("strings-noise", lambda rng: rlhf.StringTask("ABC", "CAB", slip=0.25).mdp, 3, 1.0, 0.7),
]


@pytest.mark.parametrize("name,make,horizon,discount,temperature", CASES, ids=[c[0] for c in CASES])
def test_soft_vi_matches_brute_force(name, make, horizon, discount, temperature, rng):
    mdp = make(rng)
    reward = torch.randn(mdp.num_states, mdp.num_actions, generator=rng)
    q = rlhf.soft_value_iteration(mdp, reward, horizon, discount, temperature)
    expected = brute_force_q(mdp.executed_transitions, reward, horizon, discount, temperature, mdp.action_noise)
    torch.testing.assert_close(q.double(), expected, rtol=1e-5, atol=1e-4)


def test_textbook_recurrence_on_dense_transitions(rng):
    """Without action noise, Q ← r + γ·P·V on ``dense_transitions()`` (what outside tools do)."""
    mdp = rlhf.GridWorld(size=4, slip=0.2).mdp
    reward = torch.randn(16, 5, generator=rng)
    P = mdp.dense_transitions()
    q = torch.zeros(16, 5)
    for _ in range(9):
        v = torch.logsumexp(0.5 * q, dim=-1) / 0.5
        q = reward + 0.95 * torch.einsum("ast,t->sa", P, v)
    torch.testing.assert_close(rlhf.soft_value_iteration(mdp, reward, 9, 0.95, 0.5), q)


def test_batched_equals_one_by_one(rng):
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    rewards = torch.randn(3, 16, 5, generator=rng)
    batched = rlhf.soft_value_iteration(mdp, rewards, 8, 0.9, 1.5)
    for b in range(3):
        torch.testing.assert_close(batched[b], rlhf.soft_value_iteration(mdp, rewards[b], 8, 0.9, 1.5))


def test_state_reward_broadcasts_over_actions(rng):
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    r = torch.randn(16, generator=rng)
    q = rlhf.soft_value_iteration(mdp, r, 5)
    torch.testing.assert_close(q, rlhf.soft_value_iteration(mdp, r.unsqueeze(-1).expand(16, 5), 5))
    torch.testing.assert_close(q, rlhf.soft_value_iteration(mdp, r.view(1, 16, 1), 5)[0])


def test_factored_and_sparse_paths_agree(rng):
    factored = rlhf.GridWorld(size=5, slip=0.3, goal=[(0, 4)]).mdp
    sparse = rlhf.TabularMDP.from_sparse(factored.next_states, factored.probs, factored.start)
    assert factored.is_factored and not sparse.is_factored
    reward = torch.randn(25, 5, generator=rng)
    torch.testing.assert_close(rlhf.soft_value_iteration(factored, reward, 12, 0.97, 0.8),
                               rlhf.soft_value_iteration(sparse, reward, 12, 0.97, 0.8))
    torch.testing.assert_close(factored.dense_transitions(), sparse.dense_transitions())


def test_policy_return_matches_dense_forward_propagation(rng):
    for mdp in (rlhf.GridWorld(size=6, slip=0.2).mdp, rlhf.StringTask("ABCD", "BAD", slip=0.2).mdp):
        S, A = mdp.num_states, mdp.num_actions
        policy = torch.softmax(torch.randn(S, A, generator=rng), -1)
        reward = torch.randn(S, A, generator=rng)
        P = mdp.dense_transitions()                                  # noise included: chosen action
        executed = policy @ mdp.executed_action_probs()
        d, expected = mdp.start.double(), 0.0
        for _ in range(7):
            expected += float(d @ (executed.double() * reward.double()).sum(-1))
            d = torch.einsum("s,sa,ast->t", d, policy.double(), P.double())
        assert rlhf.policy_return(mdp, policy, reward, 7) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("make", [lambda: rlhf.GridWorld(size=5, slip=0.2).mdp,            # factored
                                  lambda: rlhf.GridWorld(size=5).mdp,                      # deterministic
                                  lambda: rlhf.StringTask("ABCD", "BAD", slip=0.2).mdp])  # sparse
def test_backward_evaluation_path_agrees_with_dense_forward(rng, monkeypatch, make):
    """Above the dense-evaluation threshold returns come by backward induction; both must agree,
    for state and state-action rewards, and each policy of a batch as alone."""
    from rlhf.core import planning
    mdp = make()
    S, A = mdp.num_states, mdp.num_actions
    policies = torch.softmax(torch.randn(6, S, A, generator=rng), -1)
    rewards = [torch.randn(S, generator=rng), torch.randn(S, A, generator=rng)]
    dense = [rlhf.expected_returns(mdp, policies, r, 9) for r in rewards]
    monkeypatch.setattr(planning, "_DENSE_EVAL_MAX_STATES", 0)
    for r, expected in zip(rewards, dense):
        backward = rlhf.expected_returns(mdp, policies, r, 9)
        torch.testing.assert_close(backward, expected, rtol=1e-6, atol=1e-9)   # float32 inputs, two roundings
        for k in range(6):
            assert torch.equal(rlhf.expected_returns(mdp, policies[k:k + 1], r, 9)[0], backward[k])


@pytest.mark.parametrize("kwargs,needle", [
    ({"horizon": 0}, "horizon"), ({"temperature": 0.0}, "temperature"),
    ({"temperature": -1.0}, "temperature"), ({"discount": 1.5}, "discount"),
])
def test_bad_planner_arguments_name_the_argument(kwargs, needle):
    mdp = rlhf.GridWorld(size=3).mdp
    args = {"horizon": 3, "discount": 1.0, "temperature": 1.0} | kwargs
    with pytest.raises(ValueError, match=needle):
        rlhf.soft_value_iteration(mdp, torch.zeros(9), **args)


def test_wrong_reward_shape_is_rejected():
    with pytest.raises(ValueError, match="reward must be"):
        rlhf.soft_value_iteration(rlhf.GridWorld(size=3).mdp, torch.zeros(10), 3)


@pytest.mark.parametrize("chunk", [10**9, 4], ids=["whole", "chunks-of-4"])
@pytest.mark.parametrize("name,make,horizon,discount,temperature", CASES, ids=[c[0] for c in CASES])
def test_buffered_large_mdp_path_equals_small_path(name, make, horizon, discount, temperature, chunk, rng,
                                                   monkeypatch):
    """Large MDPs take the buffered base-2 loop, chunk by chunk over states (the last chunk
    ragged here): force both on small MDPs and compare with the allocate-freely loop."""
    from rlhf.core import soft_backups
    mdp = make(rng)
    rewards = torch.randn(2, mdp.num_states, mdp.num_actions, generator=rng)
    state_rewards = torch.randn(2, mdp.num_states, 1, generator=rng)     # the state-reward shortcut
    expected = [rlhf.soft_value_iteration(mdp, x, horizon, discount, temperature)
                for x in (rewards, state_rewards, state_rewards[0, :, 0])]
    monkeypatch.setattr(soft_backups, "_BUFFERED_FROM", 0)
    monkeypatch.setattr(soft_backups, "_CHUNK_STATES", chunk)
    monkeypatch.setattr(soft_backups, "_EXP_SPACE_MAX_LOG_RANGE", -1.0)     # the log-space loop only
    for x, small in zip((rewards, state_rewards, state_rewards[0, :, 0]), expected):
        torch.testing.assert_close(rlhf.soft_value_iteration(mdp, x, horizon, discount, temperature), small)
    torch.testing.assert_close(rlhf.soft_value_iteration(mdp, rewards[0], horizon, discount, temperature),
                               expected[0][0])


EXP_SPACE_CASES = [  # deterministic, undiscounted, noiseless: the exp-space planner applies
    ("grid", lambda: rlhf.GridWorld(size=4, slip=0.0, goal=[(1, 2)]).mdp, 11, 1.7),
    ("strings", lambda: rlhf.StringTask("ABCD", "DAB").mdp, 3, 0.6),
]


@pytest.mark.parametrize("dense_max,chunk", [(0, 10**9), (0, 4), (10**6, 10**9)],
                         ids=["gather", "gather-chunks-of-4", "dense"])
@pytest.mark.parametrize("name,make,horizon,temperature", EXP_SPACE_CASES, ids=[c[0] for c in EXP_SPACE_CASES])
def test_exp_space_planner_equals_log_space(name, make, horizon, temperature, dense_max, chunk, rng, monkeypatch):
    from rlhf.core import soft_backups
    mdp = make()
    rewards = [torch.randn(2, mdp.num_states, mdp.num_actions, generator=rng),
               torch.randn(mdp.num_states, mdp.num_actions, generator=rng),
               torch.randn(mdp.num_states, generator=rng)]
    monkeypatch.setattr(soft_backups, "_EXP_SPACE_DENSE_MAX_STATES", dense_max)
    monkeypatch.setattr(soft_backups, "_CHUNK_STATES", chunk)
    fast = [rlhf.soft_value_iteration(mdp, r, horizon, 1.0, temperature) for r in rewards]
    monkeypatch.setattr(soft_backups, "_EXP_SPACE_MAX_LOG_RANGE", -1.0)     # always the log-space loop
    for r, q in zip(rewards, fast):
        torch.testing.assert_close(q, rlhf.soft_value_iteration(mdp, r, horizon, 1.0, temperature),
                                   rtol=1e-5, atol=1e-4)


def test_rewards_too_spread_for_exp_space_fall_back_to_log_space(rng):
    """A spread of 10³ per step would underflow exp(τ·V) in float64: the log-space loop answers."""
    mdp = rlhf.GridWorld(size=3, slip=0.0).mdp
    reward = torch.randn(9, 5, generator=rng) * 1000
    q = rlhf.soft_value_iteration(mdp, reward, 4, 1.0, 1.0)
    P, expected = mdp.dense_transitions().double(), torch.zeros(9, 5, dtype=torch.float64)
    for _ in range(4):                                # the textbook recurrence, stable logsumexp
        expected = reward.double() + torch.einsum("ast,t->sa", P, torch.logsumexp(expected, dim=-1))
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.double(), expected, rtol=1e-5, atol=1e-2)


def test_a_large_single_reward_takes_the_buffered_base_2_loop_and_a_batch_does_not(monkeypatch):
    """Base 2 and reused buffers are for one large reward; a batch of rewards always takes the
    plain base-e loop (exp2's SIMD tail would make a reward's bits depend on its neighbours)."""
    from rlhf.core import soft_backups
    calls = []
    real = soft_backups._log2_sum_exp2
    monkeypatch.setattr(soft_backups, "_log2_sum_exp2", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(soft_backups, "_BUFFERED_FROM", 5 * 16)          # a 4×4 grid counts as large
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    reward = torch.randn(16, generator=torch.Generator().manual_seed(0))
    single = rlhf.soft_value_iteration(mdp, reward, 6)
    assert calls
    calls.clear()
    batch = rlhf.soft_value_iteration(mdp, reward.view(1, 16, 1).expand(2, 16, 1), 6)
    assert not calls
    torch.testing.assert_close(batch[0], single)


@pytest.mark.parametrize("make", [lambda: rlhf.GridWorld(size=3, slip=0.2, horizon=5),
                                  lambda: rlhf.GridWorld(size=3, horizon=4),
                                  lambda: rlhf.StringTask("ABC", "CAB", slip=0.3)])
def test_hard_max_planning_equals_an_independent_dynamic_program(rng, make):
    task = make()
    S, A = task.mdp.num_states, task.mdp.num_actions
    for reward in (task.true_reward, torch.randn(S, A, generator=rng)):
        for discount in (1.0, 0.9):
            q = rlhf.soft_value_iteration(task.mdp, reward, task.horizon, discount, math.inf)
            torch.testing.assert_close(q.double(), dense_hard_max_q(task.mdp, reward, task.horizon, discount),
                                       atol=1e-5, rtol=1e-6)
    # the soft recurrence tends to it as τ grows
    soft = rlhf.soft_value_iteration(task.mdp, task.true_reward, task.horizon, temperature=1e3)
    hard = rlhf.soft_value_iteration(task.mdp, task.true_reward, task.horizon, temperature=math.inf)
    torch.testing.assert_close(soft, hard, atol=task.horizon * math.log(A) / 1e3 + 1e-4, rtol=0)


def test_hard_max_is_batch_invariant_and_greedy_policies_split_ties(rng):
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    rewards = torch.randn(5, 16, 1, generator=rng)
    together = rlhf.soft_value_iteration(mdp, rewards, 7, temperature=math.inf)
    assert all(torch.equal(rlhf.soft_value_iteration(mdp, rewards[k:k + 1], 7, temperature=math.inf)[0],
                           together[k]) for k in range(5))
    q = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    assert rlhf.soft_policy(q, math.inf).tolist() == [[0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]]
