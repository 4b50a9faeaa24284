"""The rollout sampler: one inverse-CDF draw per step over a state's (action, successor) outcomes."""

import importlib

import pytest
import torch

import rlhf

module = importlib.import_module("rlhf.core.rollout")     # rlhf.rollout is also the function


def one_step_frequencies(mdp, policy, keys, n):
    """Empirical P(a, s' | s) from ``n`` one-step rollouts out of each start state."""
    S, A = mdp.num_states, mdp.num_actions
    counts = torch.zeros(S, A, S)
    for s in range(S):
        start = torch.zeros(S)
        start[s] = 1.0
        one = rlhf.TabularMDP.from_sparse(mdp.next_states, mdp.probs, start, mdp.action_noise)
        traj = rlhf.rollout(one, policy, n, 2, keys.fold(s))
        counts[s].index_put_((traj.actions[:, 0], traj.states[:, 1]), torch.ones(n), accumulate=True)
    return counts / n


@pytest.mark.parametrize("sign_bits_from", [module._SIGN_BITS_FROM, 1])       # both ways of counting
def test_action_and_successor_frequencies_match_the_model(rng, keys, sign_bits_from, monkeypatch):
    """Slip and action noise together: the joint of executed action and successor is right."""
    monkeypatch.setattr(module, "_SIGN_BITS_FROM", sign_bits_from)
    grid = rlhf.GridWorld(size=3, slip=0.3).mdp
    mdp = rlhf.TabularMDP.from_sparse(grid.next_states, grid.probs, grid.start, action_noise=0.2)
    policy = torch.softmax(2 * torch.randn(9, 5, generator=rng), dim=-1)
    executed = policy @ mdp.executed_action_probs()
    expected = executed.unsqueeze(-1) * mdp.executed_transitions.transpose(0, 1)     # [S, A, S']
    n = 20_000
    observed = one_step_frequencies(mdp, policy, keys, n)
    sigma = (expected * (1 - expected) / n).sqrt()
    assert ((observed - expected).abs() <= 5 * sigma + 1e-6).all()
    assert (observed[expected == 0] == 0).all()


@pytest.mark.parametrize("sign_bits_from", [module._SIGN_BITS_FROM, 1])
def test_extreme_draws_never_pick_a_zero_probability_outcome_or_leave_the_row(sign_bits_from, monkeypatch):
    """Draws 0 and 2³¹ − 1 at every state, with zero-probability actions first and last."""
    monkeypatch.setattr(module, "_SIGN_BITS_FROM", sign_bits_from)
    mdp = rlhf.GridWorld(size=3, slip=0.0).mdp
    policy = torch.zeros(1, 9, 5)
    policy[..., 1:4] = torch.tensor([0.2, 0.5, 0.3])
    table = module._StepTable(mdp, policy)
    rows = torch.arange(9, dtype=torch.int32).repeat(2)
    draws = torch.cat([torch.zeros(9, dtype=torch.int32), torch.full((9,), 2**31 - 1, dtype=torch.int32)])
    outcomes = table.draw(rows, draws, out=torch.empty_like(rows))
    actions = outcomes // table.slots
    assert (actions[:9] == 1).all() and (actions[9:] == 3).all()
    successors = table.successor(rows, outcomes, out=torch.empty_like(rows))
    assert torch.equal(successors.long(), mdp.action_successors[actions.long(), rows.long()])


def test_batched_rollouts_give_each_key_its_own_trajectories(keys):
    """[B] keys and [B, S, A] policies: row k is the rollout of key k alone with policy k."""
    mdp = rlhf.GridWorld(size=3, slip=0.2).mdp
    batch = rlhf.Keys.from_seeds(range(5))
    policy = torch.softmax(torch.randn(5, 9, 5, generator=torch.Generator().manual_seed(0)), -1)
    together = rlhf.rollout(mdp, policy, 40, 6, batch)
    assert together.states.shape == (5, 40, 6)
    for k in range(5):
        alone = rlhf.rollout(mdp, policy[k], 40, 6, batch[k])
        assert torch.equal(alone.states, together.states[k]) and torch.equal(alone.actions, together.actions[k])
    assert not torch.equal(together.states[0], together.states[1])


def test_both_ways_of_counting_give_the_same_rollout(monkeypatch):
    """Comparisons (few trajectories) and sign bits (many) count the same CDF entries: a key alone
    and inside a batch large enough to switch draw the same trajectories."""
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    keys = rlhf.Keys.from_seeds(range(40))
    policy = torch.softmax(torch.randn(40, 16, 5, generator=torch.Generator().manual_seed(1)), -1)
    together = rlhf.rollout(mdp, policy, 200, 8, keys)                   # 8,000 trajectories a step
    assert 200 < module._SIGN_BITS_FROM <= 8000
    for k in (0, 17, 39):
        alone = rlhf.rollout(mdp, policy[k], 200, 8, keys[k])
        assert torch.equal(alone.states, together.states[k]) and torch.equal(alone.actions, together.actions[k])


@pytest.mark.parametrize("num", [7, 0])
def test_rollouts_equal_a_step_by_step_inverse_cdf_walk(num):
    """The layout-free definition, one trajectory and one step at a time: start = the number of
    start-CDF entries below draw j, outcome a·K + k = the number of entries of the state's
    (action, slot) CDF row below draw (t + 1)·num + j, then the slot's successor. Slip and action
    noise, two keys, an odd number of trajectories (and none)."""
    grid = rlhf.GridWorld(size=3, slip=0.2).mdp
    mdp = rlhf.TabularMDP.from_sparse(grid.next_states, grid.probs, grid.start, action_noise=0.1)
    keys = rlhf.Keys.from_seeds([3, 11])
    policy = torch.softmax(torch.randn(2, 9, 5, generator=torch.Generator().manual_seed(2)), -1)
    length, (A, S, K) = 5, mdp.next_states.shape
    got = rlhf.rollout(mdp, policy, num, length, keys)
    assert got.states.shape == got.actions.shape == (2, num, length)
    draws = keys.bits31((length + 1) * num)
    start_cdf = module._integer_cdf(mdp.start)
    for b in range(2):
        joint = mdp.executed_policy(policy[b]).double().unsqueeze(-1) * mdp.probs.transpose(0, 1).double()
        rows = module._integer_cdf(joint.reshape(S, A * K))                                     # [S, A·K]
        for j in range(num):
            state = int((start_cdf < draws[b, j]).sum())
            for t in range(length):
                outcome = int((rows[state] < draws[b, (t + 1) * num + j]).sum())
                action, slot = divmod(outcome, K)
                assert (int(got.states[b, j, t]), int(got.actions[b, j, t])) == (state, action)
                state = int(mdp.next_states[action, state, slot])
