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
    except ImportError:           # pragma: no cover - numba is a dependency; kept for odd platforms
        return None
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)

    @jit
    def walk(cdf, successor, num_rows, num_outcomes, draws, rows, outcomes, block):   # pragma: no cover
        # Step t of trajectory j: its outcome is the number of its row's CDF entries below the
        # draw (cdf[o·R + r]), its successor row successor[o·R + r]; time-indexed tables read
        # block t (rows r + t·block).
        steps, num = outcomes.shape
        for t in range(steps):
            shift = t * block
            for j in range(num):
                row = rows[t, j] + shift
                draw = draws[t + 1, j]
                outcome = 0
                for o in range(num_outcomes):
                    if cdf[o * num_rows + row] < draw:
                        outcome += 1
                outcomes[t, j] = outcome
                if t + 1 < steps:
                    rows[t + 1, j] = successor[outcome * num_rows + row] - shift

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

    return SimpleNamespace(walk=walk, step_sums=step_sums, mix=mix)


def available(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels can run on ``tensors``: numba is there and they are on the CPU."""
    return all(t.device.type == "cpu" for t in tensors) and kernels() is not None
