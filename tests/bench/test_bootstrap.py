"""The bootstrap engine: the statistic is a function, the generator is the caller's, and every
interval the report printed before the engine existed comes out bit for bit the same."""

import numpy as np
import pytest

from bench.report import bootstrap
from bench.report.stats import bootstrap_rng, budget_reaching_target

R, ALPHA = bootstrap.BOOTSTRAP_RESAMPLES, (1 - bootstrap.CONFIDENCE) / 2
FIELDS = {"task": "gridworld", "size": 5, "slip": 0.0}


@pytest.fixture
def rng() -> np.random.Generator:
    """Test data (the bootstrap's own generators come from ``bootstrap_rng``)."""
    return np.random.default_rng(1234)


def test_the_mean_interval_is_the_hand_written_one_and_series_share_one_generator(rng):
    series = [rng.random(20), rng.random(7), np.array([0.25]), rng.random(3)]
    engine, by_hand = bootstrap_rng(FIELDS), bootstrap_rng(FIELDS)
    for x in series:            # summarize draws every series of a configuration from one generator
        if len(x) == 1:         # the old code took no draws for one seed (and the engine's are empty)
            expected = (float(x[0]), float(x[0]))
        else:
            means = x[by_hand.integers(0, len(x), size=(R, len(x)))].mean(axis=1)
            expected = (float(np.quantile(means, ALPHA)), float(np.quantile(means, 1 - ALPHA)))
        assert bootstrap.interval(x, bootstrap.mean, engine) == expected
    assert engine.random() == by_hand.random()          # and both consumed the same draws


def test_a_budget_statistic_takes_discrete_ends(rng):
    budgets = np.array([100, 300, 1000])
    table = (rng.random((10, 3)) < [0.5, 0.8, 0.95]).astype(float)        # converged per seed and budget

    def first(success):
        reached = success >= 0.9 - 1e-12
        return np.where(reached.any(-1), budgets.astype(float)[reached.argmax(-1)], np.inf)

    by_hand = bootstrap_rng(FIELDS)
    draws = first(table[by_hand.integers(0, 10, size=(R, 10))].mean(axis=1))
    expected = (float(np.quantile(draws, ALPHA, method="lower")), float(np.quantile(draws, 1 - ALPHA, method="higher")))

    def statistic(resampled):
        return budget_reaching_target(bootstrap.mean(resampled), budgets, 0.9)

    assert bootstrap.interval(table, statistic, bootstrap_rng(FIELDS), discrete=True) == expected
    assert expected[0] in (*budgets, np.inf) and expected[1] in (*budgets, np.inf)


def test_the_lower_median_interval_is_the_hand_written_one():
    first = np.array([300.0, np.inf, 100.0, 1000.0, np.inf, 300.0, 100.0])
    by_hand = bootstrap_rng(FIELDS)
    medians = np.sort(first[by_hand.integers(0, len(first), size=(R, len(first)))], axis=1)[:, (len(first) - 1) // 2]
    expected = (float(np.quantile(medians, ALPHA, method="lower")),
                float(np.quantile(medians, 1 - ALPHA, method="higher")))
    assert bootstrap.interval(first, bootstrap.lower_median, bootstrap_rng(FIELDS), discrete=True) == expected


def test_paired_columns_are_resampled_together(rng):
    values = rng.random((30, 2))                                   # [worlds, learners]
    by_hand = bootstrap_rng(FIELDS)
    expected = values[by_hand.integers(0, 30, size=(R, 30))].mean(axis=1)
    draws = bootstrap.resample(values, bootstrap.mean, bootstrap_rng(FIELDS))
    assert np.array_equal(draws, expected)
    low, high = bootstrap.percentile_interval(draws[:, 0] - draws[:, 1])
    assert low == np.quantile(expected[:, 0] - expected[:, 1], ALPHA)
    assert high == np.quantile(expected[:, 0] - expected[:, 1], 1 - ALPHA)


def test_the_engine_never_touches_the_global_generator(rng):
    x = rng.random(12)
    before = np.random.get_state()[1].copy()
    first = bootstrap.interval(x, bootstrap.mean, bootstrap_rng(FIELDS))
    assert np.array_equal(np.random.get_state()[1], before)
    assert bootstrap.interval(x, bootstrap.mean, bootstrap_rng(FIELDS)) == first        # seeded by the fields
    assert bootstrap.interval(x, bootstrap.mean, bootstrap_rng(FIELDS | {"size": 7})) != first


@pytest.mark.parametrize("n", [1, 2, 9])
def test_intervals_hold_the_point_estimate_of_a_mean(rng, n):
    x = rng.random(n)
    low, high = bootstrap.interval(x, bootstrap.mean, bootstrap_rng(FIELDS))
    assert low <= x.mean() <= high
