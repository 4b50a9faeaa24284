"""Shared setup for the hot-path benchmarks: built once, never inside the timed region."""

import os
import time
from functools import lru_cache

import pytest
import torch

import rlhf

from ..provenance import usable_cores
from ..timings import reference

HORIZON = 30
GRID_SIZES = (5, 10, 20, 40, 70, 100, 300, 1000)
REFERENCE_MAX_SIZE = 70           # dense [A, S, S] beyond this: gigabytes
SEARCH_MAX_SIZE = 40              # O(S²) per-state search beyond this: minutes
STRING_LENGTHS = (3, 10, 30)
UPDATE_SIZES = (5, 20, 100, 1000)


@pytest.fixture(autouse=True)
def single_thread():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def machine_load(request, single_thread):
    """What else the machine was doing while a benchmark ran, recorded beside its times (``bench
    timings`` flags figures taken under load): the 1-minute load average before and after the test
    (``load_before``, ``load_after``; it counts the benchmark's own running thread), and the process's
    CPU seconds and wall seconds over the test (``cpu_s``, ``wall_s``: a benchmark that got the
    cores it asked for has about ``threads`` CPU seconds per wall second). ``threads``: torch's
    threads for the timed calls, unless the test sets it (the two-thread benchmark does)."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    benchmark = request.getfixturevalue("benchmark")
    threads = torch.get_num_threads()
    load_before, cpu, wall = _load(), time.process_time(), time.perf_counter()
    yield
    benchmark.extra_info.setdefault("threads", threads)
    benchmark.extra_info.update(load_before=load_before, load_after=_load(),
                                cpu_s=round(time.process_time() - cpu, 4), wall_s=round(time.perf_counter() - wall, 4))


def _load() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return round(os.getloadavg()[0], 3) if hasattr(os, "getloadavg") else float("nan")


def pytest_benchmark_update_machine_info(config, machine_info):
    """What the timings ran on, for ``bench timings`` (which may rebuild its report from the JSON
    on another machine): torch's version and CPU kernel set, and the cores this process may use."""
    machine_info["torch_version"] = torch.__version__
    machine_info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    machine_info["cores"] = usable_cores()


@lru_cache(maxsize=4)
def grid(size: int, slip: float) -> rlhf.GridWorld:
    return rlhf.GridWorld(size=size, slip=slip, start=[(0, 0)])


@lru_cache(maxsize=2)
def dense(size: int, slip: float) -> torch.Tensor:
    return grid(size, slip).mdp.dense_transitions()


def info(benchmark, group: str, implementation: str, states: int, **case) -> None:
    benchmark.extra_info.update(group=group, implementation=implementation, states=states,
                                case=",".join(f"{k}={v}" for k, v in sorted(case.items())), **case)


# Rounds: chosen for a stable median at the least time (``bench timings`` runs every benchmark, and
# ``tox -e bench`` has a budget), never for the most rounds. pytest-benchmark's pedantic mode, so
# the rounds are what these say whatever the machine.
QUICK = {"rounds": 20, "warmup_rounds": 1}
"""Calls of milliseconds: 20 rounds and a warm-up cost a fraction of a second."""
SOME = {"rounds": 5, "warmup_rounds": 1}
"""Calls of up to a few tens of milliseconds."""
MEDIAN_OF_3 = {"rounds": 3, "warmup_rounds": 0}
"""Calls of a tenth of a second to seconds: a median of 3. No warm-up round: a cold first call
(first allocations, page faults, a cache filled) is the slowest of the three, so it is never
the median; one disturbed round is not either."""
MEDIAN_OF_5 = {"rounds": 5, "warmup_rounds": 0}
"""As :data:`MEDIAN_OF_3`, for the numerator of a target close to its bound (the one-seed run)."""
ONCE = {"rounds": 1, "warmup_rounds": 0}
"""Seed-style references of half a second to seconds a call whose speed-ups are in the hundreds
or more (N ≥ 40): a few percent of noise moves no conclusion, so one call is the measurement.
The whole seed run's reference, the denominator of targets near their bounds, is a median of 3."""


def rounds_for(states: int, implementation: str) -> dict[str, int]:
    """``benchmark.pedantic``'s ``rounds`` and ``warmup_rounds`` for a planner or transitions case:
    by what one call costs, which its states say."""
    if implementation == "reference":
        return ONCE if states >= 1600 else QUICK
    if states >= 1_000_000:
        return MEDIAN_OF_3
    return SOME if states >= 10_000 else QUICK


__all__ = ["reference"]
