"""Rankings of K segments (#26): the teacher's Plackett–Luce draws and its noise against their
definitions, the ranking learners against their likelihoods, and the loop at K = 2 against today's.

Frequency tolerances are 5 standard errors of a Bernoulli mean: a correct sampler fails one
comparison with probability < 1e-6.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from helpers import keys_from

import rlhf
from rlhf import Teacher
from rlhf.learning.rankings import RankingLearner, lse_loss, lse_tables, tie_patterns
from rlhf.preferences import rankings

N = 60_000
RANGE = (0.0, 1.0)          # step scores in [0, 1]: normalised return = mean step score
ORDERS_3 = list(itertools.permutations(range(3)))


def tol(p, n=N):
    return 5 * math.sqrt(max(p * (1 - p), 1e-4) / n)


def pl_probability(weights, order):
    """Plackett–Luce by its definition: w_a / (w_a + w_b + w_c) · w_b / (w_b + w_c) for the order (a, b, c)."""
    p, rest = 1.0, list(order)
    for item in order[:-1]:
        p *= weights[item] / sum(weights[j] for j in rest)
        rest.remove(item)
    return p


def constant_queries(returns, T=4, n=N):
    """``[n, K, T]`` step scores: segment k earns returns[k] spread evenly over its T steps."""
    return torch.tensor(returns, dtype=torch.float32).div(T).view(1, -1, 1).expand(n, -1, T).contiguous()


def frequencies(order):
    counts = {o: 0 for o in itertools.permutations(range(order.shape[-1]))}
    for row, count in zip(*torch.unique(order, dim=0, return_counts=True), strict=True):
        counts[tuple(row.tolist())] = int(count)
    total = sum(counts.values())
    return {o: c / total for o, c in counts.items()}


# ------------------------------------------------------------------ the teacher
@pytest.mark.parametrize("logits", [[0.0, 0.0, 0.0], [1.0, 0.0, -0.5], [2.0, -1.0, 0.5], [0.3, 3.0, -2.0]])
def test_plackett_luce_log_probabilities_of_all_six_orders_match_the_formula(logits):
    x = torch.tensor(logits, dtype=torch.float64)
    weights = x.exp().tolist()
    got = [math.exp(float(rankings.plackett_luce_log_probability(x, torch.tensor(o)))) for o in ORDERS_3]
    want = [pl_probability(weights, o) for o in ORDERS_3]
    assert got == pytest.approx(want, rel=1e-12)
    assert sum(want) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("beta,returns", [(1.0, [1.0, 0.0, -0.5]), (2.0, [0.25, 0.75, 0.5]), (0.5, [3.0, 1.0, 2.5])])
def test_a_boltzmann_teacher_ranks_three_segments_with_the_plackett_luce_probabilities(beta, returns, rng):
    labels = Teacher(beta=beta).rank(constant_queries(returns), RANGE, keys_from(rng))
    weights = [math.exp(beta * r) for r in returns]
    got = frequencies(labels.ranking)
    for order in ORDERS_3:
        want = pl_probability(weights, order)
        assert abs(got[order] - want) < tol(want), (order, got[order], want)
    assert labels.answered.all() and not labels.tied.any()


def test_the_sampler_draws_each_stage_by_inverse_cdf_over_the_remaining_segments():
    """Stage by stage: weights (1, 2, 1) at u = 0.3 pick segment 1 (cumulative 1, 3, 4 against 1.2);
    then (1, ·, 1) at u = 0.6 picks segment 2 (cumulative 1, 1, 2 against 1.2)."""
    logits = torch.tensor([0.0, math.log(2.0), 0.0])
    assert rankings.sample_plackett_luce(logits, torch.tensor([0.3, 0.6])).tolist() == [1, 2, 0]
    assert rankings.sample_plackett_luce(logits, torch.tensor([0.0, 0.0])).tolist() == [0, 1, 2]
    assert rankings.sample_plackett_luce(logits, torch.tensor([0.99, 0.99])).tolist() == [2, 1, 0]


def test_a_ranking_of_two_follows_the_pair_teachers_distribution(rng):
    teacher = Teacher(beta=1.5)
    pairs = teacher.rank(constant_queries([1.0, 0.4]), RANGE, keys_from(rng))
    want = 1 / (1 + math.exp(-1.5 * 0.6))
    assert abs(float(pairs.prefer_first.mean()) - want) < tol(want)
    assert torch.equal(pairs.prefer_first, (pairs.ranking[:, 0] == 0).float())


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_mistakes_swap_each_adjacent_pair_top_to_bottom_with_probability_eps(eps, rng):
    """The oracle ranks (0, 1, 2); then positions (0, 1) swap w.p. ε, then (1, 2): four outcomes."""
    labels = Teacher(beta=math.inf, mistake=eps).rank(constant_queries([3.0, 2.0, 1.0]), RANGE, keys_from(rng))
    got = frequencies(labels.ranking)
    want = {(0, 1, 2): (1 - eps) ** 2, (1, 0, 2): eps * (1 - eps), (0, 2, 1): (1 - eps) * eps, (1, 2, 0): eps ** 2}
    for order in ORDERS_3:
        assert abs(got[order] - want.get(order, 0.0)) < tol(want.get(order, 0.0)), order


def test_skip_drops_a_ranking_when_no_segment_reaches_the_threshold(rng):
    teacher = Teacher(beta=1.0, skip=0.5)
    scores = torch.cat([constant_queries([0.4 * 4, 0.2 * 4, 0.1 * 4], n=10),
                        constant_queries([0.4 * 4, 0.6 * 4, 0.1 * 4], n=10)])
    labels = teacher.rank(scores, RANGE, keys_from(rng))
    assert labels.answered.tolist() == [False] * 10 + [True] * 10


def test_equal_ties_adjacent_positions_within_the_threshold_and_ties_chain(rng):
    """Normalised returns 0.50, 0.46, 0.42, 0.10 with threshold 0.05: the first three chain into one
    group (0.50 and 0.42 are 0.08 apart, tied through 0.46), the last stands alone."""
    teacher = Teacher(beta=math.inf, equal=0.05)
    labels = teacher.rank(constant_queries([0.5 * 4, 0.46 * 4, 0.42 * 4, 0.1 * 4], n=3), RANGE, keys_from(rng))
    assert labels.ranking.tolist() == [[0, 1, 2, 3]] * 3
    assert labels.tied.tolist() == [[True, True, False]] * 3
    assert labels.prefer_first.tolist() == [0.5] * 3


def test_the_oracle_ties_equal_returns_unless_ties_go_to_the_later_segment(rng):
    scores = constant_queries([1.0, 2.0, 1.0, 0.0], n=2)
    half = Teacher(beta=math.inf).rank(scores, RANGE, keys_from(rng))
    assert half.ranking.tolist() == [[1, 0, 2, 3]] * 2 and half.tied.tolist() == [[False, True, False]] * 2
    second = Teacher.parse("deterministic").rank(scores, RANGE, keys_from(rng))
    assert second.ranking.tolist() == [[1, 2, 0, 3]] * 2 and not second.tied.any()


def test_myopic_weights_the_steps_of_each_segment_as_for_pairs(rng):
    """γ^(T−1−t): a segment good early loses to one good late; the same ranking as the oracle on
    the pre-weighted scores."""
    T, gamma = 5, 0.5
    early = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])
    late = torch.tensor([0.0, 0.0, 0.0, 0.6, 0.6])
    middle = torch.tensor([0.0, 0.0, 0.9, 0.0, 0.0])
    scores = torch.stack([early, late, middle]).unsqueeze(0)
    labels = Teacher(beta=math.inf, myopic=gamma).rank(scores, RANGE, keys_from(rng))
    weighted = scores * gamma ** torch.arange(T - 1, -1, -1)
    plain = Teacher(beta=math.inf).rank(weighted, RANGE, keys_from(rng))
    assert labels.ranking.tolist() == plain.ranking.tolist() == [[1, 2, 0]]


def test_the_ranking_entropy_is_the_plackett_luce_distributions(rng):
    x = torch.randn(5, 4, generator=rng, dtype=torch.float64)
    got = rankings.plackett_luce_entropy(x)
    orders = rankings.all_orders(4)
    log_p = rankings.plackett_luce_log_probability(x.unsqueeze(1).expand(-1, len(orders), -1), orders.expand(5, -1, -1))
    torch.testing.assert_close(got, -(log_p.exp() * log_p).sum(-1))
    assert float(rankings.plackett_luce_entropy(torch.zeros(3))) == pytest.approx(math.log(6))


def test_a_regret_teacher_ranks_by_summed_optimal_advantage():
    """Under the regret preference model the loop hands the teacher A*: the oracle's ranking is by
    each segment's summed A* (here: read back from the round's record)."""
    task = rlhf.GridWorld(size=3, slip=0.0, horizon=4)
    seen = []
    rlhf.train(task, teacher="regret+oracle", budget=20, pairs_per_round=20, rank=3, segment_length=3,
               on_round=seen.append, heldout_pairs=10)
    record = seen[0]
    advantages = rlhf.optimal_advantages(task.mdp, task.true_reward, task.horizon)
    regret = rlhf.step_rewards(advantages, record.segments).double().sum(-1)      # [n, K]
    ordered = torch.take_along_dim(regret, record.labels.ranking, dim=-1)
    assert (ordered[:, :-1] >= ordered[:, 1:]).all()


# ------------------------------------------------------------------ the learners' likelihoods
def pl_nll_by_orders(x, order, tied):
    """The Plackett–Luce loss of a ranking with ties, from its definition: the mean over every order
    the ties allow of −log P(order) (each tie group in any order, the groups in theirs)."""
    groups = rankings.group_ids(tied).tolist()
    by_group = [[order[p] for p in range(len(order)) if groups[p] == g] for g in sorted(set(groups))]
    values = []
    for parts in itertools.product(*(itertools.permutations(g) for g in by_group)):
        full = torch.tensor([i for part in parts for i in part])
        values.append(-rankings.plackett_luce_log_probability(x, full))
    return torch.stack(values).mean()


def pair_split_nll(x, order, tied):
    """InstructGPT's loss from its definition: the mean over the C(K, 2) pairs of the Bradley–Terry
    cross-entropy, the segment ranked higher as the first (label 0.5 for a tied pair)."""
    groups = rankings.group_ids(tied).tolist()
    losses = []
    for s, t in itertools.combinations(range(len(order)), 2):
        z = x[order[s]] - x[order[t]]
        y = 0.5 if groups[s] == groups[t] else 1.0
        losses.append(-(y * torch.nn.functional.logsigmoid(z) + (1 - y) * torch.nn.functional.logsigmoid(-z)))
    return torch.stack(losses).mean()


def table_loss(x, order, tied, rule):
    a, masks, alpha = lse_tables(len(order), rule, True)
    pattern = int(tie_patterns(torch.tensor(tied)))
    return lse_loss(x[torch.tensor(order)].float(), a[pattern], masks[pattern], alpha[pattern])


CASES = [([2, 0, 1], [False, False]), ([1, 2, 0, 3], [True, False, False]), ([3, 1, 0, 2], [False, True, True]),
         ([0, 1, 2, 3], [True, True, True]), ([4, 0, 3, 1, 2], [True, False, True, True]), ([1, 0], [True])]


@pytest.mark.parametrize("order,tied", CASES)
@pytest.mark.parametrize("rule,reference", [("plackett-luce", pl_nll_by_orders), ("pair-split", pair_split_nll)])
def test_the_ranking_losses_and_their_closed_form_gradients_match_the_definitions(order, tied, rule, reference, rng):
    x = (torch.randn(len(order), generator=rng, dtype=torch.float64) * 2).requires_grad_()
    want = reference(x, order, torch.tensor(tied))
    want.backward()
    loss, grad = table_loss(x.detach(), order, tied, rule)
    assert float(loss) == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    by_segment = torch.zeros(len(order), dtype=torch.float64).index_put_((torch.tensor(order),), grad.double())
    torch.testing.assert_close(by_segment, x.grad, rtol=1e-5, atol=1e-6)


def test_at_two_segments_both_rules_are_bradley_terry():
    x = torch.tensor([0.7, -0.4])
    for rule in ("plackett-luce", "pair-split"):
        strict, _ = table_loss(x, [0, 1], [False], rule)
        tie, _ = table_loss(x, [0, 1], [True], rule)
        assert float(strict) == pytest.approx(float(rlhf.bradley_terry_loss(x[:1] - x[1:], torch.ones(1))))
        assert float(tie) == pytest.approx(float(rlhf.bradley_terry_loss(x[:1] - x[1:], torch.full((1,), 0.5))))


def segments_of(task, rng, n, K):
    traj = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), n * K, task.horizon, keys_from(rng))
    return rlhf.Trajectories(traj.states.view(n, K, -1), traj.actions.view(n, K, -1))


@pytest.mark.parametrize("rule,reference", [("plackett-luce", pl_nll_by_orders), ("pair-split", pair_split_nll)])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_ranking_learner_equals_autograd_with_torch_optim(rule, reference, optimizer, rng):
    """Two rounds (optimiser state kept), minibatches of 5 rankings with ties: the closed-form learner
    against autograd of the definitions' mean loss and torch.optim."""
    task = rlhf.StringTask("ABCD", "DCB")
    K, n = 3, 12
    cfg = rlhf.LearnerConfig(optimizer, 0.05, epochs=3, batch_size=5)
    model = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
    theta = model.theta.clone().requires_grad_()
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([theta], lr=cfg.lr)
    learner = RankingLearner(model, cfg, rank=K, rule=rule)
    for _ in range(2):
        segments = segments_of(task, rng, n, K)
        order = torch.stack([torch.randperm(K, generator=rng) for _ in range(n)])
        tied = torch.rand(n, K - 1, generator=rng) < 0.3
        features = model.features(segments)
        for _ in range(cfg.epochs):
            for lo in range(0, n, cfg.batch_size):
                losses = []
                for i in range(lo, min(lo + cfg.batch_size, n)):
                    x = theta.view(-1)[features[i]].sum(-1)                       # [K] returns
                    losses.append(reference(x, order[i].tolist(), tied[i]))
                opt.zero_grad()
                torch.stack(losses).mean().backward()
                opt.step()
        learner.update_ranked(segments, order, tied)
    torch.testing.assert_close(model.theta, theta.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("teacher", ["boltzmann:1", "oracle"])
@pytest.mark.parametrize("rule", ["plackett-luce", "pair-split"])
def test_at_convergence_the_learned_reward_ranks_like_the_truth(teacher, rule):
    """Many rankings of four uniform strings of a random [position, token] reward: the fitted table
    orders every position's tokens as the truth does, and with the Boltzmann teacher (whose β the
    Plackett–Luce model assumes) its centred values are the truth's."""
    g = torch.Generator().manual_seed(3)
    truth = torch.tensor([-0.9, -0.3, 0.3, 0.9])[torch.stack([torch.randperm(4, generator=g) for _ in range(3)])]
    task = rlhf.TabularTask(rlhf.StringTask("ABCD", "DAB").mdp, truth, horizon=3)
    result = rlhf.train(task, teacher=teacher, budget=6000, pairs_per_round=0, rank=4, rank_learner=rule,
                        query="uniform", optimizer="adam", lr=0.05, epochs=400, heldout_pairs=50)
    learned = result.reward.view(3, 4)
    assert torch.equal(learned.argsort(-1), truth.argsort(-1))
    if teacher == "boltzmann:1":
        centred = learned - learned.mean(-1, keepdim=True)
        torch.testing.assert_close(centred, truth - truth.mean(-1, keepdim=True), atol=0.2, rtol=0)


def test_the_learner_at_convergence_is_an_independent_plackett_luce_maximum_likelihood_fit():
    """The rankings one run asked, fitted again outside the suite: the Plackett–Luce log-likelihood written
    from its definition in numpy (``Σ_s x_{o_s} − log Σ_{j≥s} exp x_{o_j}``, x a segment's summed [state,
    action] reward) and maximised by Newton's method on its analytic gradient and Hessian (a pseudo-inverse:
    each state's offset is not identified). The learner's table, centred per state, is that maximum to
    within 1e-4 (measured: 3e-6, on tables spanning 1.4 to 3.5), its log-likelihood within 1e-8 per ranking."""
    g = torch.Generator().manual_seed(5)
    truth = torch.randn(3, 4, generator=g)
    task = rlhf.TabularTask(rlhf.StringTask("ABCD", "DAB").mdp, truth, horizon=3)
    seen = []
    result = rlhf.train(task, teacher="boltzmann:1", budget=600, pairs_per_round=0, rank=4, query="uniform",
                        optimizer="adam", lr=0.05, epochs=4000, heldout_pairs=20, on_round=seen.append)
    record = seen[0]                                                                         # rlhf.train: one seed
    states, actions = record.segments.states.numpy(), record.segments.actions.numpy()      # [Q, K, T]
    order = record.labels.ranking.numpy()                                                   # [Q, K] best first
    assert not record.labels.tied.any()
    counts = np.zeros((*order.shape, 12))
    for q, k, t in np.ndindex(*states.shape):
        counts[q, k, states[q, k, t] * 4 + actions[q, k, t]] += 1
    ranked = np.take_along_axis(counts, order[..., None], axis=1)                          # [Q, K, F] best first

    def negative_log_likelihood(theta: np.ndarray) -> float:
        x = ranked @ theta                                                                  # [Q, K]
        tails = np.logaddexp.accumulate(x[:, ::-1], axis=1)[:, ::-1]                         # log Σ_{j≥s} exp x_j
        return float(-(x[:, :-1] - tails[:, :-1]).sum(1).mean())

    theta = np.zeros(12)
    for _ in range(50):
        x = ranked @ theta
        gradient, hessian = np.zeros(12), np.zeros((12, 12))
        for s in range(order.shape[1] - 1):                     # stage s: the best of the segments s..K-1
            p = np.exp(x[:, s:] - x[:, s:].max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            mean = np.einsum("qk,qkf->qf", p, ranked[:, s:])
            gradient += (ranked[:, s] - mean).sum(0)
            hessian -= np.einsum("qk,qkf,qkg->fg", p, ranked[:, s:], ranked[:, s:]) - mean.T @ mean
        theta -= np.linalg.pinv(hessian) @ gradient
    assert np.abs(gradient).max() < 1e-8 * len(order)
    mle, learned = theta.reshape(3, 4), result.reward.double().view(3, 4).numpy()
    np.testing.assert_allclose(learned - learned.mean(1, keepdims=True), mle - mle.mean(1, keepdims=True), atol=1e-4)
    assert negative_log_likelihood(learned.reshape(-1)) - negative_log_likelihood(theta) < 1e-8


# ------------------------------------------------------------------ the loop
def assert_same_run(one, other):
    assert repr(one.history) == repr(other.history)
    assert repr(one.metrics) == repr(other.metrics)
    assert torch.equal(one.reward, other.reward)


@pytest.mark.parametrize("teacher", ["boltzmann:1", "skip:0.1+equal:0.05+boltzmann:1", "oracle+mistake:0.1"])
def test_rank_two_without_ties_is_todays_bradley_terry_loop_bit_for_bit(teacher):
    task = rlhf.GridWorld(size=4, slip=0.1, horizon=8)
    settings = dict(budget=120, pairs_per_round=40, heldout_pairs=50, teacher=teacher)
    today = rlhf.train_batch(task, [0, 3], **settings)
    for extra in (dict(rank=2), dict(rank=2, rank_learner="pair-split"), dict(rank=2, rank_cost="query")):
        for one, other in zip(today, rlhf.train_batch(task, [0, 3], **settings, **extra), strict=True):
            assert_same_run(one, other)


def test_a_round_asks_its_comparisons_worth_of_rankings():
    """rank_cost="comparisons": a ranking of 4 costs 3, counted cumulatively (100 comparisons a round:
    33, 33, 34 rankings); "query": one each."""
    cfg = rlhf.TrainConfig(budget=300, pairs_per_round=100, rank=4)
    assert [cfg.queries_in_round(i) for i in range(3)] == [33, 33, 34]
    assert [cfg.queries_before(i) for i in range(3)] == [0, 33, 66]
    assert [cfg.replace(rank_cost="query").queries_in_round(i) for i in range(3)] == [100, 100, 100]
    task = rlhf.StringTask("ABC", "CAB")
    result = rlhf.train(task, budget=300, pairs_per_round=100, rank=4, heldout_pairs=20)
    assert result.history["answered"] == [33.0, 33.0, 34.0]


def test_a_round_below_a_rankings_cost_asks_nothing():
    task = rlhf.StringTask("ABC", "CAB")
    result = rlhf.train(task, budget=101, pairs_per_round=50, rank=4, heldout_pairs=20)   # 16, 17, then 1 comparison
    assert result.history["answered"] == [16.0, 17.0, 0.0]
    assert math.isnan(result.history["loss"][-1])
    assert result.history["true_return"][-1] == result.history["true_return"][-2]


def test_the_round_record_holds_the_rankings():
    task = rlhf.StringTask("ABC", "CAB")
    seen = []
    rlhf.train_batch(task, [0, 1], budget=30, pairs_per_round=30, rank=3, on_round=seen.append, heldout_pairs=20)
    record = seen[0]
    assert record.segments.states.shape == (2, 15, 3, 3) and record.labels.ranking.shape == (2, 15, 3)
    assert torch.equal(record.first.states, record.segments.states[..., 0, :])
    one = record[1]
    assert one.segments.states.shape == (15, 3, 3) and one.labels.tied.shape == (15, 2)


@pytest.mark.parametrize("changes,needle", [
    (dict(rank=1), "rank must be an integer in \\[2, 9\\], got 1"),
    (dict(rank=10), "rank must be an integer in \\[2, 9\\], got 10"),
    (dict(rank=3.0), "rank must be an integer"),
    (dict(rank_learner="listnet"), "rank_learner must be one of plackett-luce, pair-split, got 'listnet'"),
    (dict(rank_cost="minutes"), "rank_cost must be one of comparisons, query, got 'minutes'"),
    (dict(ties="bt"), "ties must be one of none, rao-kupper, davidson, got 'bt'"),
    (dict(tie_fit="sometimes", ties="davidson"), "tie_fit must be one of fixed, learned, got 'sometimes'"),
    (dict(tie_param=2.0), "tie_param needs a tie model"),
    (dict(ties="rao-kupper", tie_param=0.5), "tie_param must be a number > 1"),
    (dict(ties="davidson", tie_param=-1.0), "tie_param must be a number > 0"),
    (dict(tie_fit="learned"), "tie_fit 'learned' needs a tie model"),
    (dict(rank=3, ties="davidson"), "rank_learner='pair-split'"),
    (dict(rank=3, query="disagreement", ensemble=2), "query 'disagreement' chooses pairs"),
    (dict(rank=3, learner_model="regret"), "learner_model 'regret' fits pairs only"),
    (dict(rank=5, pairs_per_round=3), "pairs_per_round must be 0 or >= 4"),
])
def test_bad_ranking_fields_are_one_line_errors_naming_the_field(changes, needle):
    with pytest.raises(ValueError, match=needle) as error:
        rlhf.TrainConfig(budget=100).replace(**changes)
    assert "\n" not in str(error.value)


def test_a_pair_only_teacher_is_refused_for_rankings():
    task = rlhf.StringTask("ABC", "CAB")
    with pytest.raises(ValueError, match="answers pairs only"):
        rlhf.train(task, teacher="boltzmann:1+davidson:1", budget=30, rank=3)


BATCH_CASES = [
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8), dict(rank=3, teacher="boltzmann:1"), id="pl"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.0, horizon=8),
                 dict(rank=4, rank_learner="pair-split", teacher="equal:0.1+boltzmann:1", batch_size=4),
                 id="split-ties"),
    pytest.param(lambda: rlhf.StringTask("ABCD", "DAB", slip=0.2),
                 dict(rank=4, teacher="oracle", optimizer="adam", query="uniform"), id="pl-oracle-ties"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(rank=3, teacher="skip:0.3+mistake:0.1+myopic:0.9+boltzmann:1"), id="pl-skip"),
    pytest.param(lambda: rlhf.StringTask("ABC", "CAB"), dict(rank=3, ensemble=2, fit="all"), id="pl-ensemble-fit-all"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(ties="rao-kupper", tie_fit="learned", teacher="boltzmann:1+rao-kupper:2"),
                 id="rao-kupper-learned"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(rank=3, rank_learner="pair-split", ties="davidson", teacher="equal:0.1+boltzmann:1",
                      tie_fit="learned"), id="split-davidson"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(rank=3, teacher="regret+boltzmann:1", learner_model="advantage", rank_cost="query"),
                 id="pl-regret-advantage"),
]


@pytest.mark.parametrize(("make", "settings"), BATCH_CASES)
def test_a_rank_learners_seed_alone_equals_the_seed_inside_a_batch_of_32(make, settings):
    task = make()
    common = dict(budget=60, pairs_per_round=20, heldout_pairs=50) | settings
    batch = rlhf.train_batch(task, range(32), **common)
    for k in (0, 13, 31):
        assert_same_run(rlhf.train(task, seed=k, **common), batch[k])
    assert len({repr(r.history) for r in batch}) > 1


def test_a_labelling_session_shows_pairs_only():
    task = rlhf.StringTask("ABC", "CAB")
    with pytest.raises(ValueError, match="rank must be 2, got 3"):
        rlhf.session_pairs(task, rlhf.TrainConfig(budget=30, rank=3, query="uniform"))


def test_a_ranking_learning_curve_is_one_run():
    """Rankings per round depend on the round alone (cumulative comparisons), so checkpoints of one run
    equal runs of their own."""
    task = rlhf.StringTask("ABC", "CAB")
    settings = dict(pairs_per_round=50, rank=4, heldout_pairs=30)
    curve = rlhf.train_checkpoints(task, [0, 2], budgets=[100, 150], **settings)
    for budget in (100, 150):
        for alone, inside in zip(rlhf.train_batch(task, [0, 2], budget=budget, **settings), curve[budget], strict=True):
            assert_same_run(alone, inside)
