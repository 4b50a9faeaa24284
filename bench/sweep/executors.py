"""Executors: run groups of cells and hand each cell's result back as its group finishes
(the caller stores it).

Ctrl-C stops a sweep at once on every executor. A terminal sends SIGINT to the whole process
group, workers included; a worker must neither print a traceback nor go on to compute the
groups already queued for it (it would make the coordinator wait for them). So workers start
with SIGINT blocked (:func:`sigint_blocked`: they inherit the coordinator's mask), ignore it
while idle, and take it only while running a group; on an interrupt the coordinator stops the
pool itself (:func:`run_process`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import BenchError
from ..provenance import usable_cores
from .cell import CellGroup, CellResult, run_group
from .config import CellConfig

STOP_GRACE_S = 10.0
"""After an interrupt, how long the pool's running groups get to end before their workers are terminated."""


_DIED = ("a worker process died (out of memory or killed?); finished cells are stored: rerun to resume, "
         "or use --executor dask, which retries")


def default_workers() -> int:
    return usable_cores()


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread for the block: a process (or thread) started inside inherits
    the mask, so a Ctrl-C never reaches it while it starts. A SIGINT that arrives meanwhile is
    kept pending and raises KeyboardInterrupt here when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):       # Windows: no signal masks
        yield
        return
    # multiprocessing's resource tracker unblocks SIGINT in the thread that first starts it (and
    # every spawned process registers with it): start it outside the block.
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_serial(groups: Sequence[CellGroup]) -> Generator[tuple[CellConfig, CellResult], None, None]:
    for group in groups:
        yield from zip(group.cells, run_group(group), strict=True)


_stop: Any = None
"""In a pool worker: the pool's stop event (set by :func:`_init_worker`)."""


def _init_worker(stop: Any) -> None:
    """A pool worker's initializer: ignore SIGINT from now on (a pending one, received while it
    started with SIGINT blocked, is dropped) and keep the pool's stop event."""
    global _stop
    _stop = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _interruptible(task: Callable[[CellGroup], list[CellResult]], group: CellGroup) -> list[CellResult]:
    """Run ``task(group)`` in a pool worker, SIGINT raising KeyboardInterrupt meanwhile (and only
    then); once the coordinator has stopped the pool, return at once instead."""
    if _stop is not None and _stop.is_set():
        raise KeyboardInterrupt("the sweep was interrupted before this group started")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return task(group)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_process(groups: Sequence[CellGroup], workers: int,
                task: Callable[[CellGroup], list[CellResult]] = run_group,
                ) -> Generator[tuple[CellConfig, CellResult], None, None]:
    """A pool of ``workers`` spawned processes (each torch single-threaded, see run_group).

    At most ``2 × workers`` groups are in flight, so an interrupt wastes little work.
    ``task`` (importable, for spawned workers) is a fault-injection point for tests.

    On an interrupt (KeyboardInterrupt here, or the caller closing this generator) the pool
    stops within seconds: groups not started are cancelled, including those already handed to
    the pool's queue (the stop event: a worker returns at once instead of running one), the
    running ones are interrupted (SIGINT to each worker, for a coordinator signalled alone), and
    a worker that has not ended after :data:`STOP_GRACE_S` is terminated. Their cells are not
    stored; a rerun computes them.
    """
    context = multiprocessing.get_context("spawn")     # no forked torch state
    stop = context.Event()
    pending = iter(groups)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(stop,))
    in_flight: dict[Future, CellGroup] = {}

    def submit(group: CellGroup) -> None:
        with sigint_blocked():      # the pool spawns its workers in submit: they start with SIGINT blocked
            try:
                in_flight[pool.submit(_interruptible, task, group)] = group
            except BrokenProcessPool:
                raise BenchError(_DIED) from None

    finished = False
    try:
        for group in _take(pending, 2 * workers):
            submit(group)
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                group = in_flight.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    raise BenchError(_DIED) from None
                yield from zip(group.cells, results, strict=True)
                for nxt in _take(pending, 1):
                    submit(nxt)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop_pool(pool, stop, in_flight)


def _stop_pool(pool: ProcessPoolExecutor, stop: Any, in_flight: dict[Future, CellGroup]) -> None:
    """Stop a pool now (see :func:`run_process`); returns once its workers have ended or been terminated."""
    stop.set()
    processes = list((getattr(pool, "_processes", None) or {}).values())    # the pool's worker processes
    for future in in_flight:
        future.cancel()
    try:
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):    # running a group: ends it; idle: ignores it
                    os.kill(process.pid, signal.SIGINT)
        wait(in_flight, timeout=STOP_GRACE_S)
    finally:          # a second Ctrl-C (or a worker stuck past the grace period): terminate what is left
        stuck = not all(future.done() for future in in_flight)
        if stuck:
            for process in processes:
                process.terminate()
        pool.shutdown(wait=not stuck, cancel_futures=True)


def _take(iterator: Iterator, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(next(iterator))
        except StopIteration:
            break
    return out
