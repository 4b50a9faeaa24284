"""Provenance: which code, versions and kernels produced a result (as sacred and W&B record it).

Every stored cell carries one :class:`Provenance`. Results pool only when their
:meth:`Provenance.compatibility` agrees: the same code fingerprint, the same
python/torch/numpy and the same CPU kernels. The git commit, the dirty flag
and the machine are recorded for the reader but do not split results (the
same code on another machine must give the same numbers: that is the point).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy
import torch

import rlhf

from . import kernels

BENCH_ROOT = Path(__file__).resolve().parent
RLHF_ROOT = Path(rlhf.__file__).resolve().parent
COMPATIBILITY_FIELDS = ("code", "python", "torch", "numpy", "cpu_capability")


@dataclass(frozen=True)
class Provenance:
    """Who made a result. ``code`` is :func:`code_fingerprint`."""

    code: str
    python: str
    torch: str
    numpy: str
    cpu_capability: str
    git_commit: str = ""
    """The checkout's HEAD, "" outside a git work tree."""
    git_dirty: bool = False
    """Whether ``rlhf/`` or ``bench/`` differ from that commit."""
    machine: str = ""

    def compatibility(self) -> dict[str, str]:
        """What must agree for two results to be pooled or compared."""
        return {name: getattr(self, name) for name in COMPATIBILITY_FIELDS}

    def differences(self, other: Provenance) -> list[str]:
        """``["code 3fa2c1d0… → 91bc7e44…", ...]``: the compatibility fields that differ, this → other."""
        mine, theirs = self.compatibility(), other.compatibility()
        return [f"{k} {_short(mine[k])} → {_short(theirs[k])}" for k in COMPATIBILITY_FIELDS if mine[k] != theirs[k]]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Provenance:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def describe(self) -> str:
        """One line for reports."""
        commit = f"git {self.git_commit[:12]}{' (dirty)' if self.git_dirty else ''}" if self.git_commit else "no git"
        return (f"code {self.code[:12]} ({commit}); python {self.python}, torch {self.torch}, numpy {self.numpy}; "
                f"CPU kernels {self.cpu_capability}; machine {self.machine}")


def current(with_git: bool = True) -> Provenance:
    """This process's provenance (workers skip git: the coordinator records it)."""
    base = _environment()
    return dataclasses.replace(base, **_git()) if with_git else base


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@functools.cache
def _environment() -> Provenance:
    return Provenance(code=code_fingerprint(), python=platform.python_version(), torch=torch.__version__,
                      numpy=numpy.__version__, cpu_capability=kernels.capability(),
                      machine=f"{platform.machine()}, {usable_cores()} cores")


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 over every ``*.py`` of the ``rlhf`` and ``bench`` packages (relative path and bytes)."""
    digest = hashlib.sha256()
    for root in (RLHF_ROOT, BENCH_ROOT):
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@functools.cache
def _git() -> dict:
    """HEAD and whether the package sources differ from it; empty outside a git work tree."""
    top = BENCH_ROOT.parent
    try:
        head = subprocess.run(["git", "-C", str(top), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        lines = head.stdout.split()
        # Only the work tree the sources live in (not a repository that merely contains site-packages).
        if head.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != top:
            return {}
        status = subprocess.run(["git", "-C", str(top), "status", "--porcelain", "--", "rlhf", "bench"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": lines[1], "git_dirty": bool(status.stdout.strip())}


def _short(value: str) -> str:
    return value[:12] + "…" if len(value) > 16 else value
