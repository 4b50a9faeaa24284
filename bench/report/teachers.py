"""The report's teacher section: how irrational teachers (the B-Pref family) slow learning.

Per task run with several teachers: its teacher family (no slip, at the size and start mode with
the most teachers), success by budget per teacher, EPIC and preference accuracy at the largest
budget, and, per noise family, whether more noise means a reward farther from the truth — read
off the numbers. The family's sample-efficiency figure is drawn with the others by
:mod:`bench.report.convergence`, which picks the rows with :func:`teacher_rows`.
"""

from __future__ import annotations

import itertools

import pandas as pd

from ..sweep.config import instance_label
from .section import ReportInputs, SectionOutput
from .stats import values_text

NOISE_FAMILIES = {   # teacher specs ordered from least to most noisy
    "mistake ε (Boltzmann β = 1)": ["boltzmann:1", "boltzmann:1+mistake:0.1", "boltzmann:1+mistake:0.3"],
    "mistake ε (oracle)": ["oracle", "oracle+mistake:0.1", "oracle+mistake:0.3"],
    "Boltzmann β": ["oracle", "boltzmann:1", "boltzmann:0.3", "boltzmann:0.1"],
}
SLIP = 0.0
"""The slip of the teacher sweep's configurations (teachers are compared without slip)."""
MIN_FAMILY = 3
"""Teachers of a noise family the runs must hold for its monotonicity line."""
MUCH_FASTER = 2.0
"""What "the success rate falls much faster than the accuracy" means: its relative fall from the best teacher
to the worst, at the largest budget, is at least this many times the accuracy's, in every task."""


def teacher_rows(summary: pd.DataFrame, task: str) -> pd.DataFrame | None:
    """The teacher sweep's configurations of a task (slip 0, at the size and start mode with the
    most teachers), or None when the task was run with one teacher only."""
    rows = summary[(summary["task"] == task) & (summary["slip"] == SLIP)]
    if rows["teacher"].nunique() < 2:
        return None
    rows = rows[rows["size"] == rows.groupby("size")["teacher"].nunique().idxmax()]
    return rows[rows["start"] == rows.groupby("start")["teacher"].nunique().idxmax()]


def section(inputs: ReportInputs) -> SectionOutput:
    """Per task with several teachers: its table and the noise-family lines; nothing without one."""
    lines: list[str] = []
    falls: list[tuple[float, float]] = []
    families = []
    for task in sorted(inputs.main["task"].unique()):
        rows = teacher_rows(inputs.main, task)
        if rows is not None:
            lines += _task_lines(task, rows)
            falls.append(_falls(rows))
            families.append(rows)
    if not lines:
        return SectionOutput()
    faster = all(success >= MUCH_FASTER * accuracy for success, accuracy in falls)
    return SectionOutput(lines=[
        "## Irrational teachers", "",
        f"The B-Pref teacher family (`bench/configs/teachers.toml`, slip {SLIP:g}). A teacher's noise bounds how "
        "large a preference logit the data supports, so Bradley–Terry learns a *compressed* reward: its "
        "ranking of segments can stay good (preference accuracy) while planning on it at temperature "
        f"{values_text(pd.concat(families)['temperature'])} "
        + ("is close to random — the success rate falls much faster than the accuracy." if faster else
           "can be close to random; here the success rate does not fall much faster than the accuracy."),
        "", *lines])


def _falls(rows: pd.DataFrame) -> tuple[float, float]:
    """``(success, accuracy)``: each one's relative fall from the best teacher to the worst at the
    largest budget every teacher of the family was run with."""
    budgets = set.intersection(*[set(g["budget"]) for _, g in rows.groupby("teacher")])
    top = rows[rows["budget"] == max(budgets)]

    def fall(column: str) -> float:
        best = top[column].max()
        return float(1 - top[column].min() / best) if best > 0 else 0.0

    return fall("success_mean"), fall("pref_accuracy_mean")


def _task_lines(task: str, rows: pd.DataFrame) -> list[str]:
    """One task's table (teachers ordered by EPIC at the largest budget) and noise-family lines."""
    start = rows["start"].iloc[0]
    budgets = sorted(set.intersection(*[set(g["budget"]) for _, g in rows.groupby("teacher")]))
    rows = rows[rows["budget"].isin(budgets)]
    top = budgets[-1]
    table = []
    for teacher, g in rows.groupby("teacher", sort=False):
        g = g.set_index("budget")
        entry = {"teacher": str(teacher)}
        entry |= {f"success @ {b}": f"{g.loc[b, 'success_mean']:.0%}" for b in budgets}
        entry[f"EPIC @ {top}"] = (f"{g.loc[top, 'epic_mean']:.3f} [{g.loc[top, 'epic_ci_low']:.3f}, "
                                  f"{g.loc[top, 'epic_ci_high']:.3f}]")
        entry[f"pref. acc. @ {top}"] = f"{g.loc[top, 'pref_accuracy_mean']:.3f}"
        if "near_optimal_mean" in g:
            entry[f"near-opt. @ {top}"] = f"{g.loc[top, 'near_optimal_mean']:.0%}"
        table.append(entry)
    table.sort(key=lambda e: float(e[f"EPIC @ {top}"].split()[0]))
    name = (f"{task}, {instance_label(rows.iloc[0].to_dict()).replace('=', ' = ')}"
            + (f", {start} start" if start else ""))
    lines = [f"### Teachers: {name}", "", "Ordered by EPIC distance at the largest budget (closest first).", "",
             pd.DataFrame(table).to_markdown(index=False), ""]
    epic = {t: g.set_index("budget").loc[top, "epic_mean"] for t, g in rows.groupby("teacher")}
    for family, order in NOISE_FAMILIES.items():
        seen = [t for t in order if t in epic]
        if len(seen) < MIN_FAMILY:
            continue
        values = [epic[t] for t in seen]
        monotone = all(a <= b + 1e-9 for a, b in itertools.pairwise(values))
        chain = " → ".join(f"{t} {v:.3f}" for t, v in zip(seen, values, strict=True))
        lines.append(f"- {family}, EPIC at {top} pairs: {chain}: "
                     + ("more noise, farther from the true reward (monotone)." if monotone
                        else "not monotone in the noise level."))
    return [*lines, ""]
