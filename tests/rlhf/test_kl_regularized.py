"""The KL-regularised optimum (rlhf.kl_regularized_policy), its trajectory KL (rlhf.policy_kl), and
time-indexed policies in rollouts and exact evaluation, against an independent dense backward
induction written here."""

import math

import pytest
import torch

import rlhf


def dense_kl_backward_induction(P, reward, horizon, beta, reference, action_noise=0.0):
    """Loop-by-loop float64 optimum of E[Σ r] − β·KL(π‖π_ref) on dense executed transitions
    ``P[a, s, s']``: returns (pi[H, S, A], V[H + 1, S]). Chosen action a is executed as b with
    probability (1 − η)·[a = b] + η/A; rewards follow the executed action."""
    A, S, _ = P.shape
    P, r, ref = P.double(), reward.double(), reference.double()
    noise = (1 - action_noise) * torch.eye(A, dtype=torch.float64) + action_noise / A
    V = torch.zeros(horizon + 1, S, dtype=torch.float64)
    pi = torch.zeros(horizon, S, A, dtype=torch.float64)
    for t in reversed(range(horizon)):
        for s in range(S):
            q_exec = [float(r[s, b]) + sum(float(P[b, s, u]) * float(V[t + 1, u]) for u in range(S)) for b in range(A)]
            q = [sum(float(noise[a, b]) * q_exec[b] for b in range(A)) for a in range(A)]
            z = sum(float(ref[s, a]) * math.exp(q[a] / beta) for a in range(A))
            V[t, s] = beta * math.log(z)
            for a in range(A):
                pi[t, s, a] = float(ref[s, a]) * math.exp((q[a] - float(V[t, s])) / beta)
    return pi, V


def dense_expected_return_and_kl(P, start, pi, reward, reference, action_noise=0.0):
    """Forward state distributions: (E[Σ r], E[Σ KL]) of a time-indexed pi[H, S, A]."""
    A = P.shape[0]
    noise = (1 - action_noise) * torch.eye(A, dtype=torch.float64) + action_noise / A
    d = start.double()
    ret = kl = 0.0
    for t in range(pi.shape[0]):
        executed = pi[t].double() @ noise                          # [S, B]
        ret += float((d[:, None] * executed * reward.double()).sum())
        kl += float((d * (pi[t].double() * (pi[t].double().log() - reference.double().log())).sum(-1)).sum())
        d = torch.einsum("s,sb,bst->t", d, executed, P.double())
    return ret, kl


def dense_float64(mdp):
    """``P[a, s, s']`` of the executed action in float64 (``executed_transitions`` adds the
    probabilities of moves that land on one cell in float32)."""
    A, S = mdp.num_actions, mdp.num_states
    P = torch.zeros(A, S, S, dtype=torch.float64)
    for a in range(A):
        for s in range(S):
            for k in range(mdp.next_states.shape[-1]):
                P[a, s, int(mdp.next_states[a, s, k])] += float(mdp.probs[a, s, k])
    return P


def non_uniform_reference(S, A, rng):
    w = torch.rand(S, A, generator=rng, dtype=torch.float64) + 0.2
    return w / w.sum(-1, keepdim=True)


CASES = [  # (name, mdp factory, horizon, beta)
    ("grid-slip", lambda: rlhf.GridWorld(size=3, slip=0.3, goal=[(2, 1)]).mdp, 6, 0.7),
    ("grid", lambda: rlhf.GridWorld(size=3, slip=0.0).mdp, 5, 2.0),
    ("strings-noise", lambda: rlhf.StringTask("ABC", "CAB", slip=0.25).mdp, 3, 0.3),
    ("sparse", None, 4, 1.3),
]


def make_mdp(make, rng):
    if make is not None:
        return make()
    S, A, K = 5, 3, 2
    next_states = torch.randint(S, (A, S, K), generator=rng)
    probs = torch.rand(A, S, K, generator=rng) + 0.1
    return rlhf.TabularMDP.from_sparse(next_states, probs / probs.sum(-1, keepdim=True), torch.full((S,), 1.0 / S))


@pytest.mark.parametrize("uniform", [False, True], ids=["reference", "uniform"])
@pytest.mark.parametrize("name,make,horizon,beta", CASES, ids=[c[0] for c in CASES])
def test_matches_dense_backward_induction_and_the_optimum_identity(name, make, horizon, beta, uniform, rng):
    mdp = make_mdp(make, rng)
    S, A = mdp.num_states, mdp.num_actions
    reward = torch.randn(S, A, generator=rng, dtype=torch.float64)
    reference = torch.full((S, A), 1.0 / A, dtype=torch.float64) if uniform else non_uniform_reference(S, A, rng)
    P = dense_float64(mdp)
    expected_pi, expected_v = dense_kl_backward_induction(P, reward, horizon, beta, reference, mdp.action_noise)
    given = None if uniform else reference
    solution = rlhf.core.regularized.kl_regularized_solution(mdp, reward, horizon, beta, given)
    torch.testing.assert_close(solution.policy, expected_pi, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(solution.values, expected_v, rtol=1e-10, atol=1e-10)
    pi = rlhf.kl_regularized_policy(mdp, reward, horizon, beta, given)
    assert pi.shape == (horizon, S, A) and torch.equal(pi, solution.policy)
    # J* = E[R] − β·KL = start · V_0, with E[R] and KL by the library and by forward propagation
    j_star = float(mdp.start.double() @ expected_v[0])
    ret = rlhf.policy_return(mdp, pi, reward, horizon)
    kl = rlhf.policy_kl(mdp, pi, reference, horizon)
    dense_ret, dense_kl = dense_expected_return_and_kl(P, mdp.start, expected_pi, reward, reference, mdp.action_noise)
    assert ret == pytest.approx(dense_ret, rel=1e-10, abs=1e-10)
    assert kl == pytest.approx(dense_kl, rel=1e-10, abs=1e-12)
    assert ret - beta * kl == pytest.approx(j_star, rel=1e-10, abs=1e-10)


def test_float32_reward_agrees_with_float64(rng):
    mdp = rlhf.GridWorld(size=4, slip=0.2).mdp
    reward = torch.randn(16, 5, generator=rng)
    reference = non_uniform_reference(16, 5, rng)
    single = rlhf.kl_regularized_policy(mdp, reward, 8, 0.5, reference.float())
    double = rlhf.kl_regularized_policy(mdp, reward.double(), 8, 0.5, reference)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=1e-4, atol=1e-5)


def test_no_policy_does_better(rng):
    """Perturbing the optimum (or taking the reference, or soft VI's stationary policy) lowers J_β."""
    mdp = rlhf.GridWorld(size=3, slip=0.2).mdp
    reward = torch.randn(9, 5, generator=rng, dtype=torch.float64)
    reference = non_uniform_reference(9, 5, rng)
    beta, H = 0.8, 5
    pi = rlhf.kl_regularized_policy(mdp, reward, H, beta, reference)

    def objective(policy):
        return rlhf.policy_return(mdp, policy, reward, H) - beta * rlhf.policy_kl(mdp, policy, reference, H)

    best = objective(pi)
    assert objective(reference) < best
    for k in range(5):
        noisy = pi * torch.exp(0.3 * torch.randn(pi.shape, generator=rng, dtype=torch.float64))
        assert objective(noisy / noisy.sum(-1, keepdim=True)) < best, k


def test_uniform_reference_first_step_is_soft_value_iteration(rng):
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    reward = torch.randn(16, 5, generator=rng)
    beta = 0.5
    pi = rlhf.kl_regularized_policy(mdp, reward, 7, beta)
    q = rlhf.soft_value_iteration(mdp, reward, 7, temperature=1 / beta)
    torch.testing.assert_close(pi[0], rlhf.soft_policy(q, 1 / beta), rtol=1e-5, atol=1e-6)
    # the last step only sees the immediate reward
    torch.testing.assert_close(pi[-1], torch.softmax(reward / beta, -1), rtol=1e-5, atol=1e-6)


def test_state_reward_batch_and_zero_reference_entries(rng):
    mdp = rlhf.GridWorld(size=3, slip=0.0).mdp
    rewards = torch.randn(4, 9, generator=rng)
    batch = rlhf.kl_regularized_policy(mdp, rewards.unsqueeze(-1), 5, 1.0)
    assert batch.shape == (4, 5, 9, 5)
    for k in range(4):
        assert torch.equal(batch[k], rlhf.kl_regularized_policy(mdp, rewards[k], 5, 1.0))
    reference = torch.full((9, 5), 0.25)
    reference[:, 4] = 0.0                                        # never stay
    pi = rlhf.kl_regularized_policy(mdp, rewards[0], 5, 1.0, reference)
    assert bool((pi[..., 4] == 0).all()) and torch.allclose(pi.sum(-1), torch.ones(5, 9))
    assert math.isfinite(rlhf.policy_kl(mdp, pi, reference, 5))
    assert rlhf.policy_kl(mdp, rlhf.uniform_policy(mdp), reference, 5) == math.inf


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_bad_beta_is_refused(bad):
    mdp = rlhf.GridWorld(size=3).mdp
    with pytest.raises(ValueError, match="beta"):
        rlhf.kl_regularized_policy(mdp, torch.zeros(9), 3, bad)


def test_policy_kl_of_stationary_and_reference_itself(rng):
    mdp = rlhf.GridWorld(size=3, slip=0.3).mdp
    reference = non_uniform_reference(9, 5, rng)
    assert rlhf.policy_kl(mdp, reference, reference, 6) == 0.0
    policy = non_uniform_reference(9, 5, rng)
    stationary = rlhf.policy_kl(mdp, policy, reference, 6)
    repeated = rlhf.policy_kl(mdp, policy.expand(6, 9, 5), reference, 6)
    assert stationary == pytest.approx(repeated, rel=1e-14)
    _, dense_kl = dense_expected_return_and_kl(dense_float64(mdp), mdp.start, policy.expand(6, 9, 5),
                                               torch.zeros(9, 5), reference)
    assert stationary == pytest.approx(dense_kl, rel=1e-12)


def test_time_indexed_expected_returns_equal_stationary_ones(rng):
    mdp = rlhf.GridWorld(size=4, slip=0.2).mdp
    reward = torch.randn(16, 5, generator=rng)
    policies = torch.softmax(torch.randn(3, 16, 5, generator=rng), -1)
    stationary = rlhf.expected_returns(mdp, policies, reward, 9)
    repeated = rlhf.expected_returns(mdp, policies.unsqueeze(1).expand(3, 9, 16, 5), reward, 9, time_indexed=True)
    # (the stationary path's dense transitions add probabilities in float32: 5e-8 apart)
    torch.testing.assert_close(repeated, stationary, rtol=1e-6, atol=1e-6)


def test_time_indexed_rollout(rng, keys):
    mdp = rlhf.GridWorld(size=4, slip=0.2).mdp
    policy = torch.softmax(torch.randn(16, 5, generator=rng), -1)
    stationary = rlhf.rollout(mdp, policy, 50, 7, keys)
    repeated = rlhf.rollout(mdp, policy.expand(7, 16, 5), 50, 7, keys)
    assert torch.equal(stationary.states, repeated.states) and torch.equal(stationary.actions, repeated.actions)
    # a policy that moves right (action 1) at step 0 and stays (action 4) afterwards
    steps = torch.zeros(7, 16, 5)
    steps[0, :, 1] = 1.0
    steps[1:, :, 4] = 1.0
    traj = rlhf.rollout(mdp, steps, 20, 7, keys)
    assert bool((traj.actions[:, 0] == 1).all()) and bool((traj.actions[:, 1:] == 4).all())


def test_time_indexed_rollout_batch_is_seed_invariant(rng):
    mdp = rlhf.GridWorld(size=3, slip=0.1).mdp
    batch = rlhf.Keys.from_seeds(range(4))
    policy = torch.softmax(torch.randn(4, 6, 9, 5, generator=rng), -1)
    together = rlhf.rollout(mdp, policy, 30, 6, batch)
    for k in range(4):
        alone = rlhf.rollout(mdp, policy[k], 30, 6, batch[k])
        assert torch.equal(together.states[k], alone.states) and torch.equal(together.actions[k], alone.actions)
    shared = rlhf.rollout(mdp, policy[0], 30, 6, batch, time_indexed=True)
    assert torch.equal(shared.states[0], together.states[0])


def test_sampled_returns_agree_with_exact_evaluation(rng, keys):
    mdp = rlhf.GridWorld(size=3, slip=0.3).mdp
    reward = torch.randn(9, 5, generator=rng)
    pi = rlhf.kl_regularized_policy(mdp, reward, 6, 0.5)
    returns = rlhf.step_rewards(reward, rlhf.rollout(mdp, pi, 100_000, 6, keys)).double().sum(-1)
    error = 4 * float(returns.std()) / 100_000 ** 0.5                       # four standard errors
    assert float(returns.mean()) == pytest.approx(rlhf.policy_return(mdp, pi, reward, 6), abs=error)


@pytest.mark.parametrize("state_reward", [True, False])
@pytest.mark.parametrize("uniform", [True, False])
def test_exp_space_path_agrees_with_log_space(state_reward, uniform, rng, monkeypatch):
    """Deterministic noiseless MDPs take the exp-space path where the reward's range allows; a batch
    mixing rewards that fit and rewards that do not gives each the result it gets alone."""
    from rlhf.core import regularized

    mdp = rlhf.GridWorld(size=4, slip=0.0).mdp
    shape = (3, 16, 1) if state_reward else (3, 16, 5)
    rewards = torch.randn(shape, generator=rng, dtype=torch.float64)
    rewards[1] *= 200.0                                      # too wide a range for exp space at H = 7
    reference = None if uniform else non_uniform_reference(16, 5, rng)
    fits = regularized._exp_space_fits(rewards.transpose(-1, -2) / 0.5, 7, math.log(5) if uniform else 3.0)
    assert fits.tolist() == [True, False, True]
    fast = regularized.kl_regularized_solution(mdp, rewards, 7, 0.5, reference)
    alone = [regularized.kl_regularized_solution(mdp, rewards[k], 7, 0.5, reference) for k in range(3)]
    for k in range(3):
        assert torch.equal(fast.policy[k], alone[k].policy) and torch.equal(fast.values[k], alone[k].values)
    monkeypatch.setattr(regularized, "_exp_space_fits",
                        lambda r, h, spread: torch.zeros(r.shape[:-2], dtype=torch.bool))
    slow = regularized.kl_regularized_solution(mdp, rewards, 7, 0.5, reference)
    torch.testing.assert_close(fast.policy, slow.policy, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fast.values, slow.values, rtol=1e-9, atol=1e-9)
