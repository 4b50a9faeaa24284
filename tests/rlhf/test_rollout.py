"""The rollout sampler: one search per step in a flat table of (action, successor) outcomes."""

import torch

import rlhf
from rlhf.rollout import _RESOLUTION, _StepTable


def one_step_frequencies(mdp, policy, rng, n):
    """Empirical P(a, s' | s) from ``n`` one-step rollouts out of each start state."""
    S, A = mdp.num_states, mdp.num_actions
    counts = torch.zeros(S, A, S)
    for s in range(S):
        start = torch.zeros(S)
        start[s] = 1.0
        one = rlhf.TabularMDP.from_sparse(mdp.next_states, mdp.probs, start, mdp.action_noise)
        traj = rlhf.rollout(one, policy, n, 2, rng)
        counts[s].index_put_((traj.actions[:, 0], traj.states[:, 1]), torch.ones(n), accumulate=True)
    return counts / n


def test_action_and_successor_frequencies_match_the_model(rng):
    """Slip and action noise together: the joint of executed action and successor is right."""
    grid = rlhf.GridWorld(size=3, slip=0.3).mdp
    mdp = rlhf.TabularMDP.from_sparse(grid.next_states, grid.probs, grid.start, action_noise=0.2)
    policy = torch.softmax(2 * torch.randn(9, 5, generator=rng), dim=-1)
    executed = policy @ mdp.executed_action_probs()
    expected = executed.unsqueeze(-1) * mdp.executed_transitions.transpose(0, 1)     # [S, A, S']
    n = 20_000
    observed = one_step_frequencies(mdp, policy, rng, n)
    sigma = (expected * (1 - expected) / n).sqrt()
    assert ((observed - expected).abs() <= 5 * sigma + 1e-6).all()
    assert (observed[expected == 0] == 0).all()


def test_extreme_draws_never_pick_a_zero_probability_outcome_or_leave_the_row():
    """Draws 0 and 2³² − 1 at every state, with zero-probability actions first and last."""
    mdp = rlhf.GridWorld(size=3, slip=0.0).mdp
    policy = torch.zeros(9, 5)
    policy[:, 1:4] = torch.tensor([0.2, 0.5, 0.3])
    table = _StepTable(mdp, policy)
    states = torch.arange(9).repeat(2)
    draws = torch.cat([torch.zeros(9, dtype=torch.int64), torch.full((9,), _RESOLUTION - 1)])
    outcomes = table.draw(states, draws.clone())
    actions = table.action(outcomes)
    assert (outcomes // 5 == states).all()                          # each draw stays in its state's row
    assert (actions[:9] == 1).all() and (actions[9:] == 3).all()
    assert torch.equal(table.successor[outcomes], mdp.action_successors[actions, states])
