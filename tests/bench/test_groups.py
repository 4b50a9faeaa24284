"""How a sweep's cells become groups (:func:`bench.sweep.cell.groups`): one configuration's seeds and
budgets, ordered by their estimated cost, the largest split into parts of their seeds, never
changing a result."""

from pathlib import Path

from bench.sweep import config
from bench.sweep.cell import groups, run_group

CONFIGS = Path(__file__).resolve().parents[2] / "bench" / "configs"

SPLIT_CONFIG = """
[gridworld]
sizes = [10]
slips = [0.0, 0.1]
budgets = [50, 100]
teachers = ["boltzmann:1"]
seeds = 6
horizon = 20
[gridworld.train]
pairs_per_round = 50
epochs = 10
heldout_pairs = 50
[strings]
sizes = [3]
slips = [0.0]
budgets = [10]
teachers = ["deterministic"]
seeds = 2
"""
"""Two gridworld configurations of 6 seeds, and a small strings one (2 seeds)."""


def cells(tmp_path):
    path = tmp_path / "split.toml"
    path.write_text(SPLIT_CONFIG)
    return config.load(path).cells


def test_a_split_keeps_every_cell_once_and_each_seed_whole_with_all_its_budgets(tmp_path):
    sweep = cells(tmp_path)
    whole = groups(sweep, workers=2)                     # seconds of work: nothing worth splitting
    assert len(whole) == 3 and sorted(len(g.cells) for g in whole) == [2, 12, 12]
    parts = groups(sweep, workers=2, min_part_s=0.0)     # a quarter of a worker's share is the bound
    assert len(parts) > len(whole)
    assert sorted(c.key for g in parts for c in g.cells) == sorted(c.key for c in sweep)
    for group in parts:
        seeds = {c.seed for c in group.cells}
        budgets = {c.budget for c in group.cells}
        assert len(group.cells) == len(seeds) * len(budgets)          # every budget of each of its seeds
    split = [g for g in parts if g.cells[0].task == "gridworld"]
    assert all(len({c.seed for c in g.cells}) < 6 for g in split)
    works = [g.work() for g in parts]
    assert works == sorted(works, reverse=True)                       # largest first
    assert len({g.key for g in parts}) == len(parts)


def test_a_split_group_gives_each_cell_the_same_bits(tmp_path):
    sweep = [c for c in cells(tmp_path) if c.task == "gridworld" and c.slip == 0.1]
    (whole,) = groups(sweep, workers=2)
    parts = groups(sweep, workers=2, min_part_s=0.0)
    assert len(parts) >= 2
    together = {c.key: r for c, r in zip(whole.cells, run_group(whole), strict=True)}
    apart = {c.key: r for g in parts for c, r in zip(g.cells, run_group(g), strict=True)}
    assert together.keys() == apart.keys()
    for key, result in together.items():
        assert result.status == apart[key].status == "done"
        assert result.metrics == apart[key].metrics and result.history == apart[key].history


def test_the_estimate_puts_the_ecosystems_longest_groups_first_and_splits_them():
    """Measured on the 2-core machine: a Taxi group (500 states, horizon 200, 3006 features) took ~28 s,
    a FrozenLake8x8 one ~7 s, FrozenLake (horizon 100) ~1.6 s, seals' CliffWorld7x4 (horizon 9) ~0.6 s;
    by states alone FrozenLake (16) came after CliffWorld7x4 (28)."""
    ordered = groups(config.load(CONFIGS / "ecosystem.toml").cells, workers=2)
    envs = [g.cells[0].env for g in ordered]
    taxi = [g for g in ordered if g.cells[0].env == "Taxi-v4"]
    assert envs[:len(taxi)] == ["Taxi-v4"] * len(taxi) and len(taxi) > 2     # split, and first
    assert envs[len(taxi):len(taxi) + 2] == ["FrozenLake8x8-v1"] * 2
    assert envs.index("FrozenLake-v1") < envs.index("seals/CliffWorld7x4-v0") < envs.index("seals/RiskyPath-v0")
    assert sum(len({c.seed for c in g.cells}) for g in taxi) == 2 * 20
