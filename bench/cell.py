"""Run one cell: the only place an integer seed becomes generators (inside rlhf.train)."""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field

import rlhf

from . import provenance
from .config import CellConfig


@dataclass(frozen=True)
class CellResult:
    """What a finished cell stores: metrics and history, or why it failed."""

    key: str
    status: str                      # "done" | "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0
    made_by: dict[str, str] = field(default_factory=dict)
    """The worker's :meth:`Provenance.compatibility`: the coordinator refuses a result made by
    other code or kernels than its own (e.g. a remote Dask worker started without the pins)."""


def run_cell(cell: CellConfig) -> CellResult:
    """Train one cell single-threaded (bit-identical on every executor); never raises."""
    made_by = provenance.current(with_git=False).compatibility()
    started = time.perf_counter()
    try:
        result = rlhf.train(cell.make_task(), seed=cell.seed, config=cell.train_config())
    except Exception as exc:  # a failing cell is a result, not the end of the sweep
        last = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        return CellResult(cell.key, "failed", error=reason, wall_s=time.perf_counter() - started, made_by=made_by)
    wall = time.perf_counter() - started
    bad = sorted(k for k, v in result.metrics.items() if isinstance(v, float) and math.isnan(v))
    if bad:
        return CellResult(cell.key, "failed", result.metrics, result.history,
                          error=f"NaN in metrics: {', '.join(bad)}", wall_s=wall, made_by=made_by)
    return CellResult(cell.key, "done", result.metrics, result.history, wall_s=wall, made_by=made_by)
