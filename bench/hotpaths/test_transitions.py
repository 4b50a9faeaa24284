"""Building gridworld transitions: index arithmetic vs the seed's per-state search."""

import pytest
import torch

import rlhf

from ..timings import reference
from .conftest import GRID_SIZES, MEDIAN_OF_3, SEARCH_MAX_SIZE, info, rounds_for


@pytest.mark.benchmark(group="transitions")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", GRID_SIZES)
def test_transitions(benchmark, size, slip):
    info(benchmark, "transitions", "fast", size * size, task="gridworld", size=size, slip=slip)
    task = benchmark.pedantic(rlhf.GridWorld, kwargs={"size": size, "slip": slip},
                              **rounds_for(size * size, "fast"))
    assert task.mdp.num_states == size * size


@pytest.mark.benchmark(group="transitions")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", [n for n in GRID_SIZES if n <= SEARCH_MAX_SIZE])
def test_transitions_reference(benchmark, size, slip):
    info(benchmark, "transitions", "reference", size * size, task="gridworld", size=size, slip=slip)
    # O(S²): 0.01 s at N = 10, 0.1 s at N = 20, a second at N = 40
    rounds = rounds_for(size * size, "reference") if size != 20 else MEDIAN_OF_3
    P = benchmark.pedantic(reference.dense_transitions_by_search, args=(size, slip), **rounds)
    torch.testing.assert_close(P, rlhf.GridWorld(size=size, slip=slip).mdp.dense_transitions())
