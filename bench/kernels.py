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

MKL honours its CNR branches only on CPUs it recognises as Intel: on AMD (measured on
an AMD EPYC with AVX-512) ``MKL_CBWR=AVX2,STRICT`` silently runs as ``AUTO``, so a batched
product rounds differently and every quick-sweep configuration drifted from the Intel
baseline (the gate failed on 1 of 17). MKL asks ``mkl_serv_intel_cpu_true()`` which
answer to give; :func:`pin` makes that function answer yes (the same effect as the
well-known ``LD_PRELOAD`` shim, applied to the loaded library instead), after which the
AMD machine reproduced the Intel baseline bit for bit (69 of 69 values). The branch MKL
actually runs is read back from MKL itself (:func:`mkl_branch`) and is part of the
recorded capability, so results made on an unfixed branch never mix with pinned ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import mmap
import os
import platform
from pathlib import Path

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
    has not loaded yet, and for every process started from it; and make MKL honour its
    pinned branch on a CPU it does not take for Intel's."""
    if wanted():
        os.environ.update(PINNED_ENV)
        _let_mkl_honour_its_branch()


def capability() -> str:
    """The CPU kernels this process computes with: torch's capability (``AVX2``, ``AVX512``,
    ``DEFAULT``, ...), followed by MKL's branch when that is not the one pinned (``AVX2, MKL AUTO``)."""
    import torch
    torch_kernels = torch.backends.cpu.get_cpu_capability()
    branch = mkl_branch()
    if not wanted() or branch in (None, PINNED_MKL_BRANCH):
        return torch_kernels
    return f"{torch_kernels}, MKL {branch}"


PINNED_MKL_BRANCH = "AVX2"
_MKL_CBWR_BRANCH = 1
"""``MKL_CBWR_BRANCH``: the argument that makes ``mkl_cbwr_get`` return the branch in use."""
_MKL_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                 9: "AVX", 10: "AVX2", 12: "AVX512", 14: "AVX512_E1"}
"""MKL's ``MKL_CBWR_*`` branch constants (mkl_cbwr.h)."""
_RETURN_ONE = bytes([0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3])
"""x86-64 machine code for ``return 1``: ``mov eax, 1; ret``."""


@functools.cache
def _torch_cpu_library() -> ctypes.CDLL | None:
    """torch's CPU library (into which its MKL is linked), loaded or found without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(path)) if path.is_file() else None
    except OSError:
        return None


def mkl_branch() -> str | None:
    """The CNR branch MKL runs in this process (``AVX2``, ``AUTO``, ...); None without torch's MKL."""
    library = _torch_cpu_library()
    get = getattr(library, "mkl_serv_cbwr_get", None) if library is not None else None
    if get is None:
        return None
    code = get(_MKL_CBWR_BRANCH)
    return _MKL_BRANCHES.get(code, str(code))


def _let_mkl_honour_its_branch() -> None:
    """Make ``mkl_serv_intel_cpu_true`` return 1 when it returns 0 (a CPU that is not Intel's),
    before MKL's first product reads it; nothing when torch's library has no such function."""
    library = _torch_cpu_library()
    check = getattr(library, "mkl_serv_intel_cpu_true", None) if library is not None else None
    if not is_x86_64() or check is None or check() == 1:       # the machine code below is x86-64's
        return
    address = ctypes.cast(check, ctypes.c_void_p).value
    assert address is not None
    page = address & ~(mmap.PAGESIZE - 1)
    length = address + len(_RETURN_ONE) - page
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    read, write, execute = mmap.PROT_READ, mmap.PROT_WRITE, mmap.PROT_EXEC
    if libc.mprotect(page, length, read | write | execute) != 0:
        return                    # refused (a hardened kernel): capability() then records MKL's own branch
    ctypes.memmove(address, _RETURN_ONE, len(_RETURN_ONE))
    libc.mprotect(page, length, read | execute)


def require_pinned(what: str) -> None:
    """Raise :class:`~bench.errors.BenchError` when this process computes cells (``what``)
    with other kernels than the pin (torch was imported before ``bench``)."""
    if not wanted():
        return
    have = capability()
    if have != PINNED_CAPABILITY:
        from .errors import BenchError
        branch = mkl_branch()
        if branch not in (None, PINNED_MKL_BRANCH):
            raise BenchError(f"{what} needs MKL's {PINNED_MKL_BRANCH} branch, but MKL runs {branch} "
                             f"on this CPU and could not be switched ({OPT_OUT}=native opts out)")
        raise BenchError(
            f"{what} needs torch's {PINNED_CAPABILITY} kernels, but this process loaded torch with {have} "
            "(torch was imported before bench): run 'python -m bench', import bench before torch, or set "
            + " ".join(f"{k}={v}" for k, v in PINNED_ENV.items()) + f" ({OPT_OUT}=native opts out)")
