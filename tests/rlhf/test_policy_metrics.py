"""The metrics of an aligned policy (rlhf.policies.evaluation): exact ones against brute force, the
sampled win rate against the exact one."""

import itertools

import pytest
import torch

import rlhf
from rlhf.policies import evaluation


def string_distribution(task, policy):
    """{string: probability} of a stationary or time-indexed policy on a noiseless string task."""
    L, V = task.horizon, len(task.vocab)
    out = {}
    for tokens in itertools.product(range(V), repeat=L):
        p = 1.0
        for t, a in enumerate(tokens):
            p *= float(policy[t, a] if policy.dim() == 2 else policy[t, t, a])
        out[tokens] = p
    return out


def test_exact_metrics_on_the_string_task(rng):
    task = rlhf.StringTask(vocab="ABC", target="ABCA", reward="random:2")
    reference = torch.softmax(torch.randn(4, 3, generator=rng, dtype=torch.float64), -1)
    policy = torch.softmax(torch.randn(4, 3, generator=rng, dtype=torch.float64), -1)
    metrics = evaluation.policy_metrics(task, policy, reference, 0.5)
    r = task.true_reward.double()
    mine, theirs = string_distribution(task, policy), string_distribution(task, reference)
    ret = {s: sum(float(r[t, a]) for t, a in enumerate(s)) for s in mine}
    assert metrics["true_return"] == pytest.approx(sum(p * ret[s] for s, p in mine.items()), rel=1e-12)
    kl = sum(p * sum(float(torch.log(policy[t, a] / reference[t, a])) for t, a in enumerate(s))
             for s, p in mine.items())
    assert metrics["kl"] == pytest.approx(kl, rel=1e-10)           # per-step KLs summed = the sequences' KL
    assert metrics["regularized_return"] == pytest.approx(metrics["true_return"] - 0.5 * kl, rel=1e-10)
    win = sum(p * q * ((ret[s] > ret[u]) + 0.5 * (ret[s] == ret[u]))
              for s, p in mine.items() for u, q in theirs.items())
    assert metrics["win_rate_exact"] == 1.0 and metrics["win_rate"] == pytest.approx(win, rel=1e-10)
    assert metrics["win_rate_low"] == metrics["win_rate"] == metrics["win_rate_high"]
    assert metrics["scaled_return"] == pytest.approx(task.truths.scaled(metrics["true_return"]))


def test_win_rate_of_the_reference_against_itself_is_one_half(rng):
    task = rlhf.StringTask(vocab="AB", target="ABAB")
    reference = torch.softmax(torch.randn(4, 2, generator=rng, dtype=torch.float64), -1)
    assert evaluation.win_rate(task, reference, reference)["win_rate"] == pytest.approx(0.5, abs=1e-12)


def test_sampled_win_rate_brackets_the_exact_one(monkeypatch):
    task = rlhf.GridWorld(size=3, slip=0.2, horizon=3)
    planned = rlhf.kl_regularized_policy(task.mdp, task.true_reward, 3, 1.0)
    reference = torch.full((9, 5), 0.2, dtype=torch.float64)
    exact = evaluation.win_rate(task, planned, reference)
    assert exact["win_rate_exact"] == 1.0
    monkeypatch.setattr(evaluation, "ENUMERATE_MAX", 10)
    sampled = evaluation.win_rate(task, planned, reference)
    assert sampled["win_rate_exact"] == 0.0
    assert sampled["win_rate_low"] < exact["win_rate"] < sampled["win_rate_high"]
    assert sampled == evaluation.win_rate(task, planned, reference)              # fixed keys: reproducible


def test_implicit_reward_of_the_kl_optimum_is_the_truth_on_strings():
    task = rlhf.StringTask(vocab="ABC", target="ABCAB", reward="random:6")
    reference = torch.full((5, 3), 1 / 3, dtype=torch.float64)
    planned = rlhf.kl_regularized_policy(task.mdp, task.true_reward.double(), 5, 0.4)
    assert evaluation.implicit_epic(task, planned, reference, 0.4) < 1e-6
    flipped = rlhf.kl_regularized_policy(task.mdp, -task.true_reward.double(), 5, 0.4)
    assert evaluation.implicit_epic(task, flipped, reference, 0.4) > 0.99


def test_occupancy_average_of_a_time_indexed_policy():
    task = rlhf.StringTask(vocab="AB", target="ABA")
    policy = torch.rand(3, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    policy = policy / policy.sum(-1, keepdim=True)
    average = evaluation.occupancy_average(task, policy)
    torch.testing.assert_close(average, policy[torch.arange(3), torch.arange(3)])     # position t at step t


def test_out_of_data_mass():
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    data = rlhf.PreferenceData.from_pairs(task, [("AAA", "ABA"), ("AAB", "AAA")])
    uniform = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    assert evaluation.ood_mass(task, uniform, data) == pytest.approx(1 - 3 / 27)
    # the data's tokens: A everywhere, B at positions 1 and 2: unseen (position, token) pairs
    unseen = (2 / 3 + 1 / 3 + 1 / 3) / 3
    assert evaluation.ood_action_mass(task, uniform, data) == pytest.approx(unseen)
    only_data = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [1.0, 0, 0]], dtype=torch.float64)
    assert evaluation.ood_mass(task, only_data, data) == pytest.approx(0.0)
    assert evaluation.ood_action_mass(task, only_data, data) == 0.0


def test_align_reports_every_metric():
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    data = rlhf.PreferenceData.sampled(task, "boltzmann:1", 20, seed=0)
    metrics = rlhf.align(task, data, steps=20).metrics
    for name in ("true_return", "scaled_return", "kl", "regularized_return", "win_rate", "win_rate_low",
                 "win_rate_high", "win_rate_exact", "implicit_epic", "ood_mass", "ood_action_mass", "loss"):
        assert name in metrics, name
    big = rlhf.GridWorld(size=5, horizon=30)
    grid_metrics = rlhf.align(big, rlhf.PreferenceData.sampled(big, "boltzmann:1", 20, seed=0), steps=5).metrics
    assert grid_metrics["win_rate_exact"] == 0.0 and grid_metrics["ood_mass"] != grid_metrics["ood_mass"]   # NaN
