"""The report's query-rule section (#13): which pairs should a teacher be asked?

A *method family* is a set of configurations that differ only in their query
rule (and budget), at least three rules: the queries sweep's. For each, the
section shows success, EPIC and regret against budget per rule (figures with
CI bands), each rule's *budget at which mean success reaches the target*
(:func:`budget_to_target`, with a bootstrap CI over seeds), and findings read off
those numbers, set against B-Pref's reported ordering. Configurations outside method families are the
rest of the report's business (:func:`without_methods`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..sweep.config import group_columns, instance_label
from . import bootstrap, figures
from .bootstrap import CONFIDENCE
from .section import ReportInputs, SectionOutput
from .stats import bootstrap_rng, budget_reaching_target, budget_text, success_values, values_text

MIN_RULES = 3
UNCERTAINTY_RULES = ("disagreement", "entropy", "info-gain")
"""B-Pref's "uncertainty-based" family (it has disagreement and entropy; info-gain is BALD)."""
_FAMILY = [c for c in group_columns() if c not in ("query", "budget")]


def _in_families(summary: pd.DataFrame) -> pd.Series:
    """Per configuration: whether it belongs to a method family."""
    rules = summary.groupby(_FAMILY, dropna=False)["query"].transform("nunique")
    return rules >= MIN_RULES


def method_rows(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[_in_families(summary)]


def without_methods(summary: pd.DataFrame) -> pd.DataFrame:
    """The configurations the rest of the report is about."""
    return summary[~_in_families(summary)]


def budget_to_target(cells: pd.DataFrame, target: float) -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)``: the budget at which mean success reaches the target — the
    smallest swept budget whose success rate over the seeds reaches ``target`` — and its
    percentile-bootstrap CI over seeds (``inf``: not within the sweep). A statistic of the seeds'
    mean, not of a typical seed. ``cells``: one configuration family and rule, every budget and seed."""
    budgets = np.asarray(sorted(cells["budget"].unique()))
    seeds = sorted(cells["seed"].unique())
    table = np.zeros((len(seeds), len(budgets)))         # converged (0/1) per seed and budget
    for j, b in enumerate(budgets):
        rows = cells[cells["budget"] == b].set_index("seed").loc[seeds].reset_index()
        table[:, j] = success_values(rows)

    def statistic(resampled: np.ndarray) -> np.ndarray:      # [R, seeds, budgets] -> [R]
        return budget_reaching_target(bootstrap.mean(resampled), budgets, target)

    fields = {c: cells[c].iloc[0] for c in [*_FAMILY, "query"]}
    low, high = bootstrap.interval(table, statistic, bootstrap_rng(fields), discrete=True)
    return float(budget_reaching_target(table.mean(axis=0), budgets, target)), low, high


@dataclass(frozen=True)
class _RuleRow:
    """One rule's line in a method family's table."""

    rule: str
    budget_to_target: float
    """The budget at which mean success reaches the target (:func:`budget_to_target`)."""
    low: float
    high: float
    mean_success: float
    epic: float
    regret: float
    near_optimal: float

    def shown(self, top: int) -> dict[str, object]:
        return {"rule": self.rule, "pairs to target": budget_text(self.budget_to_target, top),
                "CI": f"[{budget_text(self.low, top)}, {budget_text(self.high, top)}]",
                "mean success": self.mean_success,
                f"EPIC @ {top}": self.epic, f"regret @ {top}": self.regret, f"near-opt. @ {top}": self.near_optimal}


def _rule_row(rule: str, rows: pd.DataFrame, cells: pd.DataFrame, top: int, target: float) -> _RuleRow:
    rule_cells = cells.merge(rows[[*_FAMILY, "query", "budget"]], on=[*_FAMILY, "query", "budget"])
    reached, low, high = budget_to_target(rule_cells, target)
    last = rows[rows["budget"] == top].iloc[0]
    regret = float(last["regret_mean"]) if "regret_mean" in last else float("nan")
    near = float(last["near_optimal_mean"]) if "near_optimal_mean" in last else float("nan")
    return _RuleRow(rule, reached, low, high, float(rows["success_mean"].mean()), float(last["epic_mean"]), regret,
                    near)


def _family_name(row: pd.Series) -> str:
    size = instance_label(row.to_dict()).replace("=", " = ")
    return f"{row['task']}, {size}, slip {row['slip']:g}, teacher {row['teacher']}"


def section(inputs: ReportInputs) -> SectionOutput:
    """Per method family: a table of rules and figures (written into the stage), then findings;
    nothing without a family."""
    methods = method_rows(inputs.summary)
    if methods.empty:
        return SectionOutput()
    cells, target, to = inputs.cells, inputs.target, inputs.stage
    written: list[Path] = []
    for (task, teacher, slip), rows in methods.groupby(["task", "teacher", "slip"], sort=True):
        panels = [("success", "success rate"), ("epic", "EPIC distance")]
        if "regret_mean" in rows and rows["regret_mean"].notna().any():
            panels.append(("regret", "normalised regret"))
        name = f"queries_{task}_{str(teacher).replace(':', '').replace('+', '_')}_slip{slip:g}.png"
        written.append(figures.sample_efficiency(rows, str(task), panels, to / name, line_by="query"))
    lines = ["## Which pairs to ask: query rules", "",
             f"`bench/configs/queries.toml`: every rule with the same {values_text(methods['ensemble'])}-member bagged "
             "ensemble (planning on the members' mean reward), so rules differ only in the pairs they ask; active "
             f"rules choose from an on-policy pool of {values_text(methods['oversample'])}× the round's pairs "
             "(definitions: `rlhf/queries.py`). *Pairs to "
             f"{target:.0%}*: the smallest swept budget whose success rate over the seeds reaches "
             f"{target:.0%}, with a {CONFIDENCE:.0%} bootstrap CI over seeds. *Mean success*: the success rate "
             "averaged over the swept budgets (the area under the sample-efficiency curve); rules are ordered by it, "
             "then by EPIC at the largest budget.", ""]
    verdicts = {"fewer": 0, "as many": 0, "more": 0, "neither": 0}
    orderings: list[str] = []
    reached: dict[str, dict[str, list[bool]]] = {}       # teacher -> rule -> per setting
    for _, family in methods.groupby(_FAMILY, sort=True, dropna=False):
        first = family.iloc[0]
        top = int(family["budget"].max())
        table = [_rule_row(str(rule), rows, cells, top, target) for rule, rows in family.groupby("query", sort=True)]
        table.sort(key=lambda r: (-r.mean_success, r.epic))
        orderings.append(f"{_family_name(first)}: " + " > ".join(r.rule for r in table))
        to_target = {r.rule: r.budget_to_target for r in table}
        per_rule = reached.setdefault(str(first["teacher"]), {})
        for r in table:
            per_rule.setdefault(r.rule, []).append(bool(np.isfinite(r.budget_to_target)))
        if "uniform" in to_target and any(r in to_target for r in UNCERTAINTY_RULES):
            best = min(to_target[r] for r in UNCERTAINTY_RULES if r in to_target)
            base = to_target["uniform"]
            verdicts["neither" if np.isinf(best) and np.isinf(base) else "fewer" if best < base
                     else "as many" if best == base else "more"] += 1
        shown = pd.DataFrame([r.shown(top) for r in table]).dropna(axis="columns", how="all")
        lines += [f"### {_family_name(first)}", "", shown.to_markdown(index=False, floatfmt=".3f"), ""]
    lines += _findings(verdicts, orderings, reached, target)
    lines += [f"![{p.stem}]({p.name})\n" for p in written]
    return SectionOutput(lines=lines, files=written)


def _findings(verdicts: dict[str, int], orderings: list[str], reached: dict[str, dict[str, list[bool]]],
              target: float) -> list[str]:
    total = sum(verdicts.values())
    lines = ["### Findings", ""]
    if total:
        agrees = verdicts["fewer"] > total / 2
        lines.append(f"- B-Pref (Lee et al., 2021) reports that uncertainty-based sampling (disagreement, entropy) "
                     f"beats uniform sampling on most of its tasks. Here the best uncertainty rule (disagreement, "
                     f"entropy or info-gain) needs fewer pairs than uniform to reach {target:.0%} success in "
                     f"{verdicts['fewer']} of {total} settings, the same budget in {verdicts['as many']}, more in "
                     f"{verdicts['more']}, and neither reaches it within the sweep in {verdicts['neither']}: "
                     + ("this suite agrees with B-Pref's ordering." if agrees
                        else "this suite does not reproduce B-Pref's ordering."))
    for teacher, rules in sorted(reached.items()):
        counts = sorted(((sum(v), len(v), rule) for rule, v in rules.items()), key=lambda c: (-c[0], c[2]))
        lines.append(f"- Teacher {teacher}: settings in which each rule reaches {target:.0%} within the sweep: "
                     + ", ".join(f"{rule} {k} of {n}" for k, n, rule in counts) + ".")
    lines += ["- Ordering of rules by mean success (best first):", ""]
    lines += [f"  - {o}" for o in orderings]
    return [*lines, ""]
