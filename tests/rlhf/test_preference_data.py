"""rlhf.PreferenceData: offline pairs, sampled pairs, a labels store, and a task's exact population;
and the enumeration of every trajectory it rests on."""

import itertools
import math

import pytest
import torch

import rlhf
from rlhf.core.enumeration import enumerate_trajectories
from rlhf.policies.exact import exact_preferences


def test_from_pairs_of_strings_keeps_each_trajectory_once():
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    data = rlhf.PreferenceData.from_pairs(task, [("ABC", "AAA"), ("ABC", "CCC"), ("BBB", "AAA")], [1.0, 0.9, 0.5])
    assert len(data) == 3 and data.length == 3 and data.trajectories.states.shape == (4, 3)
    first, second = data.pairs()
    decode = ["".join("ABC"[a] for a in row) for row in first.actions.tolist()]
    assert decode == ["ABC", "ABC", "BBB"]
    assert ["".join("ABC"[a] for a in row) for row in second.actions.tolist()] == ["AAA", "CCC", "AAA"]
    assert first.states.tolist() == [[0, 1, 2]] * 3
    assert data.prefer_first.tolist() == [1.0, 0.9, 0.5]
    assert torch.allclose(data.weight, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert not data.is_population


def test_from_pairs_of_actions_follows_a_deterministic_mdp():
    task = rlhf.GridWorld(size=3, start=[(0, 0)])
    data = rlhf.PreferenceData.from_pairs(task, [([1, 1, 2], [4, 4, 4])])       # right, right, down / stay
    first, second = data.pairs()
    assert first.states.tolist() == [[0, 3, 6]] and second.states.tolist() == [[0, 0, 0]]
    with pytest.raises(ValueError, match="deterministic MDP with one start state"):
        rlhf.PreferenceData.from_pairs(rlhf.GridWorld(size=3, slip=0.1, start=[(0, 0)]), [([1], [2])])
    stochastic = rlhf.GridWorld(size=3, slip=0.1, start=[(0, 0)])
    given = rlhf.PreferenceData.from_pairs(stochastic, [(([0, 1], [1, 2]), ([0, 0], [4, 4]))])
    assert given.pairs()[0].states.tolist() == [[0, 1]]


@pytest.mark.parametrize("pairs,match", [
    ([("ABC", "AB")], "same length"),
    ([("ABD", "AAA")], "outside vocab"),
    ([("ABC",)], "preferred, other"),
    ([], "empty"),
])
def test_from_pairs_refuses_bad_pairs(pairs, match):
    with pytest.raises(ValueError, match=match):
        rlhf.PreferenceData.from_pairs(rlhf.StringTask(), pairs)


def test_sampled_is_a_pure_function_of_the_seed():
    task = rlhf.GridWorld(size=4, slip=0.1, horizon=6)
    a = rlhf.PreferenceData.sampled(task, "boltzmann:1+mistake:0.1", 30, seed=3)
    b = rlhf.PreferenceData.sampled(task, "boltzmann:1+mistake:0.1", 30, keys=rlhf.Keys.from_seeds([3])[0])
    c = rlhf.PreferenceData.sampled(task, "boltzmann:1+mistake:0.1", 30, seed=4)
    for x, y in zip(a.pairs(), b.pairs(), strict=True):
        assert torch.equal(x.states, y.states) and torch.equal(x.actions, y.actions)
    assert torch.equal(a.prefer_first, b.prefer_first)
    assert not torch.equal(a.pairs()[0].states, c.pairs()[0].states)
    assert len(a) == 30 and a.length == 6


def test_sampled_pairs_are_the_rollouts_labelled_by_the_teacher():
    task = rlhf.StringTask(vocab="ABC", target="ABCA")
    data = rlhf.PreferenceData.sampled(task, "oracle", 50, seed=0)
    first, second = data.pairs()
    r1 = rlhf.step_rewards(task.true_reward, first).sum(-1)
    r2 = rlhf.step_rewards(task.true_reward, second).sum(-1)
    expected = (r1 > r2).double() + 0.5 * (r1 == r2).double()
    assert torch.equal(data.prefer_first, expected)


def test_sampled_keeps_skipped_pairs_with_weight_zero():
    task = rlhf.StringTask(vocab="ABC", target="ABCA")
    data = rlhf.PreferenceData.sampled(task, "skip:0.5+oracle", 60, seed=1)
    assert len(data) == 60 and 0 < int(data.answered.sum()) < 60
    assert float(data.weight.sum()) == pytest.approx(1.0)
    assert bool((data.weight[~data.answered] == 0).all())


def test_from_store_reads_a_persons_answers(tmp_path):
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    keys = rlhf.Keys.from_seeds([0])[0]
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 8, 3, keys).split()
    with rlhf.LabelStore(tmp_path, config={"session": 1}) as store:
        for i, answer in enumerate("12=s"):
            store.append(first[i], second[i], answer)
    data = rlhf.PreferenceData.from_store(tmp_path)
    assert len(data) == 4 and data.prefer_first.tolist()[:3] == [1.0, 0.0, 0.5]
    assert data.answered.tolist() == [True, True, True, False]
    got_first, _ = data.pairs()
    assert torch.equal(got_first.actions, first.actions[:4])


def brute_force_trajectories(mdp, policy, T):
    """Every (states, actions) of positive probability, by looping over every sequence."""
    S, A = mdp.num_states, mdp.num_actions
    P = mdp.dense_transitions().double()             # action noise included: chosen -> successor
    executed = mdp.executed_policy(policy.double())
    out = {}
    for states in itertools.product(range(S), repeat=T):
        for actions in itertools.product(range(A), repeat=T):
            p = float(mdp.start[states[0]])
            for t in range(T):
                p *= float(executed[states[t], actions[t]])
                if t + 1 < T:
                    p *= float(mdp.executed_transitions.double()[actions[t], states[t], states[t + 1]])
            if p > 0:
                out[(states, actions)] = p
    del P
    return out


@pytest.mark.parametrize("make", [
    lambda: rlhf.GridWorld(size=2, slip=0.3, start=[(0, 0)]).mdp,
    lambda: rlhf.StringTask("AB", "ABA", slip=0.2).mdp,
])
def test_enumeration_matches_brute_force(make, rng):
    mdp = make()
    policy = torch.softmax(torch.randn(mdp.num_states, mdp.num_actions, generator=rng), -1)
    policy[0, 0] = 0.0
    policy = policy / policy.sum(-1, keepdim=True)
    T = 3
    traj, probs = enumerate_trajectories(mdp, policy, T)
    expected = brute_force_trajectories(mdp, policy, T)
    got = {(tuple(s), tuple(a)): float(p) for s, a, p in
           zip(traj.states.tolist(), traj.actions.tolist(), probs, strict=True)}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-6)          # float32 probabilities, summed in float64


def test_enumeration_refuses_too_many():
    with pytest.raises(ValueError, match="too many"):
        enumerate_trajectories(rlhf.GridWorld(size=5).mdp, None, 30, max_trajectories=10_000)


def test_population_is_every_pair_with_exact_weights_and_probabilities():
    task = rlhf.StringTask(vocab="ABC", target="ABCABC")
    data = rlhf.PreferenceData.population(task, "boltzmann:2")
    assert data.is_population and data.trajectories.states.shape[0] == 729 and len(data) == 729 * 728 // 2
    assert torch.allclose(data.weight, torch.full_like(data.weight, 1 / len(data)))
    first, second = data.pairs()
    margin = (rlhf.step_rewards(task.true_reward, first).double().sum(-1)
              - rlhf.step_rewards(task.true_reward, second).double().sum(-1))
    torch.testing.assert_close(data.prefer_first, torch.sigmoid(2 * margin), rtol=1e-12, atol=1e-15)


def test_population_under_a_non_uniform_policy_weights_pairs_by_their_probability():
    task = rlhf.StringTask(vocab="AB", target="AB")
    policy = torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=torch.float64)
    data = rlhf.PreferenceData.population(task, "oracle", policy=policy)
    p = {"AA": 0.8 * 0.3, "AB": 0.8 * 0.7, "BA": 0.2 * 0.3, "BB": 0.2 * 0.7}
    names = ["".join("AB"[a] for a in row) for row in data.trajectories.actions.tolist()]
    raw = {(names[i], names[j]): p[names[i]] * p[names[j]] for i, j in zip(data.first.tolist(), data.second.tolist(),
                                                                          strict=True)}
    total = sum(raw.values())
    pairs = zip(data.first.tolist(), data.second.tolist(), strict=True)
    for (i, j), w in zip(pairs, data.weight.tolist(), strict=True):
        assert w == pytest.approx(raw[(names[i], names[j])] / total, rel=1e-12)


def test_exact_preferences_follow_b_prefs_order():
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])      # returns 1, 0, 2
    i, j = torch.tensor([0, 1, 2]), torch.tensor([1, 0, 0])
    teacher = rlhf.Teacher(beta=2.0, mistake=0.1)
    p, answered = exact_preferences(teacher, scores, i, j, (0.0, 1.0))
    bt = torch.sigmoid(torch.tensor([2.0, -2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(p, 0.9 * bt + 0.1 * (1 - bt))
    p, _ = exact_preferences(rlhf.Teacher.parse("deterministic"), scores, torch.tensor([0, 1]), torch.tensor([0, 0]),
                             (0.0, 1.0))
    assert p.tolist() == [0.0, 0.0]                                    # a tie goes to the second
    p, answered = exact_preferences(rlhf.Teacher.parse("skip:0.3+equal:0.6+oracle"), scores, i, j, (0.0, 1.0))
    assert answered.tolist() == [True, True, True] and p.tolist() == [0.5, 0.5, 0.5]     # normalised gaps 0.5
    p, answered = exact_preferences(rlhf.Teacher.parse("skip:0.75+oracle"), scores, i, j, (0.0, 1.0))
    assert answered.tolist() == [False, False, True]
    myopic = rlhf.Teacher.parse("myopic:0.5+boltzmann:1")
    p, _ = exact_preferences(myopic, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0]), torch.tensor([1]),
                             (0.0, 1.0))
    assert float(p) == pytest.approx(1 / (1 + math.exp(-(0.5 - 1.0))))


def test_population_needs_a_simulated_teacher_and_a_small_task():
    with pytest.raises(ValueError, match="simulated teacher"):
        rlhf.PreferenceData.population(rlhf.StringTask(), teacher=object())
    with pytest.raises(ValueError, match="max_pairs"):
        rlhf.PreferenceData.population(rlhf.StringTask(vocab="ABCD", target="ABCABC"), "oracle", max_pairs=1000)
