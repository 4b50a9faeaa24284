"""Results from the literature, reproduced on exact optima; every expected value is derived here from
the papers' definitions, independently of the library's solvers.

* Rafailov et al. (2023): under a Bradley–Terry teacher, the population DPO optimum is the
  KL-regularised optimum of the teacher's reward, π ∝ π_ref·exp(r/β).
* Azar et al. (2023), §5.3–5.4: on a bandit with one certain preference, and on the three-action
  dataset {a ≻ b, b ≻ c, a ≻ c}, IPO's optimum is the least-squares solution of its own population
  loss at every τ, while DPO's loss has no finite minimiser: DPO goes greedy at every τ.
* Rafailov et al. (2024), "From r to Q*": token by token, β·log π*(a|s)/π_ref(a|s) = Q*(s, a) − V*(s)
  of the KL-regularised (soft) Bellman equations.
* Hejna et al. (2023), CPL: from regret preferences (summed optimal advantages of the
  maximum-entropy problem at temperature α), CPL's population optimum is π*(a|s) = exp(A*(s, a)/α),
  in a stochastic MDP; DPO's, from partial-return preferences in the same MDP, is not the
  KL-regularised optimum (its implicit reward misses the transitions' noise).
"""

import itertools
import math

import pytest
import torch

import rlhf


def dense(mdp):
    """Float64 ``P[a, s, s']`` of the executed action."""
    A, S, K = mdp.next_states.shape
    P = torch.zeros(A, S, S, dtype=torch.float64)
    for a, s, k in itertools.product(range(A), range(S), range(K)):
        P[a, s, int(mdp.next_states[a, s, k])] += float(mdp.probs[a, s, k])
    return P


def soft_bellman(P, reward, horizon, beta, reference):
    """``(Q[H, S, A], V[H + 1, S])`` of max E[Σ r] − β·KL(π‖π_ref), loop by loop (no action noise)."""
    A, S, _ = P.shape
    Q = torch.zeros(horizon, S, A, dtype=torch.float64)
    V = torch.zeros(horizon + 1, S, dtype=torch.float64)
    for t in reversed(range(horizon)):
        for s in range(S):
            for a in range(A):
                Q[t, s, a] = float(reward[s, a]) + sum(float(P[a, s, u]) * float(V[t + 1, u]) for u in range(S))
            V[t, s] = beta * math.log(sum(float(reference[s, a]) * math.exp(float(Q[t, s, a]) / beta)
                                          for a in range(A)))
    return Q, V


def random_reference(S, A, seed):
    w = torch.rand(S, A, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.3
    return w / w.sum(-1, keepdim=True)


# ------------------------------------------------------------------ Rafailov et al. 2023
@pytest.mark.parametrize("beta,teacher_beta", [(0.2, 1.0), (1.0, 2.0), (3.0, 0.5)])
def test_population_dpo_optimum_is_the_kl_regularised_optimum_of_the_teachers_reward(beta, teacher_beta):
    task = rlhf.StringTask(vocab="ABC", target="ABCABC", reward="random:5")
    reference = random_reference(6, 3, seed=1)
    pop = rlhf.PreferenceData.population(task, f"boltzmann:{teacher_beta}")
    L = 6
    # the closed form: position t's token distribution is π_ref(·|t)·exp(β_T·r(t, ·)/β), normalised
    expected = reference * torch.exp(teacher_beta * task.true_reward.double() / beta)
    expected = expected / expected.sum(-1, keepdim=True)
    for method in ("dpo", "rlhf"):
        result = rlhf.align(task, pop, method=method, beta=beta, reference=reference)
        policy = result.policy if result.policy.dim() == 2 else result.policy[torch.arange(L), torch.arange(L)]
        torch.testing.assert_close(policy.double(), expected, atol=1e-8, rtol=0)
    planned = rlhf.kl_regularized_policy(task.mdp, teacher_beta * task.true_reward.double(), L, beta, reference)
    torch.testing.assert_close(planned[torch.arange(L), torch.arange(L)], expected, atol=1e-12, rtol=0)


# ------------------------------------------------------------------ Azar et al. 2023, §5.3–5.4
def bandit_data(task, pairs):
    return rlhf.PreferenceData.from_pairs(task, pairs)


TAUS = [0.1, 0.3, 1.0, 3.0]


@pytest.mark.parametrize("tau", TAUS)
def test_one_certain_preference(tau):
    """Two arms, a ≻ b with certainty, uniform reference. IPO's population loss (h(a, b) − 1/(2τ))² is
    minimised at log π(a)/π(b) = 1/(2τ); DPO's, −log σ(τ·h), falls forever: π(b) → 0 whatever τ."""
    task = rlhf.StringTask.bandit([1.0, 0.0])
    data = bandit_data(task, [("a", "b")])
    ipo = rlhf.align(task, data, method="ipo", beta=tau, exact=True)
    expected = torch.sigmoid(torch.tensor(1 / (2 * tau), dtype=torch.float64))
    assert float(ipo.policy[0, 0]) == pytest.approx(float(expected), abs=1e-12)
    dpo = rlhf.align(task, data, method="dpo", beta=tau, exact=True)
    assert dpo.metrics["solver_bounded"] == 0.0 and dpo.policy[0].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("tau", TAUS)
def test_three_actions_total_order(tau):
    """D = {a ≻ b, b ≻ c, a ≻ c}, uniform reference. IPO: least squares of x_a − x_b, x_b − x_c, x_a − x_c
    against 1/(2τ) (x = log π/π_ref), solved here by the normal equations; DPO: greedy on a."""
    task = rlhf.StringTask.bandit([1.0, 0.5, 0.0])
    data = bandit_data(task, [("a", "b"), ("b", "c"), ("a", "c")])
    design = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    target = torch.full((3,), 1 / (2 * tau), dtype=torch.float64)
    x = torch.linalg.lstsq(design, target).solution                # minimum-norm: the offset does not matter
    expected = torch.softmax(x, 0)
    assert float(x[0] - x[1]) == pytest.approx(1 / (3 * tau))      # the derivation by hand: 2/3 of 1/(2τ)
    ipo = rlhf.align(task, data, method="ipo", beta=tau, exact=True)
    torch.testing.assert_close(ipo.policy[0], expected, atol=1e-12, rtol=0)
    dpo = rlhf.align(task, data, method="dpo", beta=tau, exact=True)
    assert dpo.metrics["solver_bounded"] == 0.0 and dpo.policy[0].tolist() == [1.0, 0.0, 0.0]


def test_trained_by_the_optimiser_ipo_settles_and_dpo_keeps_going_greedy():
    """Azar et al.'s figures, by the batched optimiser: over training, IPO's π(a) settles at its optimum
    while DPO's keeps rising towards 1, at every τ."""
    task = rlhf.StringTask.bandit([1.0, 0.5, 0.0])
    data = bandit_data(task, [("a", "b"), ("b", "c"), ("a", "c")])
    for tau in (0.1, 1.0):
        exact = rlhf.align(task, data, method="ipo", beta=tau, exact=True).policy[0, 0]
        ipo = [float(rlhf.align(task, data, method="ipo", beta=tau, steps=n, lr=0.01).policy[0, 0])
               for n in (2000, 4000)]
        assert ipo[1] == pytest.approx(float(exact), abs=1e-3)
        dpo = [float(rlhf.align(task, data, method="dpo", beta=tau, steps=n, lr=0.01).policy[0, 0])
               for n in (500, 2000, 4000)]
        assert dpo[0] < dpo[1] < dpo[2] and dpo[2] > 0.99 and dpo[2] > ipo[1]


# ------------------------------------------------------------------ Rafailov et al. 2024
@pytest.mark.parametrize("beta", [0.3, 2.0])
def test_token_level_identity_of_the_dpo_optimum(beta):
    """β·log π*(a|s)/π_ref(a|s) = Q*(s, a) − V*(s) at every position s of the token MDP, for the population
    DPO optimum under a Bradley–Terry teacher (its reward: β_T·r), with Q*, V* of the soft Bellman
    equations computed here."""
    task = rlhf.StringTask(vocab="ABCD", target="ABCAB", reward="random:9")
    L, teacher_beta = 5, 1.5
    reference = random_reference(L, 4, seed=4)
    pop = rlhf.PreferenceData.population(task, f"boltzmann:{teacher_beta}")
    policy = rlhf.align(task, pop, method="dpo", beta=beta, reference=reference).policy
    Q, V = soft_bellman(dense(task.mdp), teacher_beta * task.true_reward.double(), L, beta, reference)
    positions = torch.arange(L)
    advantage = Q[positions, positions] - V[positions, positions].unsqueeze(-1)          # [L, V]
    torch.testing.assert_close(beta * torch.log(policy / reference), advantage, atol=1e-8, rtol=0)


# ------------------------------------------------------------------ Hejna et al. 2023
def small_stochastic_task():
    """Three states, two actions, two successors each with random probabilities, start in state 0."""
    g = torch.Generator().manual_seed(7)
    next_states = torch.randint(3, (2, 3, 2), generator=g)
    probs = torch.rand(2, 3, 2, generator=g) + 0.2
    mdp = rlhf.TabularMDP.from_sparse(next_states, probs / probs.sum(-1, keepdim=True), torch.tensor([1.0, 0, 0]))
    reward = torch.randn(3, 2, generator=g)
    return rlhf.TabularTask(mdp, reward, horizon=3)


def test_cpl_recovers_the_maximum_entropy_optimum_from_regret_preferences():
    task = small_stochastic_task()
    alpha, H = 0.7, 3
    uniform = torch.full((3, 2), 0.5, dtype=torch.float64)
    Q, V = soft_bellman(dense(task.mdp), task.true_reward.double(), H, alpha, uniform)
    # the maximum-entropy advantage at temperature α: Q − α·log Σ_a exp(Q/α) (the uniform reference's
    # V plus α·log A), so exp(A/α) sums to 1 over actions
    advantage = Q - (V[:H] + alpha * math.log(2)).unsqueeze(-1)                  # [H, S, A]
    optimum = torch.exp(advantage / alpha)
    torch.testing.assert_close(optimum.sum(-1), torch.ones(H, 3, dtype=torch.float64))
    pop = rlhf.PreferenceData.population(task, "boltzmann:1", scores=advantage)
    cpl = rlhf.align(task, pop, method="cpl", beta=alpha, time_indexed=True)
    assert cpl.metrics["solver_converged"] == 1.0
    reached = torch.zeros(H, 3, dtype=torch.bool)                               # (step, state) sampled at all
    for t in range(H):
        reached[t, pop.trajectories.states[:, t]] = True
    torch.testing.assert_close(cpl.policy[reached], optimum[reached], atol=1e-7, rtol=0)


def test_dpo_from_partial_returns_in_a_stochastic_mdp_is_not_the_kl_optimum():
    """The counterpart, measured: with slip, a trajectory's summed β·log π*/π_ref is its return plus the
    successors' surprise (E[V(s')] − V(s') summed), so DPO's optimum under a Bradley–Terry teacher
    differs from the KL-regularised optimum; in the deterministic token MDP it does not (above)."""
    task = small_stochastic_task()
    beta, H = 0.7, 3
    pop = rlhf.PreferenceData.population(task, "boltzmann:1")
    dpo = rlhf.align(task, pop, method="dpo", beta=beta, time_indexed=True)
    planned = rlhf.kl_regularized_policy(task.mdp, task.true_reward.double(), H, beta)
    reached = torch.zeros(H, 3, dtype=torch.bool)
    for t in range(H):
        reached[t, pop.trajectories.states[:, t]] = True
    gap = float((dpo.policy[reached] - planned[reached]).abs().max())
    assert gap > 1e-3
    assert dpo.metrics["regularized_return"] < float(task.mdp.start.double() @ rlhf.core.regularized
                                                     .kl_regularized_solution(task.mdp, task.true_reward.double(),
                                                                              H, beta).values[0])
