"""A seed's result does not depend on which other seeds share its batch (#12)."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT

import rlhf
from rlhf.core import batched

TEACHERS = ["boltzmann:1", "oracle", "deterministic", "boltzmann:0.5+mistake:0.1", "myopic:0.9+boltzmann:1",
            "skip:0.02+boltzmann:1", "equal:0.1+boltzmann:1", "regret+boltzmann:1"]


def assert_same_run(alone: rlhf.RunResult, inside: rlhf.RunResult) -> None:
    assert alone.seed == inside.seed
    # repr: exact for floats (shortest round trip), and NaN (a round with nothing answered) equals NaN
    assert repr(alone.history) == repr(inside.history)
    assert repr(alone.metrics) == repr(inside.metrics)
    assert torch.equal(alone.reward, inside.reward)


CASES = [
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.0, horizon=8), dict(budget=60, pairs_per_round=20),
                 id="gridworld"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.2, start=[(0, 0)], horizon=8),
                 dict(budget=60, pairs_per_round=20), id="gridworld-slip"),
    pytest.param(lambda: rlhf.StringTask("ABC", "CAB"), dict(budget=30, pairs_per_round=10), id="strings"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(budget=60, pairs_per_round=20, query="info-gain", ensemble=3, oversample=3),
                 id="gridworld-ensemble-info-gain"),
    pytest.param(lambda: rlhf.StringTask("ABC", "CAB"),
                 dict(budget=30, pairs_per_round=10, query="kcenter", ensemble=2, oversample=4),
                 id="strings-ensemble-kcenter"),
    pytest.param(lambda: rlhf.StringTask("ABCD", "DAB", slip=0.2),
                 dict(budget=30, pairs_per_round=10, query="on-policy", optimizer="adam", batch_size=4),
                 id="strings-slip-adam-minibatch"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(budget=60, pairs_per_round=20, learner_model="advantage"), id="gridworld-advantage-learner"),
    pytest.param(lambda: rlhf.RandomGridWorld(3),
                 dict(budget=60, pairs_per_round=20, learner_model="advantage", query="disagreement", ensemble=2,
                      oversample=2), id="random-gridworld-advantage-learner-ensemble"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(budget=60, pairs_per_round=20, learner_model="regret"), id="gridworld-regret-learner"),
    pytest.param(lambda: rlhf.RandomGridWorld(3),
                 dict(budget=60, pairs_per_round=20, learner_model="regret", query="disagreement", ensemble=2,
                      oversample=2, fit="all"), id="random-gridworld-regret-learner-ensemble-fit-all"),
    pytest.param(lambda: rlhf.StringTask("ABCD", "DAB", slip=0.2),
                 dict(budget=30, pairs_per_round=10, learner_model="regret", optimizer="adam", batch_size=4),
                 id="strings-regret-learner-minibatch"),
    pytest.param(lambda: rlhf.GridWorld(size=4, slip=0.1, horizon=8),
                 dict(budget=60, pairs_per_round=20, query="info-gain", ensemble=3, oversample=3, fit="all"),
                 id="gridworld-ensemble-fit-all"),
    pytest.param(lambda: rlhf.StringTask("ABC", "CAB"), dict(budget=30, pairs_per_round=10, fit="all"),
                 id="strings-fit-all"),
]


@pytest.mark.parametrize("teacher", TEACHERS)
@pytest.mark.parametrize(("make", "settings"), CASES)
def test_seed_alone_equals_seed_inside_a_batch_of_32(make, settings, teacher):
    task = make()
    batch = rlhf.train_batch(task, range(32), teacher=teacher, heldout_pairs=50, **settings)
    for k in (0, 13, 31):
        alone = rlhf.train(task, teacher=teacher, seed=k, heldout_pairs=50, **settings)
        assert_same_run(alone, batch[k])
    assert len({repr(r.history) for r in batch}) > 1     # the seeds differ


def test_seeds_in_another_order_and_company_give_the_same_runs():
    task = rlhf.StringTask("ABC", "ABC")
    one = rlhf.train_batch(task, [5, 6, 7], budget=40, pairs_per_round=10, heldout_pairs=50)
    other = rlhf.train_batch(task, [7, 100, 5], budget=40, pairs_per_round=10, heldout_pairs=50)
    assert_same_run(one[0], other[2])
    assert_same_run(one[2], other[0])


def test_the_seed_presets_are_batch_invariant():
    """The exact seed configurations (gridworld shortened): rlhf.train equals the batch."""
    grid = rlhf.preset_task("seed-gridworld")
    batch = rlhf.train_batch(grid, [0, 1, 2], budget=500)
    assert_same_run(rlhf.train(grid, seed=1, budget=500), batch[1])
    strings = rlhf.preset_task("seed-strings")
    batch = rlhf.train_batch(strings, range(8))
    assert_same_run(rlhf.train(strings, seed=6), batch[6])


# Seed parity as a user checks it: a fresh process that imports rlhf alone (no pinned kernels: torch's and
# MKL's own, with the MKL mode rlhf sets), the whole seed-gridworld run.
_LIBRARY_ALONE = """
import os, rlhf
task = rlhf.preset_task("seed-gridworld")
alone, inside = rlhf.train(task, seed=1), rlhf.train_batch(task, [0, 1, 2])[1]
same = repr(alone.history) == repr(inside.history) and repr(alone.metrics) == repr(inside.metrics)
print(os.environ.get("MKL_CBWR"), same)
"""


def test_a_seed_alone_equals_it_in_a_batch_in_a_process_that_only_imports_rlhf():
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", _LIBRARY_ALONE], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.split() == ["AUTO,STRICT", "True"], out.stderr


@pytest.mark.parametrize("shape", [(25,), (9,), (100, 25), (3, 37)])
def test_batched_kernels_do_not_depend_on_the_batch(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, *shape, generator=g) * 4
    for f in (batched.sigmoid, batched.softplus):
        full = f(x)
        assert all(torch.equal(f(x[k:k + 1])[0], full[k]) for k in range(32))
    for m, n in [(25, 100), (100, 25), (25, 25), (3, 7)]:       # z = θ·Cᵀ, ∇ = r·C, planner, tiny
        for dtype in (torch.float32, torch.float64):
            matrices = torch.randint(-5, 6, (32, m, n), generator=g).to(dtype)
            vectors = torch.randn(32, m, generator=g, dtype=dtype)
            full = batched.vecmat(vectors, matrices)
            for k in range(32):
                assert torch.equal(batched.vecmat(vectors[k:k + 1], matrices[k:k + 1])[0], full[k])
                assert torch.equal(batched.vecmat(vectors[k:k + 2], matrices[k:k + 2])[0], full[k])
            torch.testing.assert_close(full, torch.einsum("bm,bmn->bn", vectors, matrices))
    torch.testing.assert_close(batched.sigmoid(x), torch.sigmoid(x))
    torch.testing.assert_close(batched.softplus(x), torch.nn.functional.softplus(x))


@pytest.mark.parametrize("learner_model", ["partial", "advantage", "regret"])
def test_long_products_give_a_seed_alone_its_batch_s_bits(learner_model):
    """600 features and rounds of 300 pairs: products long enough that MKL computes a batch of one by
    another routine (:func:`rlhf.core.batched.bmm`); every learner, a seed alone against a batch of 3."""
    task = rlhf.RandomGridWorld(2)
    settings = dict(teacher="boltzmann:1", budget=600, pairs_per_round=300, heldout_pairs=20,
                    learner_model=learner_model, fit="all")
    batch = rlhf.train_batch(task, [0, 1, 2], **settings)
    for inside in (batch[0], batch[2]):
        assert_same_run(rlhf.train(task, seed=inside.seed, **settings), inside)


@pytest.mark.parametrize("inner", [8, 127, 128, 259, 260, 300, 511, 512, 600, 3006])
@pytest.mark.parametrize("columns", [1, 2, 8, 64])
def test_a_batch_of_one_gets_a_batch_s_bits_at_every_inner_size(inner, columns):
    """``batched.bmm`` of one matrix equals its row in batches of 2 and 5, at inner sizes on both sides of
    :data:`rlhf.core.batched.SAME_PATH_INNER` and of the 260 / 512 where MKL's routine for one changes."""
    g = torch.Generator().manual_seed(inner * 100 + columns)
    for dtype in (torch.float32, torch.float64):
        a = torch.randn(5, 1, inner, generator=g, dtype=dtype)
        b = torch.randn(5, inner, columns, generator=g, dtype=dtype)
        full, pair = batched.bmm(a, b), batched.bmm(a[:2], b[:2])
        assert torch.equal(pair, full[:2])
        for k in range(5):
            assert torch.equal(batched.bmm(a[k:k + 1], b[k:k + 1]), full[k:k + 1]), (k, dtype)


@pytest.mark.parametrize("steps", [3, 8, 30])
def test_step_sums_of_time_major_segments_do_not_depend_on_the_batch(steps):
    """Time-major segments ([T, B, n] in memory, a transposed view); torch's own sum over T of such a [1, 20, T]
    slice and of the whole [32, 20, T] differ in the last bit for some segments, step_sums never."""
    g = torch.Generator().manual_seed(steps)
    values = (torch.randn(steps, 32, 20, generator=g) * 30).permute(1, 2, 0)      # [32, 20, T], time-major
    full = batched.step_sums(values)
    for k in range(32):
        assert torch.equal(batched.step_sums(values[k:k + 1])[0], full[k])
    torch.testing.assert_close(full, values.double().sum(-1).float(), atol=1e-4, rtol=1e-6)
    if steps >= 8:                                  # the hazard is real (not seen at 3 steps)
        raw = values.sum(-1)
        assert not all(torch.equal(values[k:k + 1].sum(-1)[0], raw[k]) for k in range(32))


def test_the_planner_decides_exp_or_log_space_per_reward():
    """A reward too spread for exp space goes to log space without moving its neighbours."""
    task = rlhf.GridWorld(size=4, horizon=10)
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(4, 16, 1, generator=g)
    rewards[2] *= 1e4                                      # forces log space for this one only
    together = rlhf.soft_value_iteration(task.mdp, rewards, 10)
    for k in range(4):
        assert torch.equal(rlhf.soft_value_iteration(task.mdp, rewards[k:k + 1], 10)[0], together[k])
    torch.testing.assert_close(together[2], rlhf.soft_value_iteration(task.mdp, rewards[2, :, 0], 10))
