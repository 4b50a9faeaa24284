"""Soft value iteration (H = 30): the package's sparse planner vs the seed's dense einsum."""

import time

import pytest
import torch

import rlhf
from rlhf.core import soft_backups

from ..timings import reference
from ..timings.report import MIN_CPU_SHARE
from .conftest import GRID_SIZES, HORIZON, ONCE, REFERENCE_MAX_SIZE, STRING_LENGTHS, dense, grid, info, rounds_for


@pytest.mark.benchmark(group="soft_vi")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", GRID_SIZES)
def test_soft_vi_gridworld(benchmark, size, slip):
    task = grid(size, slip)
    info(benchmark, "soft_vi", "fast", size * size, task="gridworld", size=size, slip=slip)
    q = benchmark.pedantic(rlhf.soft_value_iteration, args=(task.mdp, task.true_reward, HORIZON),
                           **rounds_for(size * size, "fast"))
    assert q.shape == (size * size, 5) and torch.isfinite(q).all()


@pytest.mark.benchmark(group="soft_vi")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", [n for n in GRID_SIZES if n <= REFERENCE_MAX_SIZE])
def test_soft_vi_gridworld_reference(benchmark, size, slip):
    task = grid(size, slip)
    P = dense(size, slip)
    info(benchmark, "soft_vi", "reference", size * size, task="gridworld", size=size, slip=slip)
    q = benchmark.pedantic(reference.dense_soft_value_iteration, args=(P, task.true_reward, HORIZON),
                           **rounds_for(size * size, "reference"))
    torch.testing.assert_close(q, rlhf.soft_value_iteration(task.mdp, task.true_reward, HORIZON),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.benchmark(group="soft_vi_strings")
@pytest.mark.parametrize("length", STRING_LENGTHS)
def test_soft_vi_strings(benchmark, length):
    task = rlhf.StringTask(vocab="ABCDEFGH", target="ABCDEFGH" * (length // 8) + "ABCDEFGH"[: length % 8])
    info(benchmark, "soft_vi_strings", "fast", length, task="strings", size=length, slip=0.0)
    q = benchmark.pedantic(rlhf.soft_value_iteration, args=(task.mdp, task.true_reward, task.horizon),
                           rounds=20, warmup_rounds=1)
    assert q.shape == (length, 8)


@pytest.mark.benchmark(group="soft_vi_floor")
@pytest.mark.parametrize("size", [100, 300, 1000])
def test_soft_vi_floor(benchmark, size):
    """The irreducible work of H log-space backups: one exponential over [A, S] (``exp2``,
    the fastest torch has) and one gather of A·S values each, chunk by chunk over states
    as the planner runs them (so intermediates stay in cache).

    The ratio soft VI (slip 0.1) / floor says how far the planner is from its exp-and-gather bound.
    """
    S = size * size
    n = min(S, soft_backups._CHUNK_STATES)
    index = grid(size, 0.0).mdp.action_successors.to(torch.int32)
    chunks = [index[:, lo:lo + n].reshape(-1) for lo in range(0, S, n)]
    q, exp_out, gathered = torch.randn(5, n), torch.empty(5, n), torch.empty(5 * n)
    v = torch.randn(S)

    def floor():          # into preallocated buffers, as the planner does
        for _ in range(HORIZON):
            for chunk in chunks:
                torch.exp2(q[:, :chunk.numel() // 5], out=exp_out[:, :chunk.numel() // 5])
                torch.index_select(v, 0, chunk, out=gathered[:chunk.numel()])

    info(benchmark, "soft_vi_floor", "floor", S, task="gridworld", size=size, slip=0.0)
    benchmark.pedantic(floor, **rounds_for(S, "fast"))


@pytest.mark.benchmark(group="soft_vi_threads")
@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("size", [300, 1000])
def test_soft_vi_two_threads(benchmark, size, slip):
    """The one benchmark that measures threading: the same planner on both cores.

    With other work on the machine the second thread waits for a core and a call can take twenty
    times its time; the report flags such a figure (:func:`bench.timings.report.contended`), so it
    is then measured once: a timed warm-up call says whether both threads got a core."""
    task = grid(size, slip)
    info(benchmark, "soft_vi_threads", "fast-2-threads", size * size, task="gridworld", size=size, slip=slip)
    benchmark.extra_info["threads"] = 2
    torch.set_num_threads(2)
    try:
        rounds = rounds_for(size * size, "fast")
        if not benchmark.disabled:
            cpu, wall = time.process_time(), time.perf_counter()
            rlhf.soft_value_iteration(task.mdp, task.true_reward, HORIZON)
            share = (time.process_time() - cpu) / (time.perf_counter() - wall) / 2
            rounds = {**rounds, "warmup_rounds": 0} if share >= MIN_CPU_SHARE else ONCE
        q = benchmark.pedantic(rlhf.soft_value_iteration, args=(task.mdp, task.true_reward, HORIZON), **rounds)
    finally:
        torch.set_num_threads(1)
    torch.testing.assert_close(q, rlhf.soft_value_iteration(task.mdp, task.true_reward, HORIZON))


@pytest.mark.benchmark(group="soft_vi_chunks")
@pytest.mark.parametrize("slip", [0.0, 0.1])
def test_soft_vi_whole_array_passes(benchmark, slip, monkeypatch):
    """The planner with chunking off (every pass over the whole [5, S]), to measure what
    chunking buys against ``soft_vi`` at N = 1000 in the same run."""
    task = grid(1000, slip)
    info(benchmark, "soft_vi_chunks", "whole-array", 1000 * 1000, task="gridworld", size=1000, slip=slip)
    monkeypatch.setattr(soft_backups, "_CHUNK_STATES", 1 << 40)
    q = benchmark.pedantic(rlhf.soft_value_iteration, args=(task.mdp, task.true_reward, HORIZON),
                           **rounds_for(1000 * 1000, "fast"))
    monkeypatch.undo()
    torch.testing.assert_close(q, rlhf.soft_value_iteration(task.mdp, task.true_reward, HORIZON))
