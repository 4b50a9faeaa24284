"""``python -m bench timings``: run the hot-path benchmarks, keep their JSON, write
``reports/timings.csv``, ``reports/timings.md``, a log-log scaling figure, and
pytest-benchmark's JSON (``reports/timings.json``).

Speed-ups are ratios of medians measured in the same run, written so that bigger is
better (reference time ÷ fast time); a cost ratio says which way it reads. Every target
is marked met or missed from the measured numbers. Each benchmark records what else the
machine was doing (``bench/hotpaths/conftest.py``: the load average, CPU vs wall time), and
figures taken under load are flagged (:func:`contended`). Peak memory is
``ru_maxrss`` growth (torch allocations are invisible to tracemalloc) in a child forked
per case from one fresh process that has imported torch and rlhf (:func:`_memory`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

import rlhf
from rlhf.core import soft_backups

from .. import kernels, outputs
from ..errors import BenchError
from ..report import figures

BATCH_SEEDS = 100
"""Seeds in the batched-run benchmark (`seed_batch`)."""
THROUGHPUT_SEEDS = 20
"""Seeds of the default-sweep configuration the `sweep_throughput` benchmark runs (as default.toml)."""
ENSEMBLE_SEEDS = (1, 20)
"""Seeds of the ensemble benchmark: one alone, and a harness group's."""
ENSEMBLE_ROUNDS = 10
"""Rounds of the seed gridworld the ensemble benchmark times."""
ENSEMBLE_TARGET = "5-member ensemble (≤ 2× one model's time)"
REGRET_TARGET = "regret learner's round (≤ 10× the partial learner's)"
SEED_RUN_BOUND = 30
"""The whole seed run against the seed-style reference (#27; it was 20× before the batched engine).
On the 2-core machine the pre-engine tree 0f2d84d itself measured 20.5× (one run, 5 alternations)."""
SEED_RUN_TARGET = f"whole seed run (≥ {SEED_RUN_BOUND}×)"
SPEEDUP_PER_SEED = "speed-up per seed, batched (bigger is better)"
"""The phase table's ratio: one seed's time × seeds ÷ the batch's time."""

ADAM_STEP_CALLS = 7
"""Torch calls of one learner (Adam) step, as the learner makes them: the closed-form Bradley–Terry
gradient as two row-vector × matrix products, then torch's fused Adam kernel."""
LOG_SPACE_BYTES = 4
"""Bytes per value of the log-space planner's [5, chunk] intermediates (float32)."""

LOAD_MARGIN = 0.5
"""A figure is taken *under load* when the 1-minute load average (which counts the benchmark's own
running thread) was above ``cores − 1 + LOAD_MARGIN`` before or after it: besides the benchmark,
more than about half a core's worth of other work was running."""
MIN_CPU_SHARE = 0.75
"""...or when the benchmark's process got less than this share of the CPU time its threads could
use (CPU seconds ÷ wall seconds ÷ threads), over a test long enough to tell (``MIN_WALL_S``)."""
MIN_WALL_S = 0.2

JSON_NAME = "timings.json"
_MEMORY_PROBE = r"""
import json, os, resource, sys, torch, rlhf
torch.set_num_threads(1)

def run(what, size, slip):
    task = rlhf.GridWorld(size=size, slip=slip)
    if what == "soft_vi":
        rlhf.soft_value_iteration(task.mdp, task.true_reward, 30)

for what, size, slip in json.loads(sys.argv[1]):
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        run(what, 5, slip)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run(what, size, slip)
        os.write(write, str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before).encode())
        os._exit(0)
    os.close(write)
    grown = os.read(read, 64).decode()
    os.close(read)
    if os.waitpid(child, 0)[1] != 0 or not grown:
        sys.exit(f"the memory probe of {what} {size} {slip} failed")
    print(json.dumps([what, size, slip, int(grown) / 1024]), flush=True)
"""
MEMORY_CASES = [("soft_vi", n, s) for n in (100, 300, 1000) for s in (0.0, 0.1)] + \
               [("transitions", n, s) for n in (300, 1000) for s in (0.0, 0.1)]


def run_timings(to: Path, quick: bool = False, from_json: Path | None = None) -> list[Path]:
    """Run the benchmarks (or reuse the pytest-benchmark JSON ``from_json``) and write the report
    into ``to`` (a directory :mod:`bench.outputs` lets it write); the raw JSON is kept beside it
    as ``timings.json``."""
    if from_json is not None and not from_json.is_file():
        raise BenchError(f"{from_json}: no such benchmark JSON")
    with outputs.publishing(to, "timings") as stage:
        raw = stage / JSON_NAME
        if from_json is not None:
            shutil.copyfile(from_json, raw)
        else:
            _run_benchmarks(raw, quick)
        report = json.loads(raw.read_text())
        frame = timings_frame(report)
        frame = frame.merge(_memory(), how="left", on=["group", "implementation", "size", "slip"])
        frame.to_csv(stage / "timings.csv", index=False, float_format="%.6g")
        (stage / "timings.md").write_text(_markdown(frame, report.get("machine_info", {})))
        figures.scaling(frame[frame["group"].isin(["soft_vi", "transitions", "reward_update"])
                              & (frame["slip"] == 0.0)], stage / "timings_scaling.png")
        names = sorted(p.name for p in stage.iterdir())
    return [to / name for name in names]


def _run_benchmarks(raw: Path, quick: bool) -> None:
    """pytest-benchmark in a subprocess, on one thread and torch's native kernels (the library's
    speed as users get it; only sweep cells run pinned, for bit-reproducibility)."""
    cmd = [sys.executable, "-m", "pytest", "bench/hotpaths", "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={raw}", "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=name"]
    if quick:
        cmd += ["-k", "not reference and not 1000 and not 300"]
    env = {k: v for k, v in os.environ.items() if k not in kernels.PINNED_ENV}
    env |= {"OMP_NUM_THREADS": "1", kernels.OPT_OUT: "native"}
    if subprocess.run(cmd, env=env).returncode != 0:
        raise BenchError("the hot-path benchmarks failed (see the pytest output above)")


def timings_frame(report: dict) -> pd.DataFrame:
    """One row per benchmark: group, implementation, size, slip, states, median, IQR, rounds,
    and the speed-up of the fast implementation over the reference of the same case."""
    rows = []
    for b in report["benchmarks"]:
        e, s = b["extra_info"], b["stats"]
        loads = [e[k] for k in ("load_before", "load_after") if e.get(k) is not None]
        rows.append({"group": e["group"], "implementation": e["implementation"], "task": e["task"],
                     "size": e["size"], "slip": e["slip"], "states": e["states"], "median_s": s["median"],
                     "iqr_s": s["iqr"], "rounds": s["rounds"], "cells": e.get("cells", float("nan")),
                     "seeds": e.get("seeds", float("nan")), "threads": e.get("threads", float("nan")),
                     "load": max(loads) if loads else float("nan"),
                     "cpu_per_wall": e["cpu_s"] / e["wall_s"] if e.get("wall_s", 0) >= MIN_WALL_S else float("nan"),
                     "calls": e.get("calls", float("nan")), "builtin_calls": e.get("builtin_calls", float("nan")),
                     "top_calls": ", ".join(f"`{name}` ×{n}" for name, n in e.get("top_calls", []))})
    frame = pd.DataFrame(rows).sort_values(["group", "implementation", "slip", "size"], ignore_index=True)
    ref = frame[frame["implementation"] == "reference"][["group", "size", "slip", "median_s"]]
    frame = frame.merge(ref.rename(columns={"median_s": "reference_median_s"}), how="left",
                        on=["group", "size", "slip"])
    frame["speedup"] = frame["reference_median_s"] / frame["median_s"]
    frame.loc[frame["implementation"] != "fast", "speedup"] = float("nan")
    return frame.drop(columns="reference_median_s")


def contended(frame: pd.DataFrame, cores: int) -> pd.Series:
    """Per benchmark: taken under load (True), not (False), or not known (NaN: the run did not record
    the load). Under load: the 1-minute load average exceeded ``cores − 1 + LOAD_MARGIN``, or the
    process got less than ``MIN_CPU_SHARE`` of its threads' CPU time."""
    if "load" not in frame:
        return pd.Series(float("nan"), index=frame.index, dtype=object)
    threads = frame["threads"].fillna(1.0)
    loaded = frame["load"] > cores - 1 + LOAD_MARGIN
    starved = frame["cpu_per_wall"] < MIN_CPU_SHARE * threads
    return (loaded | starved).astype(object).where(frame["load"].notna(), float("nan"))


def _memory() -> pd.DataFrame:
    """Peak memory (MiB) of each of :data:`MEMORY_CASES`: one fresh process imports torch and rlhf,
    then forks a child per case that runs it on a 5 × 5 grid first (its code paths loaded) and then
    at full size; the child's ``ru_maxrss`` growth over the second run is the case's peak. (It agrees
    within 1% with a fresh process per case that resets its high-water mark after the imports; a
    fresh process per case read without that reset, as before, hid the case under the imports' own
    peak: 0 up to N = 300, about 50 MiB too little at N = 1000, and took ten imports.)"""
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(MEMORY_CASES)],
                         capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return pd.DataFrame([{"group": what, "implementation": "fast", "size": size, "slip": slip, "peak_mib": mib}
                         for what, size, slip, mib in rows])


def _value(frame: pd.DataFrame, column: str, group: str, size: int, implementation: str = "fast",
           slip: float = 0.0, seeds: int | None = None) -> float:
    """One cell of the timings table (NaN when that benchmark or column is absent); ``seeds``
    picks among benchmarks of one case that differ in their number of seeds."""
    row = frame[(frame["group"] == group) & (frame["size"] == size) & (frame["slip"] == slip)
                & (frame["implementation"] == implementation) & ((frame["seeds"] == seeds) if seeds else True)]
    return float(row[column].iloc[0]) if len(row) and column in row else float("nan")


def _ratio(frame, group, size, slip=0.0) -> float:
    return _value(frame, "speedup", group, size, slip=slip)


def _median(frame, group, size, implementation="fast", slip=0.0) -> float:
    return _value(frame, "median_s", group, size, implementation, slip)


def _peak(frame, group, size, slip=0.0) -> float:
    return _value(frame, "peak_mib", group, size, slip=slip)


def _markdown(frame: pd.DataFrame, machine: dict) -> str:
    """The report; ``machine`` is pytest-benchmark's ``machine_info`` of the run that timed."""
    shown = frame.copy()
    shown["median"] = shown["median_s"].map(lambda t: f"{t * 1e3:.3g} ms")
    shown["IQR"] = shown["iqr_s"].map(lambda t: f"{t * 1e3:.2g} ms")
    shown["speed-up"] = shown["speedup"].map(lambda x: "" if pd.isna(x) else f"{x:,.0f}×")
    shown["peak memory"] = shown["peak_mib"].map(
        lambda x: "" if pd.isna(x) else ("< 1 MiB" if x < 1 else f"{x:,.0f} MiB"))
    cores = int(machine.get("cores") or 1)
    loaded = contended(frame, cores)
    recorded = bool(loaded.notna().any())
    shown["seeds"] = shown["seeds"].map(lambda x: "" if pd.isna(x) else f"{x:.0f}")
    shown["threads"] = shown["threads"].map(lambda x: "" if pd.isna(x) else f"{x:.0f}") if "threads" in shown else ""
    shown["load"] = [("" if pd.isna(load) else f"{load:.2f}" + (" ⚠" if flag is True else ""))
                     for load, flag in zip(shown.get("load", pd.Series(float("nan"), index=shown.index)), loaded,
                                           strict=True)]
    columns = ["group", "implementation", "task", "size", "slip", "states", "seeds", "threads", "median", "IQR",
               "rounds", "speed-up", "peak memory", *(["load"] if recorded else [])]
    table = shown[columns].to_markdown(index=False)
    flag = _flagger(frame, loaded, cores)
    vi, floor = _median(frame, "soft_vi", 1000), _median(frame, "soft_vi_floor", 1000, "floor")
    vi_slip = _median(frame, "soft_vi", 1000, slip=0.1)
    S, H = 1000 * 1000, 30
    chunk = soft_backups._CHUNK_STATES                  # the planner's own constants, not copies of them
    seed_run = rlhf.preset_task("seed-gridworld")
    rounds, pairs, epochs = seed_run.defaults.rounds, seed_run.defaults.round_size, seed_run.defaults.learner.epochs
    states, steps = seed_run.mdp.num_states, seed_run.horizon
    batch, one = _median(frame, "seed_batch", 5, "batched"), _median(frame, "seed_batch", 5, "one-seed")
    lines = [
        "# Hot-path timings", "",
        f"Machine: {machine.get('machine', '?')}, {machine.get('cores', '?')} cores; python "
        f"{machine.get('python_version', '?')}, torch {machine.get('torch_version', '?')}; torch single-threaded, "
        f"its native CPU kernels ({machine.get('torch_cpu_capability', 'not recorded')}). "
        "Medians of pytest-benchmark rounds "
        "(`python -m bench timings`; pytest-benchmark's raw JSON beside this file, `timings.json`), as many as "
        "a stable median needs (`bench/hotpaths/conftest.py`; the `rounds` column): 5 to 30 for calls of "
        "milliseconds to tens of them, 3 or 5 for calls of a tenth of a second or more (no warm-up: a cold "
        "first call is the slowest, never the median), and one call for each seed-style reference at N ≥ 40 "
        "(seconds a call, speed-ups in the hundreds or more). "
        "Speed-ups are ratios of medians measured in the same run against the seed-style references in "
        "`bench/reference.py`, reference time ÷ fast time: **bigger is better**; a cost ratio (the ensemble's) "
        "says which way it reads.", "",
        _load_line(frame, loaded, cores), "",
        "## Targets", "",
        *_targets(frame, flag, recorded, vi, vi_slip, batch, one, S), "",
        "## How far from the physical limit", "",
        f"**Slip 0.1 (log space).** One backup at N = 1000 must evaluate {S * 5:,} exponentials (log-sum-exp "
        f"over A = 5) and gather {S * 5:,} successor values. `soft_vi_floor` times exactly "
        "that minimum — H × (one `exp2` over [5, S] + one gather of 5·S values), chunk by chunk as the planner "
        f"runs — in the same run: {floor:.3f} s. The planner takes {vi_slip / floor:.1f}× the floor; the rest is "
        "the max pass, the subtraction, the sum over actions and the [5, 5] × [5, S] slip mix, each another pass "
        "over [5, S] (a state reward is added per state, outside the action max, so it costs no pass). Two "
        "choices keep those passes cheap: the loop runs in base 2 (torch's `exp2` is cheaper than its `exp`), "
        f"with the temperature folded into the units; and it runs over chunks of {_power(2, chunk)} states, so each "
        "pass's [5, chunk] intermediates stay in the L3 cache instead of streaming "
        f"{5 * S * LOG_SPACE_BYTES / 1e6:.0f} MB through memory (whole-array passes, `soft_vi_chunks`, take "
        f"{_median(frame, 'soft_vi_chunks', 1000, 'whole-array', 0.1):.3f} s "
        f"in the same run; slip 0: {_median(frame, 'soft_vi_chunks', 1000, 'whole-array'):.3f} s). "
        "The gather's index is int32 (it is the largest stream a backup reads). "
        "With slip the gather stays 5 values per state (factored transitions: the perpendicular moves are other "
        f"actions' moves). Python is not the bound: {H} iterations × {-(-S // chunk)} chunks of a handful of large "
        "kernels.", "",
        f"**Slip 0 (exp space).** A deterministic, undiscounted MDP has a linear soft backup in W = exp(τ·V): "
        "W'(s) = exp(τ·r(s)) · Σ_a W(next(s, a)) (Ziebart's backward pass), so a backup is a gather, a sum "
        "and a multiply, with no exponential at all. The gather reads 5·S float64 values by index "
        f"({S * 5 * 8 / 2**20:.0f} MiB) and reads an int32 index of the same count; the sum and the multiply run "
        f"on cache-resident chunks. {vi:.3f} s for H = 30 is {vi / (H - 1) * 1e3:.1f} ms a backup, "
        f"{vi / (H - 1) / (S * 5) * 1e9:.2f} ns per gathered value: bound by the indexed reads. Rewards whose "
        "range × horizon could underflow float64 (a spread of more than "
        f"~{soft_backups._EXP_SPACE_MAX_LOG_RANGE:.0f} in τ·log units) fall back to the log-space loop.", "",
        "**Against the dense reference** the gain is algorithmic: a dense backup does A·S² work "
        f"(an [A, S, S] einsum), a sparse one A·S, so the ratio grows with S ({_ratio(frame, 'soft_vi', 5):,.0f}× "
        f"at N = 5, {_ratio(frame, 'soft_vi', 70):,.0f}× at N = 70) rather than being a constant factor.", "",
        f"**Transitions** at N = 1000 write the [5, S] int64 move table ({S * 5 * 8 / 2**20:.0f} MiB) with "
        "about fifteen whole-array integer passes (coordinates, clamps, the stack) plus validation (index "
        "range, row sums): a few hundred MiB of streaming traffic, so tens of milliseconds is the right order; "
        "the seed's per-state search is O(S²).", "",
        f"**The whole seed run** is bound by per-call overhead instead: each of its {rounds} rounds makes a few "
        f"hundred torch calls on tensors of {states} to {pairs * steps:,} elements, each costing microseconds "
        f"whatever its size. Per round: the planner is {steps - 1} row-vector products with a {states} × {states} "
        f"exp-space backup matrix; a rollout of {2 * pairs} trajectories is one compiled call "
        "(`rlhf.core.compiled`: numba, integer arithmetic only; each step's integer inverse-CDF draw picks the "
        "executed action and the successor together, its 31-bit draw hashed in the kernel); the learner's "
        f"{epochs} Adam steps are {ADAM_STEP_CALLS} aten calls each (closed-form Bradley–Terry gradient as two "
        "row-vector × matrix products, torch's fused Adam kernel), run by one TorchScript function without "
        "Python's per-call parsing; the loop runs under `torch.inference_mode`."
        + _largest_phase(frame, epochs * ADAM_STEP_CALLS), "",
        *_phases(frame),
        *_throughput(frame),
        "## All benchmarks", "", table, "",
        "![scaling](timings_scaling.png)", ""]
    return "\n".join(lines)


def _load_line(frame: pd.DataFrame, loaded: pd.Series, cores: int) -> str:
    """How busy the machine was while the benchmarks ran, from what the run recorded."""
    if not loaded.notna().any():
        return ("**Load not recorded**: this run's JSON predates the load probe, so whether other work ran beside a "
                "benchmark cannot be told; read a figure that looks slow (such as two threads slower than one) as "
                "possibly contended.")
    flagged = int((loaded == True).sum())  # noqa: E712 (True, not NaN)
    rule = (f"load above {cores - 1 + LOAD_MARGIN:g} on {cores} cores, or less than {MIN_CPU_SHARE:.0%} of "
            "their threads' CPU time")
    text = ("**Load.** Each benchmark recorded the machine's 1-minute load average and its CPU time against wall "
            f"time (load ranged {frame['load'].min():.2f}–{frame['load'].max():.2f}). ")
    if not flagged:
        return text + f"None was taken under load ({rule})."
    return text + (f"{flagged} of {int(loaded.notna().sum())} were taken under load ({rule}), marked ⚠ below: "
                   "other work was running, and those figures may be slower than the code.")


def _flagger(frame: pd.DataFrame, loaded: pd.Series, cores: int):
    """``flag(group, size, implementation=..., slip=...)``: " ⚠ taken under load …" when any matching
    benchmark was, else ""."""
    def flag(group: str, size: int, implementation: str = "fast", slip: float | None = None) -> str:
        rows = (frame["group"] == group) & (frame["size"] == size) & (frame["implementation"] == implementation)
        if slip is not None:
            rows &= frame["slip"] == slip
        hit = rows & (loaded == True)  # noqa: E712 (True, not NaN)
        if not hit.any():
            return ""
        return (f" ⚠ taken under load ({frame.loc[hit, 'load'].max():.1f} on {cores} cores: other work was running, "
                "so this figure may be slower than the code)")
    return flag


def _verdict(value: float, bound: float, at_least: bool) -> str:
    """"met" or "missed" (bold), or "not measured"."""
    if math.isnan(value):
        return "not measured"
    return "**met**" if (value >= bound if at_least else value <= bound) else "**missed**"


def _targets(frame: pd.DataFrame, flag, recorded: bool, vi: float, vi_slip: float, batch: float, one: float,
             S: int) -> list[str]:
    """The targets, each marked met or missed from the measured numbers (a target over both slips
    is met when both are), under a line counting them."""
    two, two_slip = (_median(frame, "soft_vi_threads", 1000, "fast-2-threads", slip) for slip in (0.0, 0.1))
    reference = _median(frame, "seed_run", 5, "reference")
    vi70 = min(_ratio(frame, "soft_vi", 70), _ratio(frame, "soft_vi", 70, 0.1))
    transitions = max(_median(frame, "transitions", 1000), _median(frame, "transitions", 1000, slip=0.1))
    verdicts = {"soft VI at N = 70 (≥ 200×)": _verdict(vi70, 200, True),
                "soft VI at N = 1000 (≤ 0.5 s)": _verdict(max(vi, vi_slip), 0.5, False),
                "transitions at N = 1000 (≤ 1 s)": _verdict(transitions, 1.0, False),
                SEED_RUN_TARGET: _verdict(_ratio(frame, "seed_run", 5), SEED_RUN_BOUND, True),
                f"{BATCH_SEEDS} seeds batched (≥ 20×)": _verdict(BATCH_SEEDS * one / batch, 20, True),
                "batched per seed against the reference (≥ 600×)":
                    _verdict(reference * BATCH_SEEDS / batch, 600, True)}
    verdicts |= _ensemble_verdict(frame) | _regret_verdict(frame)
    met = [k for k, v in verdicts.items() if v == "**met**"]
    missed = [k for k, v in verdicts.items() if v == "**missed**"]
    lines = [f"**{len(met)} of {len(verdicts)} targets met**" + (f"; missed: {', '.join(missed)}." if missed else ".")
             + " Each line below says which, from the numbers it shows.", "",
             f"- soft VI (H = 30) at N = 70: **{_ratio(frame, 'soft_vi', 70):,.0f}×** faster than the dense reference "
             f"(slip 0.1: {_ratio(frame, 'soft_vi', 70, 0.1):,.0f}×); target ≥ 200×: "
             f"{verdicts['soft VI at N = 70 (≥ 200×)']}."
             + flag("soft_vi", 70) + flag("soft_vi", 70, "reference"),
             f"- soft VI at N = {1000} ({_power(10, S)} states), one thread: median **{vi:.3f} s** (slip 0.1: "
             f"{vi_slip:.3f} s); target ≤ 0.5 s: {verdicts['soft VI at N = 1000 (≤ 0.5 s)']}; peak memory "
             f"{_peak(frame, 'soft_vi', 1000):,.0f} MiB (slip 0.1: {_peak(frame, 'soft_vi', 1000, 0.1):,.0f} MiB)."
             + flag("soft_vi", 1000)
             + _two_threads(vi, vi_slip, two, two_slip, flag("soft_vi_threads", 1000, "fast-2-threads"), recorded),
             f"- transitions at N = 1000: median **{_median(frame, 'transitions', 1000):.3f} s** "
             f"(slip 0.1: {_median(frame, 'transitions', 1000, slip=0.1):.3f} s), peak memory "
             f"{_peak(frame, 'transitions', 1000, 0.1):,.0f} MiB (the [5, S] move table; the sparse [A, S, K] "
             f"form is derived only when asked for); target ≤ 1 s: {verdicts['transitions at N = 1000 (≤ 1 s)']}."
             + flag("transitions", 1000),
             f"- whole `seed-gridworld` run: **{_ratio(frame, 'seed_run', 5):.1f}×** faster than the seed-style "
             f"reference ({reference:.1f} s → {_median(frame, 'seed_run', 5):.2f} s); target ≥ {SEED_RUN_BOUND}×: "
             f"{verdicts[SEED_RUN_TARGET]}." + flag("seed_run", 5) + flag("seed_run", 5, "reference"),
             f"- {BATCH_SEEDS} seeds of `seed-gridworld` in one `rlhf.train_batch` call: {batch:.2f} s against "
             f"{BATCH_SEEDS} × {one:.3f} s one seed at a time, **{BATCH_SEEDS * one / batch:.1f}×** faster; target "
             f"≥ 20×: {verdicts[f'{BATCH_SEEDS} seeds batched (≥ 20×)']}. Per seed {batch / BATCH_SEEDS * 1e3:.0f} ms, "
             f"{reference * BATCH_SEEDS / batch:,.0f}× faster than the seed-style reference per seed; target ≥ 600×: "
             f"{verdicts['batched per seed against the reference (≥ 600×)']}."
             + flag("seed_batch", 5, "batched") + flag("seed_batch", 5, "one-seed"),
             *_ensemble_targets(frame, verdicts, flag), *_regret_targets(frame, verdicts, flag)]
    return lines


def _regret_ratios(frame: pd.DataFrame) -> dict[str, float]:
    """Per case of the ``learner_update`` benchmark: one round's update of Knox et al.'s (2022) regret
    learner over the partial learner's, medians of one run."""
    rows = frame[frame["group"] == "learner_update"]
    out = {}
    for task, case in rows.groupby("task", sort=False):
        times = case.set_index("implementation")["median_s"]
        if {"partial", "regret"} <= set(times.index):
            out[str(task)] = float(times["regret"] / times["partial"])
    return out


def _regret_verdict(frame: pd.DataFrame) -> dict[str, str]:
    ratios = _regret_ratios(frame)
    return {REGRET_TARGET: _verdict(max(ratios.values()), 10.0, False)} if ratios else {}


def _regret_targets(frame: pd.DataFrame, verdicts: dict[str, str], flag) -> list[str]:
    """The regret learner's cost per round against the partial learner's (a cost ratio: smaller is better)."""
    ratios = _regret_ratios(frame)
    if not ratios:
        return []
    said = ", ".join(f"{task} {ratio:.1f}×" for task, ratio in ratios.items())
    return [f"- one round's update of Knox et al.'s (2022) regret learner against the partial learner's, same pairs "
            f"(a cost ratio: smaller is better): {said}; target ≤ 10× in every case: {verdicts[REGRET_TARGET]}. On "
            "a world where every action has one sure successor a regret step is two compiled calls "
            "(`rlhf/core/_numba_regret.py`: the backward induction, the pairs' sparse logits, its vector–Jacobian "
            "product) around torch's sigmoid and Adam step, where the torch recurrence made hundreds of calls a step "
            "(elsewhere, e.g. with slip or action noise, it still does)."]


def _two_threads(one: float, one_slip: float, two: float, two_slip: float, flagged: str, recorded: bool) -> str:
    """The both-cores figure, with a comment when two threads are slower than one."""
    text = f" Both cores (2 threads): {two:.3f} s (slip 0.1: {two_slip:.3f} s)"
    if math.isnan(two) or (two <= one and two_slip <= one_slip):
        return text + "." + flagged
    text += (f": **slower than one thread** ({two / one:.2f}× its time; slip 0.1: {two_slip / one_slip:.2f}×)."
             if two > one else f": slower than one thread at slip 0.1 ({two_slip / one_slip:.2f}× its time).")
    if flagged:
        reason = (flagged + ": with other work on the machine the second thread waits for a core, and every "
                  "backup waits for the slower thread.")
    else:
        reason = (" A backup is bound by memory reads (the gather of 5·S successor values), which a second thread "
                  "on the same memory barely speeds up, while it adds a synchronisation per chunk; "
                  + ("no other load was recorded while it ran." if recorded else
                     "this run did not record the load, so contention cannot be ruled out either."))
    return text + reason + " The target is about one thread."


def _power(base: int, value: int) -> str:
    """``value`` as a power of ``base`` in superscript (``_power(2, 131072)`` is "2¹⁷")."""
    exponent = round(math.log(value, base))
    assert base**exponent == value, (base, value)
    return f"{base}{str(exponent).translate(_SUPERSCRIPT)}"


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _phase_medians(frame: pd.DataFrame, values: str = "median_s") -> pd.DataFrame | None:
    """Median seconds (or another column, ``values``) of each phase of a seed-run round (rows rollout,
    label, update, plan) for one seed and for ``BATCH_SEEDS`` (columns); None when the run lacks any."""
    rows = frame[frame["group"] == "seed_batch_phases"]
    if values not in rows:
        return None
    table = rows.pivot_table(index="implementation", columns="seeds", values=values)
    table = table.reindex(index=["rollout", "label", "update", "plan"], columns=[1, BATCH_SEEDS])
    return None if table.isna().to_numpy().any() else table


def _largest_phase(frame: pd.DataFrame, learner_calls: int) -> str:
    """The sentence naming the phase that takes the largest share of a one-seed round, read off the
    phase benchmarks ("" without them)."""
    table = _phase_medians(frame)
    if table is None:
        return ""
    one = table[1]
    phase = str(one.idxmax())
    calls = f" (the learner's {learner_calls} aten calls)" if phase == "update" else ""
    return (f" Of a one-seed round's phases (below), the {phase}{calls} takes the largest share: "
            f"{one.max() / one.sum():.0%}.")


def _ensemble_medians(frame: pd.DataFrame) -> dict[int, tuple[float, float]]:
    """Per number of seeds: the round's median time with one model and with 5 members (seconds)."""
    def median(members: int, seeds: int) -> float:
        return _value(frame, "median_s", "ensemble", 5, f"E={members}", seeds=seeds)
    return {seeds: (median(1, seeds), median(5, seeds)) for seeds in ENSEMBLE_SEEDS}


def _ensemble_verdict(frame: pd.DataFrame) -> dict[str, str]:
    if not (frame["group"] == "ensemble").any():
        return {}
    worst = max(five / one for one, five in _ensemble_medians(frame).values())
    return {ENSEMBLE_TARGET: _verdict(worst, 2.0, False)}


def _ensemble_targets(frame: pd.DataFrame, verdicts: dict[str, str], flag) -> list[str]:
    """The ensemble's cost per round, E = 5 against E = 1 (the seed gridworld, on-policy): a cost
    ratio, so smaller is better, and said so."""
    if not (frame["group"] == "ensemble").any():
        return []
    parts = []
    for seeds, (one, five) in _ensemble_medians(frame).items():
        ratio = five / one
        parts.append(f"with {seeds} seed{'s' if seeds > 1 else ''}, 5 members cost **{ratio:.2f}×** one model's time "
                     f"({one / ENSEMBLE_ROUNDS * 1e3:.1f} → {five / ENSEMBLE_ROUNDS * 1e3:.1f} ms a round"
                     + ("; below 1×: no measurable extra cost at this size" if ratio < 1 else "") + ")")
    return ["- a 5-member reward ensemble against one model, per round of the seed gridworld (a cost ratio: smaller "
            "is better): " + "; ".join(parts) + f"; target ≤ 2×: {verdicts[ENSEMBLE_TARGET]}. "
            "Members share their seed's pairs: a bootstrap resample is a vector of multiplicities, and an Adam step "
            "is two [E, F] × [F, n] products per seed, which read the count matrix once for all members."
            + flag("ensemble", 5, "E=1") + flag("ensemble", 5, "E=5")]


def _phases(frame: pd.DataFrame) -> list[str]:
    """The "where a batched round's time goes" section: each phase of a seed-run round, one seed
    against a batch (`seed_batch_phases`)."""
    table = _phase_medians(frame)
    if table is None:
        return []            # a filtered or failed run: no section rather than a partial one
    table.loc["sum of phases"] = table.sum()
    one, many = table[1], table[BATCH_SEEDS]
    shown = pd.DataFrame({"phase": table.index, "one seed (ms)": one * 1e3,
                          f"{BATCH_SEEDS} seeds (ms)": many * 1e3,
                          "per seed in the batch (µs)": many / BATCH_SEEDS * 1e6,
                          SPEEDUP_PER_SEED: BATCH_SEEDS * one / many})
    worst = shown.iloc[:-1].sort_values(SPEEDUP_PER_SEED).iloc[0]
    seed_run = rlhf.preset_task("seed-gridworld")
    pairs, steps, epochs = seed_run.defaults.pairs_per_round, seed_run.horizon, seed_run.defaults.learner.epochs
    features = seed_run.mdp.num_states
    per_seed = table[BATCH_SEEDS] / BATCH_SEEDS
    step_ns = per_seed["rollout"] / (2 * pairs * steps) * 1e9
    adam_us = per_seed["update"] / epochs * 1e6
    return ["## Where a batched round's time goes", "",
            f"One round of the `seed-gridworld` loop, phase by phase, for one seed and for {BATCH_SEEDS} "
            f"(`seed_batch_phases`): the rollout of {2 * pairs} trajectories × {steps} steps a "
            "seed, the teacher's labels (step rewards and the Boltzmann draw), the learner's update "
            f"({epochs} Adam steps on {pairs} pairs), and planning on the learned reward plus the "
            "exact return logged each round. One thread.", "",
            shown.to_markdown(index=False, floatfmt=".2f"), "",
            "A phase makes the same torch calls for one seed as for a batch, so the batch shares their dispatch "
            "cost and what is left per seed is the phase's own work. The ratio of a phase is bounded by how much "
            f"of its one-seed time is dispatch. The {worst['phase']} gains least "
            f"({worst[SPEEDUP_PER_SEED]:.1f}×). "
            f"At {BATCH_SEEDS} seeds the rollout takes {step_ns:.1f} ns per trajectory-step. "
            "That covers, in the compiled walk, the counter-based draw (a SplitMix64 hash per two draws), the "
            "compare and count over the trajectory's A·K integer CDF entries, and the successor's lookup. "
            f"The update takes {adam_us:.2f} µs per seed and Adam step: two "
            f"[1, {features}] × [{features}, {pairs}] products and a few elementwise calls.", "",
            *_phase_calls(frame)]


def _phase_calls(frame: pd.DataFrame) -> list[str]:
    """The call counts of a round's phases (``seed_batch_phases``' ``calls``, counted by the benchmark
    with ``sys.setprofile``), one seed against a batch, beside the phase table; [] without them."""
    calls, times = _phase_medians(frame, "calls"), _phase_medians(frame, "median_s")
    builtins = _phase_medians(frame, "builtin_calls")
    if calls is None or times is None or builtins is None:
        return []            # a run from before the counts, or a partial one
    rows = frame[(frame["group"] == "seed_batch_phases") & (frame["seeds"] == 1)].set_index("implementation")
    one, many = calls[1], calls[BATCH_SEEDS]
    shown = pd.DataFrame({"phase": [*calls.index, "sum of phases"],
                          "calls, one seed": [*one, one.sum()],
                          f"calls, {BATCH_SEEDS} seeds": [*many, many.sum()],
                          "of which builtins, one seed": [*builtins[1], builtins[1].sum()],
                          "µs a call, one seed": [*(times[1] / one * 1e6), times[1].sum() / one.sum() * 1e6],
                          "most frequent, one seed": [*(rows.loc[p, "top_calls"] for p in calls.index), ""]})
    ratio = many.sum() / one.sum()
    most = str(one.idxmax())
    if ratio < 2:
        shared = (f"A {BATCH_SEEDS}-seed round makes {ratio:.2f}× the calls of a one-seed round: batching does "
                  "not multiply calls by the seeds, so what a batch adds is arithmetic on larger tensors.")
    else:
        shared = (f"**A {BATCH_SEEDS}-seed round makes {ratio:.1f}× the calls of a one-seed round**: some of the "
                  "work is a Python loop over seeds (or over something that grows with them), which batching "
                  "cannot share.")
    return ["Calls a round makes, phase by phase (`seed_batch_phases`: one more call of each phase after its "
            "timing, counted with `sys.setprofile`): Python functions and the C builtins called from Python "
            "(torch's ops, tensor methods), not what runs inside a builtin. The time a call is the one-seed "
            "median divided by the calls: what a call costs on average, its dispatch included.", "",
            shown.to_markdown(index=False, floatfmt=(".0f", ".0f", ".0f", ".0f", ".1f", "")), "",
            f"{shared} Of a one-seed round's {one.sum():.0f} calls the {most} makes the most ({one.max():.0f}); "
            f"its most frequent: {rows.loc[most, 'top_calls']!s}.", ""]


def _throughput(frame: pd.DataFrame) -> list[str]:
    """The "sweep throughput" section: cells per second of one default-sweep configuration."""
    rows = frame[frame["group"] == "sweep_throughput"]
    if rows.empty:
        return []
    per_second = rows.assign(cells_per_s=rows["cells"] / rows["median_s"])
    table = per_second.pivot_table(index=["task", "size"], columns="implementation", values="cells_per_s")
    table["speed-up, batched (bigger is better)"] = table["batched"] / table["one-seed"]
    shown = table.reset_index().rename(columns={"batched": "cells/s batched", "one-seed": "cells/s one seed"})
    budgets = _one_value(rows[rows["implementation"] == "one-seed"]["cells"])     # one seed: a cell per budget
    return ["## Sweep throughput", "",
            f"One configuration of the default sweep (slip {_one_value(rows['slip']):g}; gridworld uniform start), "
            f"its {THROUGHPUT_SEEDS} seeds × {budgets:.0f} budgets = {THROUGHPUT_SEEDS * budgets:.0f} cells: one "
            "`rlhf.train_checkpoints` call over all seeds (what a harness group runs), against one seed's "
            f"checkpointed run ({budgets:.0f} cells) at a time. One thread.", "",
            shown.to_markdown(index=False, floatfmt=".1f"), "",
            "What bounds it: a round's work is a fixed sequence of torch calls whatever the number of seeds, so "
            "one seed alone is dispatch-bound (microseconds a call on tensors of tens of elements) and a batch "
            f"shares that cost; at {THROUGHPUT_SEEDS} seeds the rollout (one integer inverse-CDF draw a step, per "
            "trajectory: a gather of its A·K CDF entries, a compare and a count, then the successor's gather) "
            "and the learner's batched row-vector × matrix "
            "products (2 per Adam step) carry most of the time, and the per-seed metrics at each checkpoint "
            "(normalised regret plans the learned reward once per seed; the truth's side is cached) a fixed "
            "share.", ""]


def _one_value(column: pd.Series) -> float:
    """The value every row of a benchmark group shares (its sweep's slip, its budgets)."""
    values = column.dropna().unique()
    assert len(values) == 1, f"expected one value of {column.name}, got {list(values)}"
    return float(values[0])
