"""A report's sections in forked worker processes: the same files as in one process, in less time.

Sections are independent (each writes its own files into the stage), so on several cores they run
in workers forked from the report process (their inputs are inherited, not pickled), the heaviest
first. Every section runs torch on one thread, in a worker or not, so what it writes does not depend
on where it ran (``tests/bench/test_report.py`` compares a two-worker report with a one-process
one). Workers ignore Ctrl-C; whatever ends the report (done, a failed section, Ctrl-C, a worker that
died) ends them, and the caller publishes nothing unless every section succeeded. Forking is
used on Linux only (elsewhere forking a process that loaded torch is not safe): the sections then
run in this process.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import torch
from tqdm import tqdm

from rlhf.training.loop import single_threaded

from ..errors import BenchError
from ..provenance import usable_cores
from ..sweep.executors import sigint_blocked
from .section import ReportInputs, Section, SectionOutput

_DIED = "a report worker died (out of memory or killed?); nothing was written: rerun, or use --workers 1"

_work: tuple[tuple[Section, ...], ReportInputs] | None = None
"""In a worker: the sections and their inputs (inherited from the report process)."""


def run_sections(sections: tuple[Section, ...], inputs: ReportInputs, workers: int | None = None,
                 first: tuple[Section, ...] = ()) -> list[SectionOutput]:
    """Every section's output, in the order of ``sections``: in ``workers`` forked processes (None:
    one per usable core, at most one per section), those in ``first`` started first, in its order."""
    workers = min(usable_cores() if workers is None else workers, len(sections))
    # a bar on a terminal only (disable=None): logs and captured output keep one line per message
    with tqdm(total=len(sections), desc="report", unit="section", disable=None, leave=False) as bar:
        if workers <= 1 or not sys.platform.startswith("linux"):
            outputs = []
            with single_threaded():
                for section in sections:
                    outputs.append(section(inputs))
                    bar.update()
            return outputs
        order = sorted(range(len(sections)), key=lambda i: first.index(sections[i]) if sections[i] in first
                       else len(first) + i)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_worker_setup, initargs=(sections, inputs))
        futures: dict[int, Future] = {}
        finished = False
        try:
            with sigint_blocked():        # the pool forks its workers in submit: they start with SIGINT blocked
                futures = {i: pool.submit(_run, i) for i in order}
            for future in futures.values():
                future.add_done_callback(lambda _: bar.update())
            outputs = [futures[i].result() for i in range(len(sections))]
            finished = True
            return outputs
        except BrokenProcessPool:
            raise BenchError(_DIED) from None
        finally:
            _stop(pool, futures.values(), finished)


def _stop(pool: ProcessPoolExecutor, futures, finished: bool) -> None:
    """End the pool: at once unless every section finished (queued sections cancelled, running ones
    terminated: their files are in a stage nobody publishes); returns once the workers have ended."""
    if finished:
        pool.shutdown(wait=True)
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())    # the pool's worker processes
    for future in futures:
        future.cancel()
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join()


def _worker_setup(sections: tuple[Section, ...], inputs: ReportInputs) -> None:
    """A worker keeps the sections, ignores Ctrl-C from now on (the report process ends it) and runs
    torch on one thread (the workers share the cores)."""
    global _work
    _work = (sections, inputs)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    torch.set_num_threads(1)


def _run(index: int) -> SectionOutput:
    assert _work is not None, "a worker's initializer keeps the sections"
    sections, inputs = _work
    return sections[index](inputs)
