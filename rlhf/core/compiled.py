"""Loops compiled with numba, exact by construction: the same bits as the torch code they replace.

The loop of one seed is dispatch-bound: a rollout step is six torch calls on a few hundred
integers, a segment's return thirty elementwise adds. Compiled, each is one call. Only two kinds
of kernel are compiled here, and both give the same bits on every CPU:

- integer arithmetic (the rollout's inverse-CDF walk, the random keys' SplitMix64 hash): exact
  everywhere;
- float sums in a fixed order, one IEEE add at a time (a segment's return, step by step): each
  add is correctly rounded, and numba compiles without fast-math, so LLVM may neither reorder
  the adds nor fuse them into FMAs. Vectorising across segments keeps each segment's order.

Nothing here uses a transcendental function or a reduction whose order the compiler or a BLAS
chooses (those stay torch's pinned kernels). Callers keep their torch path for tensors off the CPU
and for machines without numba (:func:`available`); ``tests/rlhf/test_compiled.py`` checks the two
against each other. Compiled on first use and cached beside this file (``cache=True``): importing
:mod:`rlhf` does not import numba.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import torch


@functools.cache
def kernels() -> Any:
    """The compiled kernels (a namespace), or None where numba cannot be imported."""
    try:
        import numba
        import numpy
    except ImportError:           # pragma: no cover - numba is a dependency; kept for odd platforms
        return None
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)

    golden = numba.uint64(0x9E3779B97F4A7C15)

    @jit
    def splitmix(z):                                                # pragma: no cover
        z = (z ^ (z >> numba.uint64(30))) * numba.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> numba.uint64(27))) * numba.uint64(0x94D049BB133111EB)
        return z ^ (z >> numba.uint64(31))

    @jit
    def word32(key, index):                                         # pragma: no cover
        # Keys' word `index` under `key`: half (index % 2, low first) of mix(key + (index // 2)·φ)
        word = splitmix(key + numba.uint64(index // 2) * golden)
        if index % 2:
            word = word >> numba.uint64(32)
        return word & numba.uint64(0xFFFFFFFF)

    @jit
    def draw31(key, index):                                         # pragma: no cover
        # Keys.bits31's draw `index`: the top 31 bits of the word
        return numba.int32(word32(key, index) >> numba.uint64(1))

    @jit
    def words(keys, out):                                           # pragma: no cover
        # out[b, i] = word i under keys[b] (uint32)
        for b in range(keys.shape[0]):
            for i in range(out.shape[1]):
                out[b, i] = word32(keys[b], i)

    @jit
    def uniform(keys, out):                                         # pragma: no cover
        # Keys.uniform: the top 24 bits of each word times 2⁻²⁴ (both exact in float32)
        for b in range(keys.shape[0]):
            for i in range(out.shape[1]):
                out[b, i] = numba.float32(word32(keys[b], i) >> numba.uint64(8)) * numba.float32(2.0 ** -24)

    @jit
    def fold(keys, words, out):                                     # pragma: no cover
        # Keys.fold: out[b] = mix(… mix(mix(keys[b] ^ words[0]) ^ words[1]) …)
        for b in range(keys.shape[0]):
            z = keys[b]
            for w in words:
                z = splitmix(z ^ w)
            out[b] = z

    @jit
    def rollout(keys, start_cdf, cdf, successor, action_of, states_per_key, block, states, actions):  # pragma: no cover
        # rlhf.rollout's draws and walk. Trajectory j of key b starts in the number of start-CDF
        # entries below its draw j; at step t its outcome o is the number of its row's CDF entries
        # (cdf[r, o]) below its draw (t + 1)·num + j, its successor row successor[r, o]. Rows are
        # global (b·S + s); a time-indexed table's step t reads block t (row r + t·block). Key by
        # key (its trajectories stay in cache), step by step (its trajectories are independent
        # chains of loads, which the CPU overlaps).
        num, steps = states.shape[1], states.shape[2]
        rows = numpy.empty(num, numpy.int64)
        for b in range(keys.shape[0]):
            key, base = keys[b], b * states_per_key
            for j in range(num):
                draw = draw31(key, j)
                row = base
                for entry in start_cdf:
                    if entry < draw:
                        row += 1
                rows[j] = row
            for t in range(steps):
                shift = t * block
                for j in range(num):
                    row = rows[j] + shift
                    draw = draw31(key, (t + 1) * num + j)
                    outcome = 0
                    for entry in cdf[row]:
                        if entry < draw:
                            outcome += 1
                    states[b, j, t] = rows[j] - base
                    actions[b, j, t] = action_of[outcome]
                    rows[j] = successor[row, outcome] - shift

    @jit
    def step_sums(values, out):                                     # pragma: no cover
        # out[i] = ((values[i, 0] + values[i, 1]) + values[i, 2]) + ..., in step order
        for i in range(values.shape[0]):
            total = values[i, 0]
            for t in range(1, values.shape[1]):
                total += values[i, t]
            out[i] = total

    @jit
    def mix(x):                                                     # pragma: no cover
        # SplitMix64's finaliser in place on uint64 (wrapping multiplies, logical shifts)
        for i in range(x.shape[0]):
            z = x[i]
            z = (z ^ (z >> numba.uint64(30))) * numba.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> numba.uint64(27))) * numba.uint64(0x94D049BB133111EB)
            x[i] = z ^ (z >> numba.uint64(31))

    return SimpleNamespace(rollout=rollout, step_sums=step_sums, mix=mix, words=words, uniform=uniform, fold=fold)


def available(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels can run on ``tensors``: numba is there and they are on the CPU."""
    return all(t.device.type == "cpu" for t in tensors) and kernels() is not None
