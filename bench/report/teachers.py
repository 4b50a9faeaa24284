"""The report's teacher section: how irrational teachers (the B-Pref family) slow learning.

Per task run with several teachers: its teacher family (no slip, at the size and start mode with
the most teachers), success by budget per teacher, EPIC and preference accuracy at the largest
budget, and, per noise family, whether more noise means a reward farther from the truth — read
off the numbers. The family's sample-efficiency figure is drawn with the others by
:mod:`bench.report.convergence`, which takes the rows from :func:`teacher_family`.

Teachers are compared on the same seeds and budgets: a teacher that also belongs to another
run (the default sweep's ``boltzmann:1``, with more seeds and a longer sweep) is not pooled
with those extra cells here, and the page says which cells were left out; every row shows its n.
Across tasks, the teachers every task ran are ranked the way rliable does
(:mod:`bench.report.aggregate`).
"""

from __future__ import annotations

import itertools

import pandas as pd

from ..sweep.config import group_columns, instance_label
from . import aggregate
from .bootstrap import CONFIDENCE
from .section import ReportInputs, SectionOutput
from .stats import learner_note, summarize, values_text

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


BASELINE = "boltzmann:1"
"""The teacher the others are compared with across tasks (the seeds' own), when every task ran it."""


def teacher_family(inputs: ReportInputs, task: str) -> tuple[pd.DataFrame, list[str]] | None:
    """A task's teacher family (:func:`teacher_rows`) summarised again over only the budgets and
    seeds every teacher of it has, so that its rows compare like with like; and the sentences
    saying which cells of which teachers that leaves out (none: nothing pooled or left out). None
    without a family."""
    rows = teacher_rows(inputs.main, task)
    if rows is None:
        return None
    budgets = set.intersection(*[set(g["budget"]) for _, g in rows.groupby("teacher")])
    columns = group_columns()
    cells = inputs.cells.merge(rows[columns], on=columns)
    seeds = {t: set(g["seed"]) for t, g in cells.groupby("teacher")}
    shared = set.intersection(*[set(g["seed"]) for _, g in cells[cells["budget"].isin(budgets)]
                                .groupby(["teacher", "budget"])])
    left_out = []
    for teacher, own in sorted(seeds.items()):
        extra_budgets = sorted(set(rows.loc[rows["teacher"] == teacher, "budget"]) - budgets)
        if own - shared or extra_budgets:
            what = [f"{len(own - shared)} more seeds"] if own - shared else []
            what += [f"budget{'s' if len(extra_budgets) > 1 else ''} "
                     f"{', '.join(str(int(b)) for b in extra_budgets)}"] if extra_budgets else []
            left_out.append(f"{teacher!s} also has {' and '.join(what)}")
    metrics = [c.removesuffix("_mean") for c in rows.columns if c.endswith("_mean") and c != "success_mean"]
    family = summarize(cells[cells["budget"].isin(budgets) & cells["seed"].isin(shared)], metrics)
    notes = ([f"Every row is over the same {len(shared)} seeds and budgets; " + "; ".join(left_out)
              + ": those cells are left out here so that no teacher is pooled over more seeds than the others "
              "(they are in convergence.md)."] if left_out else [])
    return family, notes


def section(inputs: ReportInputs) -> SectionOutput:
    """Per task with several teachers: its table and the noise-family lines; nothing without one."""
    lines: list[str] = []
    falls: list[tuple[float, float]] = []
    families = {}
    for task in sorted(inputs.main["task"].unique()):
        found = teacher_family(inputs, task)
        if found is not None:
            rows, notes = found
            lines += _task_lines(task, rows, notes)
            falls.append(_falls(rows))
            families[task] = rows
    if not lines:
        return SectionOutput()
    lines += _across_tasks(inputs, families)
    faster = all(success >= MUCH_FASTER * accuracy for success, accuracy in falls)
    return SectionOutput(lines=[
        "## Irrational teachers", "",
        f"The B-Pref teacher family (`bench/configs/teachers.toml`, slip {SLIP:g}). A teacher's noise bounds how "
        "large a preference logit the data supports, so Bradley–Terry learns a *compressed* reward: its "
        "ranking of segments can stay good (preference accuracy) while planning on it at temperature "
        f"{values_text(pd.concat(list(families.values()))['temperature'])} "
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


def _task_lines(task: str, rows: pd.DataFrame, notes: list[str]) -> list[str]:
    """One task's table (teachers ordered by EPIC at the largest budget) and noise-family lines."""
    start = rows["start"].iloc[0]
    budgets = sorted(set.intersection(*[set(g["budget"]) for _, g in rows.groupby("teacher")]))
    rows = rows[rows["budget"].isin(budgets)]
    top = budgets[-1]
    table = []
    for teacher, g in rows.groupby("teacher", sort=False):
        g = g.set_index("budget")
        entry = {"teacher": str(teacher), "seeds": values_text(g["seeds"])}
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
    lines = [f"### Teachers: {name}", "", "Ordered by EPIC distance at the largest budget (closest first); EPIC "
             f"with a {CONFIDENCE:.0%} bootstrap CI over the row's seeds. " + " ".join(notes), "",
             pd.DataFrame(table).to_markdown(index=False), "", *learner_note(rows)]
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


def _across_tasks(inputs: ReportInputs, families: dict[str, pd.DataFrame]) -> list[str]:
    """The teachers every task ran, ranked across tasks the way rliable does: per seed the EPIC
    distance at the task's largest budget is a run, a task a task; lower is better."""
    if len(families) < 2:
        return []
    teachers = sorted(set.intersection(*(set(rows["teacher"]) for rows in families.values())))
    if BASELINE not in teachers or len(teachers) < 2:
        return []
    strata, tops = [], []
    columns = group_columns()
    for rows in families.values():
        top = rows[(rows["budget"] == rows["budget"].max()) & rows["teacher"].isin(teachers)]
        cells = inputs.cells.merge(top[columns], on=columns)
        table = cells.pivot_table(index="seed", columns="teacher", values="epic").dropna()
        strata.append(table[teachers].to_numpy(dtype=float))
        tops.append(f"{rows['task'].iloc[0]} @ {int(top['budget'].iloc[0])}")
    results = aggregate.aggregate(strata, teachers, BASELINE, {"section": "teachers", "teachers": teachers},
                                  higher_is_better=False)
    results.sort(key=lambda a: (a.iqm, a.method))
    table = pd.DataFrame(aggregate.table_rows(results, BASELINE, "EPIC", ".3f")).rename(
        columns={"": "teacher", f"P(better than {BASELINE}) [{CONFIDENCE:.0%} CI]":
                 f"P(closer to the truth than {BASELINE}) [{CONFIDENCE:.0%} CI]"})
    return ["### Teachers across tasks", "",
            f"The teachers both tasks ran, ranked the way rliable does (Agarwal et al., 2021): a seed's EPIC distance "
            f"at the task's largest budget ({', '.join(tops)}) is a run, a task a task. *IQM*: the interquartile "
            "mean of the runs pooled over tasks (lower is closer to the true reward); *P(closer to the truth than "
            f"{BASELINE})*: the chance that a seed's reward from this teacher is closer than a seed's reward from "
            f"{BASELINE} (ties ½), averaged over tasks; {CONFIDENCE:.0%} CIs by a bootstrap over seeds stratified by "
            "task.", "", table.to_markdown(index=False), "",
            *learner_note(pd.concat(list(families.values())))]
