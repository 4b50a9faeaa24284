"""Over-optimisation paths (Gao et al., 2023), exactly: proxies learned from pairs, the KL path, natural
policy gradient and its identity with the KL path, direct methods along β, and the hump itself."""

import math

import pytest
import torch

import rlhf
from rlhf.policies.proxies import centred

GRADED = rlhf.StringTask(vocab="ABCD", target="AAAAA", reward="random:0")           # 4^5 = 1024 strings
BETAS = [4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]


def noisy_proxy(task, scale=0.3, seed=5):
    S, A = task.mdp.num_states, task.mdp.num_actions
    return task.true_reward + scale * rlhf.Keys.from_seeds([seed])[0].normal(S * A).view(S, A)


# ------------------------------------------------------------------ proxies
def test_a_proxy_is_the_rlhf_methods_reward_bit_for_bit():
    data = rlhf.PreferenceData.sampled(GRADED, "boltzmann:1", pairs=50, seed=2)
    proxy = rlhf.proxy_reward(GRADED, data, seed=2, steps=200)
    aligned = rlhf.align(GRADED, data, method="rlhf", beta=0.5, seed=2, steps=200).policy
    planned = rlhf.kl_regularized_policy(GRADED.mdp, proxy, GRADED.horizon, 0.5)
    assert torch.equal(planned, aligned)


@pytest.mark.parametrize("ensemble, aggregate", [(1, "mean"), (3, "mean"), (3, "min")])
def test_seed_k_alone_equals_seed_k_in_a_batch(ensemble, aggregate):
    datasets = [rlhf.PreferenceData.sampled(GRADED, "boltzmann:1", pairs=40, seed=s) for s in (4, 5, 6)]
    batch = rlhf.proxy_rewards(GRADED, datasets, seeds=[4, 5, 6], ensemble=ensemble, aggregate=aggregate, steps=100)
    for k, seed in enumerate((4, 5, 6)):
        alone = rlhf.proxy_reward(GRADED, datasets[k], seed=seed, ensemble=ensemble, aggregate=aggregate, steps=100)
        assert torch.equal(batch[k], alone)


def test_an_ensembles_worst_case_is_below_every_centred_member():
    from rlhf.policies.align import AlignOptions
    from rlhf.policies.proxies import _fit_members

    data = rlhf.PreferenceData.sampled(GRADED, "boltzmann:1", pairs=40, seed=1)
    members = _fit_members(GRADED, [data], rlhf.Keys.from_seeds([1]), 4, AlignOptions(steps=100))[0]   # [E, S, A]
    assert not torch.equal(members[0], members[1])                      # bootstrap resamples differ
    uniform = torch.full((5, 4), 0.25, dtype=torch.float64)
    worst = rlhf.proxy_reward(GRADED, data, seed=1, ensemble=4, aggregate="min", steps=100)
    mean = rlhf.proxy_reward(GRADED, data, seed=1, ensemble=4, aggregate="mean", steps=100)
    torch.testing.assert_close(worst, centred(members, uniform).amin(0))
    torch.testing.assert_close(mean, members.mean(0))
    # a string's summed worst case is at most each member's centred return
    centred_members = centred(members, uniform)
    strings = torch.randint(0, 4, (50, 5), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(5)
    assert bool((worst[positions, strings].sum(-1) <= centred_members[:, positions, strings].sum(-1).amin(0) + 1e-6)
                .all())
    with pytest.raises(ValueError, match="aggregate"):
        rlhf.proxy_reward(GRADED, data, ensemble=2, aggregate="median")
    with pytest.raises(ValueError, match="population"):
        small = rlhf.StringTask()
        rlhf.proxy_reward(small, rlhf.PreferenceData.population(small, "boltzmann:1"), ensemble=2)


def test_a_state_rewards_worst_case_centres_each_member_by_a_constant():
    """The gridworld's learned reward is a log-distribution over states: members differ by their
    log-partition, a constant, which centring removes before the minimum."""
    world = rlhf.GridWorld(size=3, horizon=4)
    data = rlhf.PreferenceData.sampled(world, "boltzmann:1", pairs=30, seed=0)
    worst = rlhf.proxy_reward(world, data, ensemble=3, aggregate="min", steps=50)
    mean = rlhf.proxy_reward(world, data, ensemble=3, aggregate="mean", steps=50)
    assert worst.shape == mean.shape == (9,)
    assert bool((worst <= centred(mean, torch.empty(0), per_state=False) + 1e-6).all())


def test_dpos_population_implicit_reward_is_the_teachers_reward():
    """Rafailov et al.: on a noiseless task the population DPO optimum is the KL-regularised optimum of
    the teacher's reward, so its implicit reward β·log π/π_ref is that reward up to per-position constants
    (here, with a Boltzmann-1 teacher, the true reward); as a proxy it ranks best-of-n like the truth."""
    task = rlhf.StringTask(vocab="ABC", target="AAA", reward="random:3")
    population = rlhf.PreferenceData.population(task, "boltzmann:1")
    result = rlhf.align(task, population, method="dpo", beta=0.5, time_indexed=True)
    implicit = rlhf.implicit_reward(task, result.policy, None, 0.5)
    torch.testing.assert_close(centred(implicit, torch.full((3, 3), 1 / 3, dtype=torch.float64)),
                               centred(task.true_reward.double(), torch.full((3, 3), 1 / 3, dtype=torch.float64)),
                               atol=1e-7, rtol=0)
    b = rlhf.best_of_n(task, implicit, 8)
    truth = rlhf.best_of_n(task, task.true_reward, 8)
    assert b.gold_return == pytest.approx(truth.gold_return, abs=1e-9)


# ------------------------------------------------------------------ paths
def test_the_kl_path_is_exact_and_the_proxy_never_falls():
    proxy = noisy_proxy(GRADED)
    path = rlhf.kl_path(GRADED, proxy, BETAS)
    for point, beta in zip(path, BETAS, strict=True):
        policy = rlhf.kl_regularized_policy(GRADED.mdp, proxy.double(), GRADED.horizon, beta)
        assert point.method == "kl" and point.param == beta
        assert point.kl == rlhf.policy_kl(GRADED.mdp, policy, None, GRADED.horizon)
        assert point.d == math.sqrt(point.kl)
        assert point.gold_return == rlhf.policy_return(GRADED.mdp, policy, GRADED.true_reward, GRADED.horizon)
    # β₁ > β₂: R̂₁ − β₁K₁ >= R̂₂ − β₁K₂ and R̂₂ − β₂K₂ >= R̂₁ − β₂K₁, so K₂ >= K₁ and R̂₂ − R̂₁ >= β₂(K₂ − K₁) >= 0
    assert [p.proxy_return for p in path] == sorted(p.proxy_return for p in path)
    assert [p.kl for p in path] == sorted(p.kl for p in path)
    assert path[0].as_row()["d"] == path[0].d


def test_best_of_n_path_is_best_of_n():
    proxy = noisy_proxy(GRADED)
    path = rlhf.best_of_n_path(GRADED, proxy, [1, 4, 16])
    for point in path:
        exact = rlhf.best_of_n(GRADED, proxy, int(point.param))
        assert (point.kl, point.proxy_return, point.gold_return) == (exact.kl, exact.proxy_return, exact.gold_return)


def test_natural_policy_gradient_on_a_bandit_is_the_kl_path():
    """Derivation. Softmax over arms, π = softmax(θ), J(θ) = Σ_a π_a·r_a. Then ∇J = (diag π − ππᵀ)·r = F·r,
    with F = diag π − ππᵀ the Fisher information of the softmax, so the natural gradient F⁺∇J is r up to a
    constant vector (F's null space), which softmax ignores: θ_k = θ_0 + η·k·r, π_k ∝ π_ref·exp(η·k·r), which
    is the maximiser of E_π[r] − β·KL(π ‖ π_ref) at β = 1/(η·k). Checked against NPG written with the
    Fisher pseudo-inverse, and against the library's per-state NPG with exact Q."""
    bandit = rlhf.StringTask.bandit([0.3, 1.0, 0.2, 0.7])
    proxy = torch.tensor([[0.9, 0.1, -0.4, 0.5]], dtype=torch.float64)
    reference = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    eta, steps = 0.25, [0, 1, 3, 10, 40]
    theta, by_fisher = torch.log(reference[0]).clone(), []
    for k in range(max(steps) + 1):
        if k in steps:
            by_fisher.append(torch.softmax(theta, -1))
        pi = torch.softmax(theta, -1)
        fisher = torch.diag(pi) - torch.outer(pi, pi)
        gradient = fisher @ proxy[0]                                   # ∇J, written out
        theta = theta + eta * torch.linalg.pinv(fisher) @ gradient
    library = rlhf.npg_policies(bandit, proxy, steps, lr=eta, reference=reference)
    for k, mine, theirs in zip(steps, by_fisher, library, strict=True):
        torch.testing.assert_close(theirs[0, 0], mine, rtol=0, atol=1e-12)
        closed = reference[0] * torch.exp(eta * k * proxy[0])
        torch.testing.assert_close(mine, closed / closed.sum(), rtol=0, atol=1e-12)
        if k:
            kl = rlhf.kl_regularized_policy(bandit.mdp, proxy, 1, 1 / (eta * k), reference)
            torch.testing.assert_close(theirs, kl, rtol=0, atol=1e-12)


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_natural_policy_gradient_on_strings_is_the_kl_path(slip):
    """Derivation. On a string task the successor of position t is t + 1 whatever the token, so
    Q^π_t(t, a) = r̂_exec(t, a) + V^π_{t+1}(t + 1) with r̂_exec(t, a) = (1 − η_s)·r̂(t, a) + η_s·mean r̂(t, ·)
    (η_s the slip). The second term is the same for every token, so NPG's θ_t ← θ_t + η·Q^π_t moves
    position t's logits by η·r̂_exec(t, ·) each step: π_k,t ∝ π_ref·exp(η·k·r̂_exec(t, ·)). The KL-regularised
    optimum has V_{t+1} constant across tokens too, so π_β,t ∝ π_ref·exp(r̂_exec(t, ·)/β): equal at β = 1/(η·k),
    and so are their KL, proxy and gold returns (early stopping *is* a KL penalty)."""
    task = rlhf.StringTask(vocab="ABCD", target="AAAAA", reward="random:0", slip=slip)
    proxy, eta, steps = noisy_proxy(task), 0.05, [1, 4, 20, 100, 400]
    reference = rlhf.sft_policy(task, 30)
    npg = rlhf.npg_policies(task, proxy, steps, lr=eta, reference=reference)
    path = rlhf.npg_path(task, proxy, steps, lr=eta, reference=reference)
    betas = [1 / (eta * k) for k in steps]
    kl_path = rlhf.kl_path(task, proxy, betas, reference)
    for k, policy, point, kl_point, beta in zip(steps, npg, path, kl_path, betas, strict=True):
        planned = rlhf.kl_regularized_policy(task.mdp, proxy.double(), task.horizon, beta, reference)
        torch.testing.assert_close(policy, planned, rtol=0, atol=1e-12)
        assert point.param == k
        for field in ("kl", "proxy_return", "gold_return"):
            assert getattr(point, field) == pytest.approx(getattr(kl_point, field), abs=1e-10)


def test_natural_policy_gradient_leaves_the_kl_path_where_actions_steer_the_state():
    """A gridworld: Q^π is not the soft Q, so the iterates differ from the β path (measured, not zero)."""
    world = rlhf.GridWorld(size=4, horizon=6)
    proxy = torch.randn(16, generator=torch.Generator().manual_seed(0)).double()
    npg = rlhf.npg_policies(world, proxy, [5], lr=0.1)[0]
    planned = rlhf.kl_regularized_policy(world.mdp, proxy, world.horizon, 1 / 0.5)
    assert float((npg - planned).abs().max()) > 1e-3
    path = rlhf.npg_path(world, proxy, [0, 5, 50], lr=0.1)
    assert path[0].kl == 0.0 and path[1].kl > 0 and path[2].proxy_return > path[1].proxy_return


def test_q_values_are_the_returns_of_the_policy():
    from rlhf.policies.overoptimization import q_values

    task = rlhf.GridWorld(size=3, slip=0.2, horizon=4)
    policy = torch.softmax(torch.randn(4, 9, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64), -1)
    reward = torch.randn(9, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    q = q_values(task.mdp, policy, reward)
    v0 = (policy[0] * q[0]).sum(-1) @ task.mdp.start.double()
    assert float(v0) == pytest.approx(rlhf.policy_return(task.mdp, policy, reward, 4), abs=1e-12)


def test_an_alignment_path_and_seed_k_alone_equals_seed_k_in_a_batch():
    datasets = [rlhf.PreferenceData.sampled(GRADED, "boltzmann:1", pairs=30, seed=s) for s in (0, 1)]
    betas = [1.0, 0.25]
    both = rlhf.alignment_path(GRADED, datasets, "dpo", betas, seeds=[0, 1], steps=100)
    for k in (0, 1):
        alone = rlhf.alignment_path(GRADED, datasets[k], "dpo", betas, seeds=[k], steps=100)[0]
        assert alone == both[k]
    for point, beta in zip(both[0], betas, strict=True):
        result = rlhf.align(GRADED, datasets[0], method="dpo", beta=beta, seed=0, steps=100)
        assert point.kl == result.metrics["kl"] and point.gold_return == result.metrics["true_return"]
        assert point.proxy_return == pytest.approx(beta * point.kl, rel=1e-9)      # the implicit reward's return
    proxy = noisy_proxy(GRADED)
    scored = rlhf.alignment_path(GRADED, datasets[0], "ipo", [0.5], proxy=proxy, steps=100)[0][0]
    result = rlhf.align(GRADED, datasets[0], method="ipo", beta=0.5, steps=100)
    assert scored.proxy_return == rlhf.policy_return(GRADED.mdp, result.policy, proxy, GRADED.horizon)


# ------------------------------------------------------------------ the hump
def test_gold_rises_then_falls_while_the_proxy_keeps_rising():
    """Gao et al.'s Figure 1 in miniature: a proxy learned from 100 pairs (vocab 5, length 6: 15,625 strings,
    every number exact). Along the KL path and along best-of-n the proxy return rises throughout; the gold
    return rises to a peak inside the path, then falls."""
    task = rlhf.StringTask(vocab="ABCDE", target="AAAAAA", reward="random:0")
    data = rlhf.PreferenceData.sampled(task, "boltzmann:1", pairs=100, seed=1)
    proxy = rlhf.proxy_reward(task, data, seed=1)
    path = rlhf.kl_path(task, proxy, [64.0, *BETAS])
    gold, proxies = [p.gold_return for p in path], [p.proxy_return for p in path]
    top = max(range(len(gold)), key=gold.__getitem__)
    assert 0 < top < len(gold) - 1
    assert gold[top] - gold[-1] > 0.3 and gold[top] - gold[0] > 0.2
    assert proxies == sorted(proxies)
    bon = rlhf.best_of_n_path(task, proxy, [1, 4, 16, 64, 256, 1024])
    gold = [p.gold_return for p in bon]
    top = max(range(len(gold)), key=gold.__getitem__)
    assert 0 < top < len(gold) - 1 and gold[top] > gold[-1]
    assert [p.proxy_return for p in bon] == sorted(p.proxy_return for p in bon)


def test_actions_steer_on_a_gridworld_and_not_on_a_string_task():
    """NPG's closed form needs actions that change no successor distribution (the string task, with or
    without slip); a gridworld's actions move the agent."""
    from rlhf.policies.overoptimization import actions_steer
    assert not actions_steer(rlhf.StringTask("ABC", "CAB").mdp)
    assert not actions_steer(rlhf.StringTask("ABC", "CAB", slip=0.2).mdp)
    assert actions_steer(rlhf.GridWorld(size=3, slip=0.0, horizon=4).mdp)
