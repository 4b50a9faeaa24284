"""fit_ranking_teacher (#26): a person's Plackett–Luce β and tie parameter from rankings, with bootstrap CIs."""

import itertools
import math

import pytest
import torch

import rlhf
from rlhf.learning.rankings import rankings_of_labels
from rlhf.preferences import fit as fit_module
from rlhf.preferences.rankings import group_ids, plackett_luce_log_probability


@pytest.fixture(scope="module")
def task():
    """A small random tabular task whose segment returns spread widely (as the pair fit's test)."""
    g = torch.Generator().manual_seed(0)
    S, A = 12, 3
    start = torch.full((S,), 1.0 / S)
    mdp = rlhf.TabularMDP.from_sparse(torch.randint(0, S, (A, S, 1), generator=g), torch.ones(A, S, 1), start)
    return rlhf.TabularTask(mdp, torch.randn(S, A, generator=g) * 2, horizon=6)


def queries(task, n, K, keys):
    traj = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), K * n, 6, keys)
    return rlhf.Trajectories(traj.states.view(n, K, 6), traj.actions.view(n, K, 6))


def test_recovers_plackett_luce_beta_from_1000_rankings(task):
    keys = rlhf.Keys.from_seeds([5])[0]
    segments = queries(task, 1000, 4, keys.fold(0))
    labels = rlhf.Teacher.parse("boltzmann:0.5").rank(rlhf.step_rewards(task.true_reward, segments),
                                                      task.reward_range(), keys.fold(1))
    assert not labels.tied.any()
    fits = rlhf.fit_ranking_teacher(task, segments, labels.ranking, labels.tied, resamples=100)
    fit = fits["partial"]
    assert fit.ci["beta"][0] <= 0.5 <= fit.ci["beta"][1] and fit.ci["beta"][1] - fit.ci["beta"][0] < 0.15
    assert fit.rankings == 1000 and fit.rank == 4 and fit.tie_model == "none" and math.isnan(fit.tie_param)
    assert fit.log_likelihood > fits["regret"].log_likelihood                  # the generating model fits better
    assert rlhf.Teacher.parse(fit.spec) == rlhf.Teacher(beta=float(f"{fit.beta:.3g}"))
    again = rlhf.fit_ranking_teacher(task, segments, labels.ranking, labels.tied, resamples=100,
                                     preference_models=["partial"])["partial"]
    assert again == fit                                                           # seeded: deterministic


@pytest.mark.parametrize(("spec", "ties", "true_param"), [("boltzmann:0.5+rao-kupper:3", "rao-kupper", 3.0),
                                                           ("boltzmann:0.5+davidson:0.8", "davidson", 0.8)])
def test_recovers_beta_and_the_tie_parameter(task, spec, ties, true_param):
    """1000 answers of the suite's tie-model teacher (pairs, a ranking of two with a tie flag)."""
    keys = rlhf.Keys.from_seeds([7])[0]
    segments = queries(task, 1000, 2, keys.fold(0))
    scores = rlhf.step_rewards(task.true_reward, segments)
    labels = rlhf.Teacher.parse(spec).label(scores[:, 0], scores[:, 1], task.reward_range(), keys.fold(1))
    order, tied = rankings_of_labels(labels.prefer_first)
    assert 50 < int(tied.sum()) < 950
    fit = rlhf.fit_ranking_teacher(task, segments, order, tied, ties=ties, resamples=100,
                                   preference_models=["partial"])["partial"]
    assert fit.ci["beta"][0] <= 0.5 <= fit.ci["beta"][1], fit
    assert fit.ci["tie_param"][0] <= true_param <= fit.ci["tie_param"][1], fit
    assert fit.tie_model == ties and rlhf.Teacher.parse(fit.spec).tie_model == ties


def test_tied_rankings_of_more_than_two_are_fitted(task):
    """Ties from the suite's ranking teacher (its ``equal`` threshold) at K = 3: Plackett–Luce averaged over
    the orders ties allow, and the tie models' composite likelihood; the CIs hold the point fits."""
    keys = rlhf.Keys.from_seeds([3])[0]
    segments = queries(task, 300, 3, keys.fold(0))
    labels = rlhf.Teacher.parse("boltzmann:0.5+equal:0.05").rank(rlhf.step_rewards(task.true_reward, segments),
                                                                 task.reward_range(), keys.fold(1))
    assert labels.tied.any()
    for ties in ("none", "rao-kupper", "davidson"):
        fit = rlhf.fit_ranking_teacher(task, segments, labels.ranking, labels.tied, ties=ties, resamples=30,
                                       preference_models=["partial"])["partial"]
        for name, (low, high) in fit.ci.items():
            value = getattr(fit, name)
            assert math.isfinite(value) and low <= value * (1 + 1e-9) and value <= high * (1 + 1e-9), (ties, fit)


def test_the_tie_averaged_plackett_luce_likelihood_is_the_mean_over_the_orders_ties_allow():
    g = torch.Generator().manual_seed(1)
    K = 4
    ranked = torch.randn(1 << (K - 1), K, generator=g, dtype=torch.float64)
    tied = torch.tensor([[bool(p >> j & 1) for j in range(K - 1)] for p in range(1 << (K - 1))])
    beta = 0.7
    got = fit_module._plackett_luce_terms(ranked, tied)(torch.tensor([[math.log(beta)]], dtype=torch.float64))[0]
    for i in range(ranked.shape[0]):
        groups = group_ids(tied[i]).tolist()
        allowed = [p for p in itertools.permutations(range(K))
                   if all(groups[p[a]] <= groups[p[a + 1]] for a in range(K - 1))]    # groups keep their order
        logs = [float(plackett_luce_log_probability(beta * ranked[i], torch.tensor(p))) for p in allowed]
        assert float(got[i]) == pytest.approx(sum(logs) / len(logs), abs=1e-12), (i, tied[i])


def test_bad_inputs_are_one_line_errors(task):
    keys = rlhf.Keys.from_seeds([1])[0]
    segments = queries(task, 12, 3, keys.fold(0))
    order = torch.tensor([[0, 1, 2]] * 12)
    with pytest.raises(ValueError, match="needs at least 10 answered rankings, got 9"):
        rlhf.fit_ranking_teacher(task, segments, order, answered=torch.arange(12) < 9)
    with pytest.raises(ValueError, match="ties='davidson' fits a tie parameter: none of the 12 rankings has a tie"):
        rlhf.fit_ranking_teacher(task, segments, order, ties="davidson")
    with pytest.raises(ValueError, match="ties must be one of none, rao-kupper, davidson, got 'thurstone'"):
        rlhf.fit_ranking_teacher(task, segments, order, ties="thurstone")
    with pytest.raises(ValueError, match=r"order must be \[n, K\] = \[12, 3\]"):
        rlhf.fit_ranking_teacher(task, segments, order[:, :2])
