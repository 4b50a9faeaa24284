"""Sweep throughput: one configuration of the default sweep (20 seeds, 5 budgets as checkpoints),
batched as the harness runs it, against one seed at a time."""

from pathlib import Path

import pytest

import rlhf

from ..sweep import config
from ..timings.report import THROUGHPUT_SEEDS as SEEDS
from .conftest import MEDIAN_OF_3, info

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CASES = [("gridworld", 5), ("gridworld", 10), ("gridworld", 15), ("strings", 3), ("strings", 5), ("strings", 8)]


def _group(task_name: str, size: int) -> tuple[rlhf.Task, rlhf.TrainConfig, list[int]]:
    """The default sweep's cells for (task, size), slip 0.1 (uniform start for the gridworld)."""
    cells = [c for c in config.load(CONFIGS / "default.toml").cells
             if c.task == task_name and c.size == size and c.slip == 0.1 and c.start in ("", "uniform")]
    return cells[0].make_task(), cells[0].train, sorted({c.budget for c in cells})


@pytest.mark.benchmark(group="sweep_throughput")
@pytest.mark.parametrize(("task_name", "size"), CASES)
def test_group_batched(benchmark, task_name, size):
    task, train, budgets = _group(task_name, size)
    info(benchmark, "sweep_throughput", "batched", task.mdp.num_states, task=task_name, size=size, slip=0.1,
         cells=SEEDS * len(budgets))
    out = benchmark.pedantic(rlhf.train_checkpoints, args=(task, range(SEEDS), budgets), kwargs={"config": train},
                             **MEDIAN_OF_3)
    assert sorted(out) == budgets and all(len(v) == SEEDS for v in out.values())


@pytest.mark.benchmark(group="sweep_throughput")
@pytest.mark.parametrize(("task_name", "size"), CASES)
def test_group_one_seed_at_a_time(benchmark, task_name, size):
    """One seed's checkpointed run; the group costs SEEDS × this median."""
    task, train, budgets = _group(task_name, size)
    info(benchmark, "sweep_throughput", "one-seed", task.mdp.num_states, task=task_name, size=size, slip=0.1,
         cells=len(budgets))
    out = benchmark.pedantic(rlhf.train_checkpoints, args=(task, [3], budgets), kwargs={"config": train},
                             **MEDIAN_OF_3)
    assert sorted(out) == budgets
