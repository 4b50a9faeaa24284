"""The Dask executor: groups of cells as futures on a ``distributed`` cluster (optional extra ``[dask]``).

The client is the only writer of the store: results are yielded as futures
complete and stored by the caller. Fault handling is Dask's own: a task whose
worker dies is rescheduled on another worker; after ``ALLOWED_FAILURES`` such
deaths the scheduler gives up with ``KilledWorker``, and the group's cells are
recorded as failed. Each group's future key is its content hash, so a cell is
never computed twice in one sweep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..errors import BenchError
from .cell import CellGroup, CellResult, run_group
from .config import CellConfig
from .executors import default_workers, sigint_blocked

ALLOWED_FAILURES = 2
"""Worker deaths tolerated per cell before it is recorded as failed (Dask's default is 3)."""


def require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BenchError("--executor dask needs the dask extra: "
                         "python3 -m pip install -c constraints.txt '.[dask]'") from None


def check_scheduler(address: str) -> None:
    """Fail fast (before anything is written) when no scheduler answers at ``address``."""
    from distributed import Client
    try:
        Client(address, timeout="5s").close()
    except OSError as exc:
        raise BenchError(f"--address {address}: cannot reach a Dask scheduler ({exc})") from None


def run_dask(
    groups: Sequence[CellGroup],
    workers: int | None,
    address: str | None,
    task: Callable[[CellGroup], list[CellResult]] = run_group,
) -> Generator[tuple[CellConfig, CellResult], None, None]:
    """Run ``task(group)`` for every group on a LocalCluster (or the scheduler at ``address``)."""
    require_dask()
    import dask
    from distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker

    # worker-saturation 1.0: a worker holds only the group it runs, so a group that kills its worker
    # does not make a queued, innocent group "suspicious" and fail it beside the guilty one.
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.scheduler.worker-saturation": 1.0,
                          "distributed.worker.daemon": False}):
        cluster = client = None
        finished = False
        try:
            if address:
                try:
                    client = Client(address, timeout="5s")
                except OSError as exc:
                    raise BenchError(f"--address {address}: cannot reach a Dask scheduler ({exc})") from None
            else:
                with sigint_blocked():    # its threads and worker processes inherit the mask: Ctrl-C reaches only us
                    cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                                           processes=True, dashboard_address=None)
                client = Client(cluster)
            futures = {client.submit(task, group, key=f"group-{group.key}", pure=False): group for group in groups}
            for future in as_completed(futures):
                group = futures.pop(future)
                try:
                    results = future.result()
                except KilledWorker:
                    error = f"KilledWorker: the worker running this cell's group died {ALLOWED_FAILURES + 1} times"
                    results = [CellResult(cell.key, "failed", error=error) for cell in group.cells]
                yield from zip(group.cells, results, strict=True)
            finished = True
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                if finished:
                    cluster.close()
                else:
                    _stop_cluster(cluster)


def _stop_cluster(cluster: Any) -> None:
    """Close a LocalCluster at once, quietly, on an interrupt: its worker processes are killed
    (a graceful close waits seconds for the running groups, and its workers then log the
    scheduler's absence). Their running groups' cells are not stored; a rerun computes them."""
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        for nanny in list(cluster.workers.values()):
            nanny.close_gracefully()          # a nanny does not restart a worker that has gone
            if getattr(nanny, "pid", None):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(nanny.pid, signal.SIGKILL)
        cluster.close()
    finally:
        quiet.setLevel(level)
