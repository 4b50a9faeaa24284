import math

import pytest
import torch

import rlhf
from rlhf.tasks.gridworld import grid_moves


def state(x, y, n):
    return x * n + y


def test_moves_follow_the_seed_conventions():
    n = 4
    moves = grid_moves(n)              # up, right, down, left, stay
    s = state(1, 2, n)
    assert [int(moves[m, s]) for m in range(5)] == [
        state(1, 3, n), state(2, 2, n), state(1, 1, n), state(0, 2, n), s]
    corner = state(3, 3, n)            # walls keep the agent in place
    assert int(moves[0, corner]) == corner and int(moves[1, corner]) == corner
    origin = state(0, 0, n)
    assert int(moves[2, origin]) == origin and int(moves[3, origin]) == origin


def test_slip_goes_perpendicular_with_half_the_slip_each():
    n = 5
    P = rlhf.GridWorld(size=n, slip=0.2).mdp.dense_transitions()
    s = state(2, 2, n)
    up = P[0, s]
    assert up[state(2, 3, n)] == pytest.approx(0.8)
    assert up[state(1, 2, n)] == pytest.approx(0.1) and up[state(3, 2, n)] == pytest.approx(0.1)
    assert P[4, s, s] == pytest.approx(1.0)        # stay never slips
    right = P[1, s]
    assert right[state(2, 3, n)] == pytest.approx(0.1) and right[state(2, 1, n)] == pytest.approx(0.1)


def test_true_reward_and_default_start():
    task = rlhf.GridWorld(size=3, goal=[(2, 2), (0, 1)])
    assert task.target.sum() == pytest.approx(1.0)
    assert task.true_reward[state(2, 2, 3)] == pytest.approx(math.log(0.5 + 1e-6))
    assert task.true_reward[state(1, 1, 3)] == pytest.approx(math.log(1e-6))
    start = task.mdp.start                                   # no start: every non-goal cell
    assert start[task.goal_states].sum() == 0
    assert torch.allclose(start[start > 0], torch.full((7,), 1 / 7))


def test_a_million_states_is_one_index_array():
    task = rlhf.GridWorld(size=1000)
    assert task.mdp.moves.shape == (5, 1_000_000)
    assert task.mdp.moves.element_size() * task.mdp.moves.numel() < 100 * 2**20


@pytest.mark.parametrize("kwargs,needle", [
    ({"size": 1}, "size"), ({"size": 2.5}, "size"), ({"slip": 1.0}, "slip"), ({"slip": -0.1}, "slip"),
    ({"goal": [(5, 0)]}, "goal"), ({"start": [(0, -1)]}, "start"), ({"horizon": 0}, "horizon"),
    ({"goal": []}, "goal"),
])
def test_bad_arguments_name_the_argument_and_value(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        rlhf.GridWorld(**({"size": 5} | kwargs))


def test_bad_transitions_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        rlhf.TabularMDP.from_sparse(torch.zeros(1, 2, 1, dtype=torch.long), torch.full((1, 2, 1), 0.5),
                                    torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rlhf.TabularMDP.from_sparse(torch.zeros(1, 2, 2, dtype=torch.long),
                                    torch.tensor([[[1.5, -0.5], [1.0, 0.0]]]), torch.tensor([1.0, 0.0]))
