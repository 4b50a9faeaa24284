"""The cost of a reward ensemble (#13): 10 rounds of the seed gridworld (100 pairs a round, 50 Adam
steps) with E = 1 and E = 5 bagged members, for one seed and for a harness group's 20 seeds."""

import pytest

import rlhf

from ..timings.report import ENSEMBLE_ROUNDS, ENSEMBLE_SEEDS
from .conftest import info


@pytest.mark.benchmark(group="ensemble")
@pytest.mark.parametrize("seeds", ENSEMBLE_SEEDS)
@pytest.mark.parametrize("members", [1, 5])
def test_ensemble_rounds(benchmark, members, seeds):
    task = rlhf.preset_task("seed-gridworld")
    info(benchmark, "ensemble", f"E={members}", 25, task="gridworld", size=5, slip=0.0, seeds=seeds)
    results = benchmark.pedantic(rlhf.train_batch, args=(task, range(seeds)),
                                 kwargs={"budget": 100 * ENSEMBLE_ROUNDS, "ensemble": members}, rounds=5,
                                 warmup_rounds=1)
    assert len(results) == seeds and all(r.metrics["goal_hit"] in (0.0, 1.0) for r in results)
