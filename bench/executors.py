"""Executors: run cells and hand each result back as it finishes (the caller stores it)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .cell import CellResult, run_cell
from .config import CellConfig
from .errors import BenchError
from .provenance import usable_cores


def default_workers() -> int:
    return usable_cores()


def run_serial(cells: Sequence[CellConfig]) -> Iterator[tuple[CellConfig, CellResult]]:
    for cell in cells:
        yield cell, run_cell(cell)


def run_process(cells: Sequence[CellConfig], workers: int,
                task: Callable[[CellConfig], CellResult] = run_cell) -> Iterator[tuple[CellConfig, CellResult]]:
    """A pool of ``workers`` spawned processes (each torch single-threaded, see run_cell).

    At most ``2 × workers`` cells are in flight, so an interrupt wastes little work.
    ``task`` (importable, for spawned workers) is a fault-injection point for tests.
    """
    context = multiprocessing.get_context("spawn")     # no forked torch state
    pending = iter(cells)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        in_flight = {}
        try:
            for cell in _take(pending, 2 * workers):
                in_flight[pool.submit(task, cell)] = cell
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = in_flight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise BenchError("a worker process died (out of memory or killed?); finished cells are "
                                         "stored: rerun to resume, or use --executor dask, which retries") from None
                    yield cell, result
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
