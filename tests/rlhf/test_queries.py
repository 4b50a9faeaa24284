"""Query rules and reward ensembles (#13): each rule picks what its definition says."""

import math

import pytest
import torch

import rlhf
from rlhf.learning import queries
from rlhf.learning.ensemble import bootstrap_indices, member_keys
from rlhf.preferences.models import binary_entropy


def select(rule, n, f1, f2, table):
    """The candidates the registered active ``rule`` keeps."""
    return queries.QUERY_RULES[rule].choose(n, f1, f2, table)


def pool_of_predictions(p: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A hand-built pool: members' reward tables and one-step segments whose Bradley–Terry
    prediction for candidate i under member e is exactly ``p[e][i]``.

    Candidate i's first segment visits feature 2i, its second feature 2i + 1; member e's
    reward is logit(p[e][i]) on feature 2i and 0 on 2i + 1."""
    probs = torch.tensor(p, dtype=torch.float64)
    E, m = probs.shape
    table = torch.zeros(E, 2 * m)
    table[:, 0::2] = torch.logit(probs).float()
    first = torch.arange(0, 2 * m, 2).view(m, 1)
    return table, first, first + 1


def test_member_preferences_are_the_bradley_terry_predictions():
    p = [[0.9, 0.5, 0.2], [0.7, 0.5, 0.4]]
    table, f1, f2 = pool_of_predictions(p)
    torch.testing.assert_close(queries.member_preferences(table, f1, f2), torch.tensor(p), atol=1e-6, rtol=0)


def test_disagreement_picks_the_largest_spread_across_members():
    # spreads (population std): 0.0, 0.3, 0.1, 0.45, 0.2
    p = [[0.5, 0.2, 0.6, 0.05, 0.9], [0.5, 0.8, 0.4, 0.95, 0.5]]
    table, f1, f2 = pool_of_predictions(p)
    scores = queries.disagreement_scores(queries.member_preferences(table, f1, f2))
    torch.testing.assert_close(scores, torch.tensor([0.0, 0.3, 0.1, 0.45, 0.2]), atol=1e-6, rtol=0)
    assert select("disagreement", 2, f1, f2, table).tolist() == [3, 1]


def test_entropy_picks_the_least_certain_mean_prediction():
    # mean predictions 0.5, 0.5 (members disagree), 0.9, 0.7, 0.55: the 0.5s first, lower index first
    p = [[0.5, 0.1, 0.9, 0.7, 0.6], [0.5, 0.9, 0.9, 0.7, 0.5]]
    table, f1, f2 = pool_of_predictions(p)
    scores = queries.entropy_scores(queries.member_preferences(table, f1, f2))
    assert scores[0].item() == pytest.approx(math.log(2), abs=1e-6)
    assert select("entropy", 3, f1, f2, table).tolist() == [0, 1, 4]


def test_info_gain_prefers_confident_members_that_disagree():
    # pair 0: both members unsure (0.5): H(p̄) = ln 2 but no gain; pair 1: confident and opposed
    p = [[0.5, 0.02, 0.7], [0.5, 0.98, 0.7]]
    table, f1, f2 = pool_of_predictions(p)
    gain = queries.info_gain_scores(queries.member_preferences(table, f1, f2))
    h = binary_entropy(torch.tensor(0.02))
    torch.testing.assert_close(gain, torch.tensor([0.0, math.log(2) - float(h), 0.0]), atol=1e-5, rtol=0)
    assert select("info-gain", 1, f1, f2, table).tolist() == [1]
    assert select("entropy", 1, f1, f2, table).tolist() == [0]      # entropy alone cannot tell


def test_kcenter_is_greedy_farthest_first_from_candidate_0():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 6.0], [9.0, 1.0], [5.0, 5.0]])
    # squared distances from 0: 1:1, 2:100, 3:36, 4:82, 5:50 -> 2; nearest centre then 1:1, 3:36, 4:2,
    # 5:min(50, 50) -> 5; then 3:min(36, 26) = 26 beats 1:1 and 4:2 -> 3
    assert queries.kcenter(points, 4).tolist() == [0, 2, 5, 3]


def test_kcenter_never_picks_twice_even_among_duplicates():
    points = torch.zeros(2, 6, 3)
    points[:, 1] = 1.0                                            # one point apart, the rest identical
    chosen = queries.kcenter(points, 6)
    assert chosen[0].tolist() == [0, 1, 2, 3, 4, 5] and torch.equal(chosen[0], chosen[1])


def test_visitation_counts_count_each_segment_apart():
    f1 = torch.tensor([[0, 0, 2]])
    f2 = torch.tensor([[1, 2, 2]])
    assert queries.visitation_counts(f1, f2, 3).tolist() == [[2, 0, 1, 0, 1, 2]]


@pytest.mark.parametrize("rule", queries.ACTIVE_QUERIES)
def test_active_rules_never_pick_a_candidate_twice(rule, rng):
    """Even in a pool full of identical candidates (every score tied), n distinct indices."""
    f1 = torch.randint(0, 4, (3, 1, 5), generator=rng).expand(3, 40, 5)
    f2 = torch.randint(0, 4, (3, 1, 5), generator=rng).expand(3, 40, 5)
    table = torch.randn(3, 2, 4, generator=rng)
    chosen = select(rule, 25, f1, f2, table)
    assert chosen.shape == (3, 25) and all(len(set(row.tolist())) == 25 for row in chosen)


def test_the_round_asks_pairs_from_its_own_pool():
    """An active rule's pairs are a subset of the on-policy pool drawn under the same key."""
    task = rlhf.GridWorld(size=4, horizon=6)
    asked, pool = [], []
    rlhf.train(task, budget=20, pairs_per_round=20, query="kcenter", oversample=3,
               on_round=lambda r: asked.append(r.first.states))
    from rlhf.training.phases import SAMPLE
    keys = rlhf.Keys.from_seeds([0]).fold(SAMPLE, 0)
    uniform_start = rlhf.uniform_policy(task.mdp)      # before any update the learned reward is flat
    first, _ = rlhf.rollout(task.mdp, uniform_start, 2 * 60, 6, keys).split()
    pool = {tuple(row.tolist()) for row in first.states[0]}
    assert all(tuple(row.tolist()) in pool for row in asked[0])


def test_bootstrap_resamples_are_per_member_uniform_and_keyed():
    keys = rlhf.Keys.from_seeds([3, 4])
    chosen = bootstrap_indices(keys, 5, 1000)
    assert chosen.shape == (2, 5, 1000) and int(chosen.min()) >= 0 and int(chosen.max()) < 1000
    assert not torch.equal(chosen[0, 0], chosen[0, 1])                       # members differ
    assert torch.equal(bootstrap_indices(keys[1:], 5, 1000)[0], chosen[1])   # per seed, any batch
    # with replacement: about 1 − 1/e of the pairs appear in a resample
    distinct = [len(set(row.tolist())) / 1000 for row in chosen[0]]
    assert all(abs(d - (1 - math.exp(-1))) < 0.04 for d in distinct)


def test_ensemble_members_start_apart_where_the_task_draws_them_and_end_apart():
    strings = rlhf.StringTask("ABC", "CAB")
    model = strings.new_reward_model(member_keys(rlhf.Keys.from_seeds([0, 1]), 3))
    assert model.theta.shape == (2, 3, 9) and not torch.equal(model.theta[0, 0], model.theta[0, 1])
    records = []
    rlhf.train(rlhf.GridWorld(size=4, horizon=6), budget=60, pairs_per_round=30, ensemble=4,
               on_round=records.append)
    members = records[-1].reward_model.members.theta           # [E, S]: zeros at the start (the preset's init)
    assert len({tuple(m.tolist()) for m in members}) == 4      # bootstrap resamples set them apart
    torch.testing.assert_close(records[-1].reward_model.reward(), torch.log_softmax(members, -1).mean(0))


def test_ensemble_of_one_is_the_plain_model_bit_for_bit():
    task = rlhf.GridWorld(size=4, horizon=6)
    plain = rlhf.train(task, budget=60, pairs_per_round=20)
    one = rlhf.train(task, budget=60, pairs_per_round=20, ensemble=1, oversample=3)
    assert repr(plain.history) == repr(one.history) and torch.equal(plain.reward, one.reward)


def test_rules_that_compare_members_need_two():
    with pytest.raises(ValueError, match="ensemble must be >= 2, got 1"):
        rlhf.train(rlhf.GridWorld(size=3), budget=10, query="disagreement")
    with pytest.raises(ValueError, match="oversample"):
        rlhf.train(rlhf.GridWorld(size=3), budget=10, query="kcenter", oversample=0)


def test_members_fit_exactly_their_bootstrap_resamples():
    """Weighting pair i by its multiplicity is, up to rounding, training on the resample itself.
    (SGD: Adam's first steps are lr·sign(gradient), which turns rounding in a gradient that is
    zero in exact arithmetic into a ±lr difference.)"""
    from rlhf.learning.ensemble import bootstrap_weights
    from rlhf.learning.learner import LearnerConfig, RewardLearner
    task, n = rlhf.GridWorld(size=4, horizon=6), 40
    keys = rlhf.Keys.from_seeds([5, 6])
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, 6, keys.fold(0)).split()
    y = (keys.fold(1).uniform(n) < 0.5).float()
    config = LearnerConfig("sgd", 0.5, 20, 0)
    members = rlhf.StateLogSoftmaxReward(16, batch=(2, 3))
    RewardLearner(members, config).update(first, second, y, weights=bootstrap_weights(keys.fold(2), 3, n))
    chosen = bootstrap_indices(keys.fold(2), 3, n)
    for b in range(2):
        for e in range(3):
            alone = rlhf.StateLogSoftmaxReward(16)
            idx = chosen[b, e]
            RewardLearner(alone, config).update(first[b].pick(idx), second[b].pick(idx), y[b, idx])
            torch.testing.assert_close(members.theta[b, e], alone.theta, atol=2e-5, rtol=0)
    assert not torch.equal(members.theta[0, 0], members.theta[0, 1])


def test_the_rules_are_one_registry_and_a_new_rule_is_one_registration(request):
    """QUERIES and ENSEMBLE_QUERIES are views of the registry; a rule registered later (here: keep the
    pool's last n candidates) is a configuration's ``query`` at once, and runs in the loop."""
    assert list(rlhf.QUERIES) == ["on-policy", "uniform", "disagreement", "entropy", "info-gain", "kcenter"]
    assert list(rlhf.ENSEMBLE_QUERIES) == ["disagreement", "info-gain"]
    assert list(queries.SAMPLED_QUERIES) == ["on-policy", "uniform"]
    request.addfinalizer(lambda: queries.QUERY_RULES.remove("last"))          # registered for this test only

    def last(n, features_1, features_2, table):
        m = features_1.shape[-2]
        return torch.arange(m - n, m).expand(*features_1.shape[:-2], n)

    queries.register_query_rule(queries.QueryRule("last", last))
    assert "last" in rlhf.QUERIES and "last" in queries.ACTIVE_QUERIES and "last" not in rlhf.ENSEMBLE_QUERIES
    asked = []
    task = rlhf.GridWorld(size=4, horizon=6)
    rlhf.train(task, budget=10, pairs_per_round=10, query="last", oversample=2, heldout_pairs=10,
               on_round=lambda r: asked.append(r.first.states))
    keys = rlhf.Keys.from_seeds([0]).fold(rlhf.training.phases.SAMPLE, 0)
    pool, _ = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 40, 6, keys).split()
    assert torch.equal(asked[0], pool.states[0, 10:])
    with pytest.raises(ValueError, match="already registered"):
        queries.register_query_rule(queries.QueryRule("last", last))
