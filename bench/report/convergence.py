"""The report's convergence section: what converges, and with how many pairs.

It writes the per-configuration table (``convergence.csv``, ``convergence.md``: mean over
seeds with a bootstrap CI, IQM in the CSV), a sample-efficiency figure per task (its main
family of configurations, and its teacher family when it was run with several teachers),
and the front page's findings: per configuration the *budget at which mean success reaches
the target* (:func:`bench.report.stats.budget_reaching_target`), and the corner-start
failure of large gridworlds, read off the stored training histories.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

import rlhf
from rlhf.tasks.gridworld import CONVERGED_MAX_REGRET

from ..sweep.config import SHOWN_COLUMNS, group_columns, instance_label
from . import figures, teachers
from .bootstrap import CONFIDENCE
from .section import Figure, ReportInputs, SectionOutput
from .stats import BINARY_SERIES, MIN_RELIABLE_SEEDS, budget_reaching_target, learner_text, values_text, varying_fields

CORNER_MIN_SIZE = 10
"""The corner-start finding is about gridworlds of at least this size."""
PANELS = [("success", "success rate"), ("epic", "EPIC distance")]


def section(inputs: ReportInputs) -> SectionOutput:
    """The tables, the sample-efficiency figures and the findings."""
    main, extra, stage = inputs.main, inputs.extra, inputs.stage
    files = _tables(inputs.summary, extra, stage)
    shown: list[Figure] = []
    for task in sorted(main["task"].unique()):
        rows = main_rows(main, task, extra)
        title = f"Sample efficiency: {task}, teacher {values_text(rows['teacher'])}"
        shown.append(Figure(figures.sample_efficiency(rows, task, PANELS, stage / f"sample_efficiency_{task}.png",
                                                      title=title), title, _caption(rows, "slip")))
        found = teachers.teacher_family(inputs, task)
        if found is not None:     # a line's label names only what varies between its lines
            family = found[0]
            varying = tuple(c for c in extra if family[c].nunique() > 1)
            title = f"Teachers: {task}, {instance_label(family.iloc[0].to_dict()).replace('=', ' = ')}"
            shown.append(Figure(figures.sample_efficiency(family, task, PANELS, stage / f"teachers_{task}.png",
                                                          line_by="teacher", extra=varying, title=title),
                                title, _caption(family, "teacher")))
    lines = ["## What converges, and with how many pairs", ""]
    corner = _corner_finding(main, _tied_round_share(list(inputs.stored.values())))
    if corner:
        lines += [corner, ""]
    lines += ["Smallest budget reaching the success target, per configuration:", ""]
    lines += [f"- {f}" for f in _findings(main, extra, inputs.target)]
    if learner_text(main):
        lines += ["", f"*{learner_text(main)}*"]
    lines += ["", _success_definition(_temperature(main)), ""]
    return SectionOutput(lines=lines, files=[*files, *(f.path for f in shown)], figures=shown)


def _caption(rows: pd.DataFrame, line_by: str) -> str:
    """What to look at in a sample-efficiency figure, read off its rows."""
    seeds = values_text(rows["seeds"])
    several_starts = rows["start"].nunique() > 1
    lines = rows.groupby([line_by, "start"]).ngroups
    text = ("Success rate (top row) and EPIC distance to the true reward (bottom row, lower is better) against "
            "preference pairs, on a log axis of each column's own budgets; one column per instance size, "
            f"one line per {line_by}" + (" and start mode (dashed: corner start)" if several_starts else "")
            + f". {CONFIDENCE:.0%} CIs over the {seeds} seeds: bars for the success rate (Wilson), bands for EPIC "
            f"(percentile bootstrap). Points are spread up to {figures.max_dodge(lines):.0%} sideways so that lines "
            "at the same value stay visible.")
    usual = int(rows["seeds"].mode().iloc[0])
    if (rows["seeds"] != usual).any():
        text += f" A point labelled n = k is over k seeds, not {usual}."
    low = []
    for (_size, value, start), line in rows.groupby(["size", line_by, "start"], sort=True):
        if line["success_mean"].max() < 0.5:
            low.append(f"{instance_label(line.iloc[0].to_dict()).replace('=', ' = ')}, {line_by} {value}"
                       + (f", {start} start" if several_starts else ""))
    if low:
        text += " Below 50% success at every budget: " + "; ".join(low) + "."
    return text


def main_rows(summary: pd.DataFrame, task: str, extra: tuple[str, ...]) -> pd.DataFrame:
    """A task's main family of configurations: the teacher and the values of the other
    varying fields that most of its configurations share (the default sweep's)."""
    rows = summary[summary["task"] == task]
    for column in ("teacher", *extra):
        rows = rows[rows[column] == rows[column].value_counts().index[0]]
    return rows


def _tables(summary: pd.DataFrame, extra: tuple[str, ...], to: Path) -> list[Path]:
    """``convergence.csv`` (the shown configuration columns, then the statistics) and ``.md``."""
    hidden = [c for c in group_columns() if c not in SHOWN_COLUMNS and c not in extra]
    table = summary.drop(columns=hidden)
    csv = to / "convergence.csv"
    table.to_csv(csv, index=False, float_format="%.6g")
    md = to / "convergence.md"
    md.write_text("# Convergence by configuration\n\n"
                  f"Mean over the row's seeds with a {CONFIDENCE:.0%} CI; IQM in convergence.csv. *success* and "
                  "*near-opt.* are rates of per-seed outcomes: their CI is the Wilson score interval (honest at a "
                  "few seeds: 3 successes of 3 give [0.44, 1.00], not [1.00, 1.00]). The other columns' CIs are "
                  f"percentile bootstraps over seeds; † marks one over fewer than {MIN_RELIABLE_SEEDS} seeds, too "
                  "few for the bootstrap to show the spread (read it as a range of the values seen, not a CI). "
                  "`success` is the task's `converged` rule (see README); a failed cell counts as not converged.\n\n"
                  + _markdown(summary, extra) + "\n"
                  + (f"\n*{learner_text(summary)}* (the `learner_model` and `fit` columns, where shown, say which row "
                     "uses which)\n" if learner_text(summary) else ""))
    return [csv, md]


def _markdown(summary: pd.DataFrame, extra: tuple[str, ...]) -> str:
    def ci(row, name, fmt):
        if f"{name}_mean" not in row or pd.isna(row[f"{name}_mean"]):
            return ""
        unreliable = name not in BINARY_SERIES and row["seeds"] - row["failed"] < MIN_RELIABLE_SEEDS
        return (f"{row[f'{name}_mean']:{fmt}} [{row[f'{name}_ci_low']:{fmt}}, {row[f'{name}_ci_high']:{fmt}}]"
                + ("†" if unreliable else ""))
    rows = []
    for _, r in summary.iterrows():
        rows.append({"task": r["task"], "N / L": r["size"], "slip": r["slip"], "start": r["start"],
                     "teacher": r["teacher"], **{name: r[name] for name in extra},
                     "budget": r["budget"], "seeds": r["seeds"], "failed": r["failed"],
                     "success": ci(r, "success", ".2f"), "near-opt.": ci(r, "near_optimal", ".2f"),
                     "TV": ci(r, "tv", ".3f"),
                     "regret": ci(r, "regret", ".3f"), "EPIC": ci(r, "epic", ".3f"),
                     "pref. acc.": ci(r, "pref_accuracy", ".3f")})
    return pd.DataFrame(rows).to_markdown(index=False)


def _findings(summary: pd.DataFrame, extra: tuple[str, ...], target: float) -> list[str]:
    """Plain-words findings computed from the table (nothing here is hand-written per run)."""
    lines = []
    keys = [c for c in group_columns() if c != "budget"]
    per_task = {str(task): varying_fields(rows[group_columns()].to_dict("records")) & set(extra)
                for task, rows in summary.groupby("task")}
    for key, rows in summary.groupby(keys, sort=True, dropna=False):
        rows = rows.sort_values("budget")
        fields = dict(zip(keys, key, strict=True))
        name = (f"{fields['task']} {instance_label(fields).replace('=', ' = ')}, "
                f"slip {fields['slip']:g}" + (f", {fields['start']} start" if fields["start"] else "")
                + f", teacher {fields['teacher']}"
                + "".join(f", {k} {fields[k]}" for k in sorted(per_task[str(fields["task"])])))
        reached = float(budget_reaching_target(rows["success_mean"].to_numpy(), rows["budget"].to_numpy(), target))
        usual = int(rows["seeds"].mode().iloc[0])
        others = rows[rows["seeds"] != usual]
        name += f" ({usual} seeds" + "".join(f"; {int(r['seeds'])} at {int(r['budget'])} pairs"
                                              for _, r in others.iterrows()) + ")"
        if np.isfinite(reached):
            line = f"{name}: ≥ {target:.0%} success from {int(reached)} pairs"
        else:
            # pandas-stubs: .loc[] does not accept the Hashable label that idxmax() is typed to return
            best = rows.loc[rows["success_mean"].idxmax()]  # type: ignore[call-overload]
            line = (f"{name}: never reaches {target:.0%} success "
                    f"(best {best['success_mean']:.0%} at {int(best['budget'])} pairs)")
        if "near_optimal_mean" in rows:
            last = rows.iloc[-1]
            line += (f"; near-optimal in {last['near_optimal_mean']:.0%} of {int(last['seeds'])} seeds at "
                     f"{int(last['budget'])} pairs ({CONFIDENCE:.0%} CI {last['near_optimal_ci_low']:.0%}–"
                     f"{last['near_optimal_ci_high']:.0%})")
        lines.append(line + ".")
    return lines


def _corner_finding(summary: pd.DataFrame, tied_rounds: float | None) -> str | None:
    # only the gridworld has start modes: its rows are the ones with a start
    large = summary[(summary["start"] != "") & (summary["size"] >= CORNER_MIN_SIZE)]
    corner, uniform = large[large["start"] == "corner"], large[large["start"] == "uniform"]
    if corner.empty:
        return None
    text = (f"**The corner-start failure.** With the seed's corner start, grids of N ≥ {CORNER_MIN_SIZE} reach "
            f"{corner['success_mean'].max():.0%} success at best across {len(corner)} configurations.")
    if tied_rounds is not None:
        horizons = " or ".join(str(h) for h in sorted({int(h) for h in corner["horizon"]}))
        text += (f" In {tied_rounds:.1%} of their training rounds the teacher's preference entropy was exactly "
                 "ln 2 — no sampled trajectory reached the goal within the horizon of "
                 f"{horizons}, so every segment had the "
                 "same true return, the labels were coin flips and the learned reward got no signal.")
    if not uniform.empty:
        text += (f" Starting uniformly over non-goal cells (the seed's own default when no start is given) "
                 f"escapes it: up to {uniform['success_mean'].max():.0%} success at the same sizes.")
    return text


def _tied_round_share(rows: list[dict]) -> float | None:
    """Share of training rounds, over corner-start gridworld cells with N ≥ ``CORNER_MIN_SIZE``,
    where the teacher saw only ties (entropy ln 2)."""
    entropies = [e for r in rows if r["config"]["start"] == "corner"
                 and r["config"]["size"] >= CORNER_MIN_SIZE for e in r["history"].get("entropy", [])]
    if not entropies:
        return None
    return sum(abs(e - math.log(2)) < 1e-6 for e in entropies) / len(entropies)


def _temperature(rows: pd.DataFrame) -> str:
    """The planning temperature of these configurations, for prose ("1"; "the configured" if none)."""
    return f"temperature {values_text(rows['temperature'])}" if len(rows) else "the configured temperature"


def _success_definition(temperature: str) -> str:
    """What "success" and "near-optimal" mean, with the thresholds the library uses."""
    near = rlhf.NEAR_OPTIMAL_SCALED_RETURN
    return ("Success means: gridworld — the learned reward's argmax is the goal and planning on it *softly at "
            f"{temperature}* loses at most {CONVERGED_MAX_REGRET:.0%} of the truth's advantage over a random "
            f"policy (normalised regret ≤ {CONVERGED_MAX_REGRET:g}); strings — the greedy string equals the target. "
            "A failed cell counts as not converged. "
            "Beside it, *near-optimal* is Knox et al.'s scale-free criterion: the greedy (hard-max) policy for "
            f"the learned reward has scaled return (J − J_uniform) / (V* − J_uniform) ≥ {near:g} under the true "
            "reward. Soft planning also needs the reward's *scale*, so a noisy teacher, whose labels bound the "
            "Bradley–Terry logits, can leave a reward that ranks behaviour well (near-optimal) yet plans nearly "
            f"at random at {temperature} (not a success). Full table with CIs: "
            "[convergence.md](convergence.md), numbers: [convergence.csv](convergence.csv).")
