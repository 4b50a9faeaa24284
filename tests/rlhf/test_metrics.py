import pytest
import torch
from helpers import dense_hard_max_q, keys_from

import rlhf
from rlhf.learning.learner import LearnerConfig, RewardLearner


def test_epic_invariances(rng):
    true = torch.randn(30, generator=rng)
    potential = torch.randn(30, generator=rng)
    assert rlhf.epic_distance(3.0 * true + 2.0, true) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.epic_distance(-true, true) == pytest.approx(1.0, abs=1e-6)
    other = rlhf.epic_distance(potential, true)
    assert 0.0 < other < 1.0


def brute_force_epic(learned, true, discount):
    """EPIC from its definition: the dense [S, A, S] canonical rewards
    ``R(s,a,s') + γ E[R(s',A,S')] − E[R(s,A,S')] − γ E[R]``, then the Pearson distance over all entries."""
    def canonical(r):
        r = r.double()
        if r.dim() == 1:                                      # R(s, a, s') = r(s): any A will do
            r = r.unsqueeze(-1).expand(-1, 3)
        row = r.mean(-1)                                      # E_{A,S'}[R(s, A, S')]
        return r[:, :, None] + discount * row[None, None, :] - row[:, None, None] - discount * r.mean()
    return rlhf.pearson_distance(canonical(learned), canonical(true))


@pytest.mark.parametrize("shape", [(7, 4), (9,)])
@pytest.mark.parametrize("discount", [1.0, 0.9, 0.3])
def test_epic_closed_form_equals_dense_canonical_rewards(shape, discount, rng):
    true = torch.randn(*shape, generator=rng, dtype=torch.float64)
    learned = 0.5 * true + torch.randn(*shape, generator=rng, dtype=torch.float64)
    expected = brute_force_epic(learned, true, discount)
    assert 0.05 < expected < 0.95
    assert rlhf.epic_distance(learned, true, discount) == pytest.approx(expected, abs=1e-9)


def test_epic_on_tables_counts_per_state_shifts(rng):
    """A per-state shift of an [S, A] reward changes which actions an MDP's policy prefers
    over which states: not an equivalence in a general MDP (only in the string task)."""
    table = torch.randn(4, 3, generator=rng)
    shift = 3.0 * torch.randn(4, 1, generator=rng)
    for discount in (1.0, 0.9):
        assert rlhf.epic_distance(table + shift, table, discount) > 0.05
        assert rlhf.epic_distance(table + shift, table, discount) == pytest.approx(
            brute_force_epic(table + shift, table, discount), abs=1e-9)


@pytest.mark.parametrize("shape", [(5, 3), (12,)])
def test_epic_invariant_to_scale_and_constant_and_one_for_negation(shape, rng):
    true = torch.randn(*shape, generator=rng)
    for discount in (1.0, 0.9):
        assert rlhf.epic_distance(2.5 * true, true, discount) == pytest.approx(0.0, abs=1e-6)
        assert rlhf.epic_distance(true - 4.0, true, discount) == pytest.approx(0.0, abs=1e-6)
        assert rlhf.epic_distance(-true, true, discount) == pytest.approx(1.0, abs=1e-6)
        assert rlhf.epic_distance(torch.full(shape, 2.0), true, discount) == pytest.approx(0.5 ** 0.5)


def test_epic_on_state_rewards_is_the_pearson_distance_of_centred_rewards(rng):
    learned, true = torch.randn(20, generator=rng), torch.randn(20, generator=rng)
    old = rlhf.pearson_distance(learned, true)                          # what [S] rewards always got
    for discount in (1.0, 0.7):
        assert rlhf.epic_distance(learned, true, discount) == pytest.approx(old, abs=1e-12)


def test_string_task_epic_still_ignores_per_position_shifts(rng):
    """The string task's metric keeps its value: per-position offsets removed, then EPIC."""
    task = rlhf.StringTask(vocab="ABCD", target="DCBA")
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 60, task.horizon, keys_from(rng)).split()
    margin = rlhf.step_rewards(task.true_reward, first).sum(-1) - rlhf.step_rewards(task.true_reward, second).sum(-1)
    model = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
    learner = RewardLearner(model, LearnerConfig("sgd", 0.05, epochs=3, batch_size=5))
    learner.update(first, second, torch.sigmoid(margin))
    table = model.reward().detach()
    centre = lambda t: t - t.mean(-1, keepdim=True)
    epic = task.convergence_metrics(model, task.defaults)["epic"]
    assert epic == pytest.approx(rlhf.pearson_distance(centre(table), centre(task.true_reward)), abs=1e-12)
    shifted = torch.randn(task.horizon, 1, generator=rng)
    model.theta += shifted.expand_as(table).flatten()                 # a per-position shift: same preferences
    assert task.convergence_metrics(model, task.defaults)["epic"] == pytest.approx(epic, abs=1e-6)
    assert 0.05 < epic < 0.95


def test_total_variation():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])
    assert rlhf.total_variation(p, q) == pytest.approx(0.5)
    assert rlhf.total_variation(p, p) == 0.0


def test_regret_is_zero_for_the_truth_and_one_for_a_constant_reward():
    task = rlhf.GridWorld(size=5, start=[(0, 0)])
    assert rlhf.normalized_regret(task.mdp, task.true_reward, task.true_reward, 30) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.normalized_regret(task.mdp, torch.zeros(25), task.true_reward, 30) == pytest.approx(1.0, abs=1e-5)
    assert rlhf.normalized_regret(task.mdp, -task.true_reward, task.true_reward, 30) > 1.0


def test_preference_accuracy_ignores_ties():
    learned = torch.tensor([1.0, -1.0, 2.0, 0.5])
    truth = torch.tensor([2.0, 1.0, 0.0, 3.0])
    assert rlhf.preference_accuracy(learned, truth) == pytest.approx(2 / 3)


def test_scaled_return_is_scale_free_and_spans_random_to_optimal():
    import math
    task = rlhf.GridWorld(size=5, slip=0.1)
    mdp, H, truth = task.mdp, task.horizon, task.true_reward
    assert rlhf.scaled_return(mdp, truth, truth, H) == pytest.approx(1.0, abs=1e-6)
    # scale does not matter to a greedy policy; soft planning's regret does see it
    compressed = truth / 50
    assert rlhf.scaled_return(mdp, compressed, truth, H) == pytest.approx(1.0, abs=1e-6)
    assert rlhf.normalized_regret(mdp, compressed, truth, H) > 0.3
    # a flat reward's greedy policy is uniform (every action ties): 0; the negated truth is worse than random
    assert rlhf.scaled_return(mdp, torch.zeros(25), truth, H) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.scaled_return(mdp, -truth, truth, H) < 0
    # V* is the finite-horizon optimum: the hard-max value at the start, by the independent program
    v_star = float((mdp.start.double() * dense_hard_max_q(mdp, truth, H).max(-1).values).sum())
    j_uniform = rlhf.policy_return(mdp, rlhf.uniform_policy(mdp), truth, H)
    greedy = rlhf.soft_policy(rlhf.soft_value_iteration(mdp, truth * 2, H, temperature=math.inf), math.inf)
    expected = (rlhf.policy_return(mdp, greedy, truth, H) - j_uniform) / (v_star - j_uniform)
    assert rlhf.scaled_return(mdp, truth * 2, truth, H) == pytest.approx(expected, rel=1e-6)


def test_both_tasks_report_near_optimal_beside_success():
    for task, budget in ((rlhf.GridWorld(size=4, horizon=8), 200), (rlhf.StringTask("ABC", "CAB"), 50)):
        metrics = rlhf.train(task, budget=budget).metrics
        assert metrics["near_optimal"] == float(metrics["scaled_return"] >= rlhf.NEAR_OPTIMAL_SCALED_RETURN)
