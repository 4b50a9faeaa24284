"""Differentiable backward induction of optimal advantages (#29): the regret learner's kernel."""

import math

import pytest
import torch

import rlhf
from rlhf.core.advantages import DENSE_MAX_STATES, advantage_vjp, soft_advantages

TASKS = [
    pytest.param(lambda: rlhf.GridWorld(size=3, horizon=5), id="gridworld"),
    pytest.param(lambda: rlhf.GridWorld(size=3, slip=0.2, horizon=5), id="gridworld-slip"),
    pytest.param(lambda: rlhf.StringTask("ABC", "CAB", slip=0.2), id="strings-noise"),
    pytest.param(lambda: rlhf.RandomGridWorld(3), id="random-world"),
    pytest.param(lambda: rlhf.GridWorld(size=9, slip=0.1, horizon=6), id="gridworld-81-states"),
]


def reference_advantages(mdp, reward, horizon, discount, kappa):
    """``A_κ[A, S]`` in float64 from dense transitions, written independently of the kernel (autograd-able)."""
    P = mdp.executed_transitions.double()                                  # [A, S, S], no action noise
    eta = mdp.action_noise

    def soft_max(q):
        return q.amax(0) if math.isinf(kappa) else torch.logsumexp(kappa * q, 0) / kappa

    q = torch.zeros_like(reward)
    for _ in range(horizon):
        q = reward + discount * torch.einsum("ast,t->as", P, soft_max(q))
        q = (1 - eta) * q + eta * q.mean(0, keepdim=True)
    return q - soft_max(q)


@pytest.mark.parametrize("make", TASKS)
@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_at_kappa_infinity_they_are_rlhf_optimal_advantages_bit_for_bit(make, discount, rng):
    task = make()
    mdp, A, S = task.mdp, task.mdp.num_actions, task.mdp.num_states
    reward = torch.randn(4, S, A, generator=rng)
    advantages, _ = soft_advantages(mdp, reward.transpose(-1, -2), task.horizon, discount, math.inf)
    assert torch.equal(advantages.transpose(-1, -2), rlhf.optimal_advantages(mdp, reward, task.horizon, discount))
    one, _ = soft_advantages(mdp, reward[0].T, task.horizon, discount, math.inf)
    assert torch.equal(one.T, rlhf.optimal_advantages(mdp, reward[0], task.horizon, discount))
    state_reward = torch.randn(S, generator=rng)                       # [1, S] broadcast over actions
    advantages, _ = soft_advantages(mdp, state_reward.view(1, S), task.horizon, discount, math.inf)
    assert torch.equal(advantages.T, rlhf.optimal_advantages(mdp, state_reward, task.horizon, discount))


@pytest.mark.parametrize("make", TASKS)
@pytest.mark.parametrize("kappa", [0.7, 3.0, math.inf])
def test_values_and_vector_jacobian_products_match_autograd_of_an_independent_recurrence(make, kappa, rng):
    """Random rewards: the maxima are unique, so at κ = ∞ the subgradient is the gradient."""
    task = make()
    mdp, A, S, H = task.mdp, task.mdp.num_actions, task.mdp.num_states, task.horizon
    reward = torch.randn(A, S, generator=rng, dtype=torch.float64).requires_grad_()
    expected = reference_advantages(mdp, reward, H, 0.9, kappa)
    cotangents = torch.randn(3, A, S, generator=rng, dtype=torch.float64)
    advantages, weights = soft_advantages(mdp, reward.detach().expand(3, A, S), H, 0.9, kappa)
    products = advantage_vjp(mdp, weights, cotangents, 0.9)
    tolerance = 1e-12 if mdp.deterministic else 1e-6      # slip: the factored MDP's float32 move probabilities
    torch.testing.assert_close(advantages[0], expected.detach(), rtol=0, atol=tolerance)
    for m in range(3):
        gradient, = torch.autograd.grad(expected, reward, cotangents[m], retain_graph=True)
        torch.testing.assert_close(products[m], gradient, rtol=0, atol=10 * tolerance)


def test_the_dense_and_the_scatter_backward_agree(monkeypatch, rng):
    task = rlhf.RandomGridWorld(3)
    assert task.mdp.num_states <= DENSE_MAX_STATES
    r = torch.randn(2, 4, task.mdp.num_states, generator=rng, dtype=torch.float64)
    g = torch.randn(2, 4, task.mdp.num_states, generator=rng, dtype=torch.float64)
    _, weights = soft_advantages(task.mdp, r, task.horizon, 0.95, math.inf)
    dense = advantage_vjp(task.mdp, weights, g, 0.95)
    monkeypatch.setattr("rlhf.core.advantages.DENSE_MAX_STATES", 0)
    torch.testing.assert_close(advantage_vjp(task.mdp, weights, g, 0.95), dense, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", TASKS)
def test_the_soft_max_tends_to_the_hard_max_within_h_log_a_over_kappa(make, rng):
    """0 ≤ V^κ_i − V^∞_i ≤ i·log(A)/κ, so |A_κ − A_∞| ≤ H·log(A)/κ: the hard max is the limit."""
    task = make()
    mdp, A, S, H = task.mdp, task.mdp.num_actions, task.mdp.num_states, task.horizon
    reward = torch.randn(A, S, generator=rng, dtype=torch.float64)
    hard, _ = soft_advantages(mdp, reward, H, 1.0, math.inf)
    gaps = []
    for kappa in (1.0, 10.0, 100.0, 1000.0):
        soft, weights = soft_advantages(mdp, reward, H, 1.0, kappa)
        gaps.append(float((soft - hard).abs().max()))
        assert gaps[-1] <= H * math.log(A) / kappa + 1e-9
        torch.testing.assert_close(weights.sum(-2), torch.ones(H, S, dtype=torch.float64))   # policies
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.1


@pytest.mark.parametrize("make", TASKS)
@pytest.mark.parametrize("kappa", [2.0, math.inf])
def test_a_reward_s_advantages_and_products_do_not_depend_on_its_batch(make, kappa, rng):
    task = make()
    mdp, A, S, H = task.mdp, task.mdp.num_actions, task.mdp.num_states, task.horizon
    r, g = torch.randn(32, A, S, generator=rng), torch.randn(32, A, S, generator=rng)
    advantages, weights = soft_advantages(mdp, r, H, 0.9, kappa)
    products = advantage_vjp(mdp, weights, g, 0.9)
    for k in (0, 13, 31):
        alone, alone_weights = soft_advantages(mdp, r[k:k + 1], H, 0.9, kappa)
        assert torch.equal(alone[0], advantages[k]) and torch.equal(alone_weights[:, 0], weights[:, k])
        assert torch.equal(advantage_vjp(mdp, alone_weights, g[k:k + 1], 0.9)[0], products[k])


def test_ties_split_the_hard_max_s_gradient_evenly():
    """A constant reward ties every action: the greedy weights are uniform (the softmax's limit)."""
    task = rlhf.GridWorld(size=3, horizon=4)
    _, weights = soft_advantages(task.mdp, torch.zeros(1, 9), 4, 1.0, math.inf)
    assert torch.equal(weights, torch.full_like(weights, 1 / 5))
    with pytest.raises(ValueError, match="kappa must be > 0, got 0"):
        soft_advantages(task.mdp, torch.zeros(1, 9), 4, 1.0, 0)
