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


def rounds_for(states: int, implementation: str) -> int:
    """More rounds where a call is cheap; few where one call takes seconds."""
    if implementation == "reference" and states >= 1600:
        return 3
    return 5 if states >= 10_000 else 20


__all__ = ["reference"]
