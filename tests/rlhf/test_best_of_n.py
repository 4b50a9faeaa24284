"""Best-of-n, exactly: its distribution against brute-force enumeration of the n draws, its KL against
the analytic ``log n − (n−1)/n``, and the sampled estimate against the exact one."""

import itertools
import math

import pytest
import torch

import rlhf
from rlhf.policies.best_of_n import block_probabilities, kl_bound


def brute_force(reference_probs, proxy_returns, n):
    """P(best-of-n = i) by enumerating all M^n ordered draws, ties split uniformly among the tied *samples*."""
    M = len(reference_probs)
    out = [0.0] * M
    for draw in itertools.product(range(M), repeat=n):
        weight = math.prod(reference_probs[i] for i in draw)
        best = max(proxy_returns[i] for i in draw)
        tied = [i for i in draw if proxy_returns[i] == best]
        for i in tied:
            out[i] += weight / len(tied)
    return out


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("proxy", [[0.0, 2.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
def test_three_arms_against_brute_force(n, proxy):
    """A 3-armed bandit (3 sequences), with and without ties, under a non-uniform reference."""
    bandit = rlhf.StringTask.bandit([1.0, 0.5, 0.0])
    reference = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    result = rlhf.best_of_n(bandit, torch.tensor([proxy]), n, reference=reference)
    expected = brute_force([0.5, 0.3, 0.2], proxy, n)
    torch.testing.assert_close(result.probs, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    p = result.reference_probs
    assert result.kl == pytest.approx(float((result.probs * torch.log(result.probs / p)).sum()), abs=1e-15)
    assert result.gold_return == pytest.approx(sum(e * g for e, g in zip(expected, [1.0, 0.5, 0.0], strict=True)))
    assert result.proxy_return == pytest.approx(sum(e * g for e, g in zip(expected, proxy, strict=True)))


def test_tied_samples_share_their_block_in_proportion_to_reference_mass():
    """Arms b and c tie (proxy 1), a is worse (proxy 0); reference (0.5, 0.3, 0.2). The best sample is in
    the tied block with probability 1 − 0.5² = 0.75 at n = 2, split 0.3 : 0.2, not evenly and not all to b."""
    bandit = rlhf.StringTask.bandit([1.0, 0.5, 0.0])
    ref = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    probs = rlhf.best_of_n(bandit, torch.tensor([[0.0, 1.0, 1.0]]), 2, reference=ref).probs
    torch.testing.assert_close(probs, torch.tensor([0.25, 0.75 * 0.6, 0.75 * 0.4], dtype=torch.float64))


@pytest.mark.parametrize("n", [2, 3])
def test_a_string_task_against_brute_force(n):
    """Vocab 3, length 2 (9 sequences) with a graded proxy that ties some sequences: every one of the 9^n
    ordered draws enumerated."""
    task = rlhf.StringTask(vocab="ABC", target="AA", reward="random:1")
    proxy = torch.tensor([[0.0, 1.0, 1.0], [0.5, 0.5, 0.0]])        # returns tie: AA = CA, BA = BB = CB ...
    result = rlhf.best_of_n(task, proxy, n)
    tokens = result.trajectories.actions.tolist()
    returns = [float(proxy[0, a] + proxy[1, b]) for a, b in tokens]
    assert len(set(returns)) < len(returns)                        # ties present
    expected = brute_force([1 / 9] * 9, returns, n)
    torch.testing.assert_close(result.probs, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-14)
    true = task.true_reward.double()
    gold = sum(e * float(true[0, a] + true[1, b]) for e, (a, b) in zip(expected, tokens, strict=True))
    assert result.gold_return == pytest.approx(gold, abs=1e-14)


def test_n_equal_1_is_the_reference_and_kl_is_0():
    task = rlhf.StringTask(vocab="ABCD", target="AAAA", reward="random:2", slip=0.1)
    proxy = rlhf.Keys.from_seeds([3])[0].normal(16).view(4, 4)
    reference = rlhf.sft_policy(task, 20)
    result = rlhf.best_of_n(task, proxy, 1, reference=reference)
    assert result.kl == 0.0 and result.kl_bound == 0.0
    torch.testing.assert_close(result.probs, result.reference_probs, rtol=0, atol=1e-15)
    gold = rlhf.policy_return(task.mdp, reference, task.true_reward, task.horizon)
    assert result.gold_return == pytest.approx(gold, abs=1e-12)
    assert result.proxy_return == pytest.approx(rlhf.policy_return(task.mdp, reference, proxy, task.horizon), abs=1e-6)


@pytest.mark.parametrize("task", [rlhf.StringTask(vocab="ABCD", target="AAAAA", reward="random:0", slip=0.2),
                                  rlhf.GridWorld(size=3, slip=0.2, horizon=3)], ids=["strings-slip", "gridworld-slip"])
def test_the_exact_kl_is_the_block_formula_and_never_above_the_bound(task):
    """Stochastic tasks too: the distribution is over (executed) trajectories."""
    S, A = task.mdp.num_states, task.mdp.num_actions
    proxy = rlhf.Keys.from_seeds([7])[0].normal(S * A).view(S, A)
    curve = rlhf.best_of_n_curve(task, proxy, [1, 2, 4, 16, 64, 256, 10**6])
    for b in curve:
        assert float(b.probs.sum()) == pytest.approx(1.0, abs=1e-12)
        direct = torch.xlogy(b.probs, b.probs) - torch.xlogy(b.probs, b.reference_probs)
        assert b.kl == pytest.approx(float(direct.sum()), abs=1e-9)
        assert 0.0 <= b.kl <= b.kl_bound + 1e-12
        assert b.kl_bound == kl_bound(b.n)
    proxies = [b.proxy_return for b in curve]
    assert proxies == sorted(proxies)          # more samples never lower the expected best proxy


def test_the_bound_is_approached_by_many_equally_likely_distinct_sequences():
    """Derivation. With M equally likely distinct returns, F_j = j/M and P_j = (j^n − (j−1)^n)/M^n, so
    KL_M = Σ_j P_j·log(M·P_j). P_j = ∫ over ((j−1)/M, j/M] of f(u) = n·u^(n−1) du, i.e. KL_M is the KL of the
    continuous best-of-n (density f against the uniform) coarsened to M intervals: nested refinements
    (M = 2^k) never lower it (data processing), and as M → ∞ it tends to ∫ f·log f = log n − (n−1)/n."""
    for n in (2, 4, 16, 64):
        kls = []
        for k in range(0, 15):
            M = 2 ** k
            j = torch.arange(1, M + 1, dtype=torch.float64)
            P = block_probabilities(torch.full((M,), 1.0 / M, dtype=torch.float64), [n])[0]
            torch.testing.assert_close(P, (j ** n - (j - 1) ** n) / float(M) ** n, rtol=1e-9, atol=1e-300)
            kls.append(float((torch.xlogy(P, P) + P * math.log(M)).sum()))
        assert kls[0] == 0.0
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(kls))
        gaps = [kl_bound(n) - v for v in kls]
        assert all(g >= 0 for g in gaps) and gaps[-1] < 1e-3 * kl_bound(n)


def test_the_bound_is_loose_on_a_finite_set():
    """P_bon(τ) ≤ 1, so KL = Σ P·log(P/p) ≤ log(1/min p): on a finite set the KL stays bounded while
    log n − (n−1)/n grows without bound. Here one arm carries 0.97 of the reference and is the proxy's worst."""
    bandit = rlhf.StringTask.bandit([0.0, 1.0, 1.0, 1.0])
    ref = torch.tensor([[0.97, 0.01, 0.01, 0.01]], dtype=torch.float64)
    for n in (4, 64, 1024, 10**6):
        b = rlhf.best_of_n(bandit, torch.tensor([[0.0, 1.0, 2.0, 3.0]]), n, reference=ref)
        assert b.kl <= math.log(1 / 0.01) + 1e-9 and b.kl <= b.kl_bound
    assert b.kl_bound - b.kl > 8


def test_a_constant_proxy_never_moves_the_reference():
    task = rlhf.StringTask(vocab="ABC", target="AAA", reward="random:0")
    b = rlhf.best_of_n(task, torch.ones(3, 3), 64)
    assert b.kl == 0.0 and b.kl_bound > 3
    torch.testing.assert_close(b.probs, b.reference_probs)


def test_sampled_best_of_n_agrees_with_the_exact_within_its_interval():
    task = rlhf.StringTask(vocab="ABCD", target="AAAAA", reward="random:0")
    proxy = task.true_reward + 0.3 * rlhf.Keys.from_seeds([5])[0].normal(20).view(5, 4)
    for n in (1, 4, 32):
        exact = rlhf.best_of_n(task, proxy, n)
        sampled = rlhf.best_of_n_sampled(task, proxy, n, draws=2000, seed=n)
        assert abs(sampled.gold_return - exact.gold_return) <= 5 * sampled.gold_stderr
        assert abs(sampled.proxy_return - exact.proxy_return) <= 5 * sampled.proxy_stderr
        assert sampled.kl == pytest.approx(exact.kl, abs=0.05)
        again = rlhf.best_of_n_sampled(task, proxy, n, draws=2000, seed=n)
        assert again == sampled                                      # a pure function of the key


def test_every_sequence_is_kept_as_often_as_the_exact_distribution_says():
    """27 strings, n = 4, with ties in the proxy: each string's count among 6000 selections lies within 5σ of
    the binomial with the exact probability."""
    task = rlhf.StringTask(vocab="ABC", target="AAA", reward="random:4")
    proxy = torch.tensor([[0.0, 1.0, 1.0], [0.5, 0.0, 0.5], [0.2, 0.2, 0.0]])
    reference = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    exact = rlhf.best_of_n(task, proxy, 4, reference=reference)
    draws = 6000
    sampled = rlhf.best_of_n_sampled(task, proxy, 4, draws=draws, seed=11, reference=reference)
    index = {tuple(a): i for i, a in enumerate(exact.trajectories.actions.tolist())}
    counts = torch.zeros(len(index), dtype=torch.float64)
    for a in sampled.chosen.actions.tolist():
        counts[index[tuple(a)]] += 1
    p = exact.probs
    assert bool(((counts - draws * p).abs() <= 5 * torch.sqrt(draws * p * (1 - p)) + 1e-9).all())


def test_sampled_ties_are_broken_uniformly():
    """Two tied best arms of equal reference mass: each is chosen about half the time (5σ binomial)."""
    bandit = rlhf.StringTask.bandit([1.0, 0.0, 0.0])
    draws, n = 4000, 3
    sampled = rlhf.best_of_n_sampled(bandit, torch.tensor([[1.0, 1.0, 0.0]]), n, draws=draws, seed=0)
    exact = rlhf.best_of_n(bandit, torch.tensor([[1.0, 1.0, 0.0]]), n)
    p = float(exact.probs[0])                                        # (1 − (1/3)^3)/2
    assert p == pytest.approx((1 - 1 / 27) / 2)
    assert abs(sampled.gold_return - p) <= 5 * math.sqrt(p * (1 - p) / draws)


def test_bad_arguments_are_refused():
    task = rlhf.StringTask()
    with pytest.raises(ValueError, match="n must be"):
        rlhf.best_of_n(task, torch.zeros(3, 3), 0)
    with pytest.raises(ValueError, match="reward must be"):
        rlhf.best_of_n(task, torch.zeros(2, 3), 2)
    big = rlhf.StringTask(vocab="ABCDEFGH", target="AAAAAAAA")
    with pytest.raises(ValueError, match="too many"):
        rlhf.best_of_n(big, torch.zeros(8, 8), 2)


@pytest.mark.parametrize("task", [rlhf.StringTask(vocab="ABCD", target="AAAAA", reward="random:0"),
                                  rlhf.GridWorld(size=3, start=[(0, 0)], horizon=4)], ids=["strings", "gridworld"])
def test_the_shortcut_enumeration_is_the_general_one_bit_for_bit(task):
    """A deterministic, noiseless task with one start: its action sequences grown in order (a reference
    that excludes actions, so some sequences are missing)."""
    from rlhf.core.enumeration import enumerate_trajectories
    from rlhf.policies.best_of_n import trajectories_of

    reference = rlhf.sft_policy(task, 3, prior=0.0)
    general, shortcut = enumerate_trajectories(task.mdp, reference, task.horizon), \
        trajectories_of(task.mdp, reference, task.horizon)
    assert torch.equal(general[0].states, shortcut[0].states) and torch.equal(general[0].actions, shortcut[0].actions)
    assert torch.equal(general[1], shortcut[1])
