"""Executors: run groups of cells and hand each cell's result back as its group finishes
(the caller stores it)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import BenchError
from ..provenance import usable_cores
from .cell import CellGroup, CellResult, run_group
from .config import CellConfig


def default_workers() -> int:
    return usable_cores()


def run_serial(groups: Sequence[CellGroup]) -> Iterator[tuple[CellConfig, CellResult]]:
    for group in groups:
        yield from zip(group.cells, run_group(group), strict=True)


def run_process(groups: Sequence[CellGroup], workers: int,
                task: Callable[[CellGroup], list[CellResult]] = run_group,
                ) -> Iterator[tuple[CellConfig, CellResult]]:
    """A pool of ``workers`` spawned processes (each torch single-threaded, see run_group).

    At most ``2 × workers`` groups are in flight, so an interrupt wastes little work.
    ``task`` (importable, for spawned workers) is a fault-injection point for tests.
    """
    context = multiprocessing.get_context("spawn")     # no forked torch state
    pending = iter(groups)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        in_flight = {}
        try:
            for group in _take(pending, 2 * workers):
                in_flight[pool.submit(task, group)] = group
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    group = in_flight.pop(future)
                    try:
                        results = future.result()
                    except BrokenProcessPool:
                        raise BenchError("a worker process died (out of memory or killed?); finished cells are "
                                         "stored: rerun to resume, or use --executor dask, which retries") from None
                    yield from zip(group.cells, results, strict=True)
                    for nxt in _take(pending, 1):
                        in_flight[pool.submit(task, nxt)] = nxt
        finally:
            for future in in_flight:
                future.cancel()


def _take(iterator: Iterator, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(next(iterator))
        except StopIteration:
            break
    return out
