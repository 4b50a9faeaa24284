"""Knox et al.'s random feature gridworlds (#14): deterministic per seed, exact proportions."""

import collections

import pytest
import torch

import rlhf
from rlhf.tasks import random_gridworld as rg


def test_the_same_seed_is_the_same_world_and_seeds_differ():
    one, again, other = rlhf.RandomGridWorld(7), rlhf.RandomGridWorld(7), rlhf.RandomGridWorld(8)
    assert torch.equal(one.true_reward, again.true_reward) and torch.equal(one.cell_types, again.cell_types)
    assert torch.equal(one.mdp.next_states, again.mdp.next_states) and repr(one) == repr(again)
    assert repr(one) != repr(other) or not torch.equal(one.cell_types, other.cell_types)


@pytest.mark.parametrize("seed", range(40))
def test_cell_types_take_exactly_their_share(seed):
    world = rlhf.RandomGridWorld(seed)
    cells = world.height * world.width
    counts = collections.Counter(world.cell_types.tolist())
    assert counts[rg.GOAL] == 1
    left = cells - 1
    for kind in (rg.SHEEP, rg.ROADBLOCK, rg.COIN):
        expected = min(round(world.shares[kind] * cells), left)
        assert counts[kind] == expected
        left -= expected
    assert counts[rg.EMPTY] == left


def test_every_parameter_value_is_drawn_about_equally_often():
    worlds = [rlhf.RandomGridWorld(seed) for seed in range(600)]
    for options, value in ((rg.HEIGHTS, lambda w: w.height), (rg.WIDTHS, lambda w: w.width),
                           (rg.GOAL_REWARDS, lambda w: w.goal_reward), (rg.SHEEP_REWARDS, lambda w: w.sheep_reward),
                           (rg.ROADBLOCK_PENALTIES, lambda w: w.roadblock_penalty),
                           (rg.SHEEP_SHARES, lambda w: w.shares[rg.SHEEP]),
                           (rg.ROADBLOCK_SHARES, lambda w: w.shares[rg.ROADBLOCK]),
                           (rg.COIN_SHARES, lambda w: w.shares[rg.COIN])):
        counts = collections.Counter(value(w) for w in worlds)
        assert set(counts) == set(options)
        expected = len(worlds) / len(options)          # 5 standard errors of a binomial count
        assert all(abs(c - expected) < 5 * (expected * (1 - 1 / len(options))) ** 0.5 for c in counts.values())


def test_rewards_are_those_of_the_cell_entered_and_terminal_cells_absorb():
    world = rlhf.RandomGridWorld(2)
    value = {rg.EMPTY: -1.0, rg.GOAL: world.goal_reward, rg.SHEEP: world.sheep_reward,
             rg.ROADBLOCK: -1.0 + world.roadblock_penalty, rg.COIN: 0.0}
    next_states = world.mdp.next_states[..., 0]                            # [A, S], deterministic
    H = world.height
    for s in range(world.height * world.width):
        x, y = divmod(s, H)
        for a, (dx, dy) in enumerate(rg._MOVES):
            if world.terminal[s]:
                assert int(next_states[a, s]) == s and float(world.true_reward[s, a]) == 0.0
                continue
            nx, ny = min(max(x + dx, 0), world.width - 1), min(max(y + dy, 0), H - 1)
            assert int(next_states[a, s]) == nx * H + ny
            assert float(world.true_reward[s, a]) == value[int(world.cell_types[nx * H + ny])]
    start = world.mdp.start
    assert torch.equal(start > 0, ~world.terminal) and float(start.max()) == pytest.approx(float(start[start > 0].min()))


def test_many_noiseless_pairs_recover_a_small_world_s_reward():
    world = rlhf.RandomGridWorld(3)                                   # 6 x 5, no sheep or roadblocks
    assert (world.height, world.width) == (6, 5)
    result = rlhf.train(world, teacher="oracle", budget=3000)
    assert result.metrics["near_optimal"] == 1.0 and result.metrics["epic"] < 0.1
