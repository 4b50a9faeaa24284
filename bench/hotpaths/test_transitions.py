"""Building gridworld transitions: index arithmetic vs the seed's per-state search."""

import pytest
import torch

import rlhf

from ..timings import reference
from .conftest import GRID_SIZES, SEARCH_MAX_SIZE, info, rounds_for


@pytest.mark.benchmark(group="transitions")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", GRID_SIZES)
def test_transitions(benchmark, size, slip):
    info(benchmark, "transitions", "fast", size * size, task="gridworld", size=size, slip=slip)
    task = benchmark.pedantic(rlhf.GridWorld, kwargs={"size": size, "slip": slip},
                              rounds=rounds_for(size * size, "fast"), warmup_rounds=1)
    assert task.mdp.num_states == size * size


@pytest.mark.benchmark(group="transitions")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", [n for n in GRID_SIZES if n <= SEARCH_MAX_SIZE])
def test_transitions_reference(benchmark, size, slip):
    info(benchmark, "transitions", "reference", size * size, task="gridworld", size=size, slip=slip)
    P = benchmark.pedantic(reference.dense_transitions_by_search, args=(size, slip),
                           rounds=rounds_for(size * size, "reference"), warmup_rounds=0)
    torch.testing.assert_close(P, rlhf.GridWorld(size=size, slip=slip).mdp.dense_transitions())
