"""One kernel set for every cell: torch's and MKL's CPU code paths, pinned before torch loads.

Torch picks vectorised kernels by instruction set (``DEFAULT``, ``AVX2``,
``AVX512``), and so does MKL behind ``mv``/``matmul``; each rounds differently,
so one sampled label can flip and a whole trajectory diverge (measured: the
quick sweep differs in 5 of 60 cells between AVX2 and AVX-512 kernels on the
same machine). On x86-64 the harness therefore runs every cell under AVX2
kernels — on every x86-64 CPU of the last decade — with MKL in its
reproducible ("CNR") AVX2 branch, strict mode (bit-identical whatever the
memory alignment).

The pins are environment variables, read once when torch loads: :func:`pin`
sets them in ``os.environ`` when ``bench`` is imported, so the ``python -m
bench`` process and every worker it spawns (process pool, Dask LocalCluster)
inherit them. A process that loaded torch first keeps its kernels;
:func:`require_pinned` says so instead of mixing. Set ``RLHF_BENCH_KERNELS=native``
to opt out (results then carry their native capability in their provenance and
do not mix with pinned ones).
"""

from __future__ import annotations

import os
import platform

PINNED_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}
PINNED_CAPABILITY = "AVX2"
OPT_OUT = "RLHF_BENCH_KERNELS"


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def wanted() -> bool:
    """Whether cells should run under the pinned kernels here (x86-64, not opted out)."""
    return is_x86_64() and os.environ.get(OPT_OUT, "") != "native"


def pin() -> None:
    """Set the pins in ``os.environ`` (overriding the caller's), for this process if torch
    has not loaded yet, and for every process started from it."""
    if wanted():
        os.environ.update(PINNED_ENV)


def capability() -> str:
    """The CPU capability torch dispatches to in this process: ``AVX2``, ``AVX512``, ``DEFAULT``, ..."""
    import torch
    return torch.backends.cpu.get_cpu_capability()


def require_pinned(what: str) -> None:
    """Raise :class:`~bench.errors.BenchError` when this process computes cells (``what``)
    with other kernels than the pin (torch was imported before ``bench``)."""
    if not wanted():
        return
    have = capability()
    if have != PINNED_CAPABILITY:
        from .errors import BenchError
        raise BenchError(
            f"{what} needs torch's {PINNED_CAPABILITY} kernels, but this process loaded torch with {have} "
            "(torch was imported before bench): run 'python -m bench', import bench before torch, or set "
            + " ".join(f"{k}={v}" for k, v in PINNED_ENV.items()) + f" ({OPT_OUT}=native opts out)")
