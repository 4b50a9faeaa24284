"""Loops compiled with numba, exact by construction: the same bits as the torch code they replace.

The loop of one seed is dispatch-bound: a rollout step is six torch calls on a few hundred
integers, a segment's return thirty elementwise adds. Compiled, each is one call. Only two kinds
of kernel are compiled here, and both give the same bits on every CPU:

- integer arithmetic (the rollout's inverse-CDF walk, the random keys' SplitMix64 hash): exact
  everywhere;
- float sums in a fixed order, one IEEE add at a time (a segment's return, step by step): each
  add is correctly rounded, and numba compiles without fast-math, so LLVM may neither reorder
  the adds nor fuse them into FMAs. Vectorising across segments keeps each segment's order.

One kernel set is float arithmetic of its own order rather than a torch path's bits: the regret
learner's step (:func:`regret_kernels`), whose torch path is a chain of BLAS products and
vectorised sums; its order is written out in :mod:`rlhf.core._numba_regret`, with the same two
kinds of operation (exact ones, and IEEE adds and multiplies one at a time), so its bits too are
the same on every CPU.

Nothing here uses a transcendental function or a reduction whose order the compiler or a BLAS
chooses (those stay torch's pinned kernels). Callers keep their torch path for tensors off the CPU
and for machines without numba (:func:`available`); ``tests/rlhf/test_compiled.py`` checks the two
against each other. Compiled on first use and cached beside this file (``cache=True``): importing
:mod:`rlhf` does not import numba.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import torch


@functools.cache
def _module(name: str) -> Any:
    """The compiled module ``rlhf.core.<name>``, or None where numba cannot be imported."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:           # pragma: no cover - numba is a dependency; kept for odd platforms
        return None


def kernels() -> Any:
    """The compiled kernels (:mod:`rlhf.core._numba_kernels`), or None where numba cannot be imported."""
    return _module("_numba_kernels")


def regret_kernels() -> Any:
    """The regret learner's step (:mod:`rlhf.core._numba_regret`: float, in a fixed order), or None
    where numba cannot be imported."""
    return _module("_numba_regret")


def loaded() -> bool:
    """Whether the kernels are loaded already (by a rollout): calls too small to repay numba's start-up
    (about 0.8 s a process) use them only then, so ``import rlhf`` does not import numba."""
    return f"{__package__}._numba_kernels" in sys.modules and kernels() is not None


def available(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels can run on ``tensors``: numba is there and they are on the CPU."""
    return all(t.device.type == "cpu" for t in tensors) and kernels() is not None
