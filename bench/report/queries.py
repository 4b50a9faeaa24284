"""The report's query-rule section (#13): which pairs should a teacher be asked?

A *method family* is a set of configurations that differ only in their query
rule (and budget), at least three rules: the queries sweep's. For each, the
section shows success, EPIC and regret against budget per rule (figures with
CI bands), each rule's *budget at which mean success reaches the target*
(:func:`budget_to_target`, with a bootstrap CI over seeds), and findings read off
those numbers, set against B-Pref's reported ordering. Configurations outside method families are the
rest of the report's business (:func:`without_methods`).

Rules are compared with the baseline (uniform) one by one, never "the best of several rules"
against it (picking the best after the fact flatters it): per setting, each rule's per-seed mean
success over the budgets against uniform's on the same seeds, with a paired bootstrap CI whose
level is Bonferroni-corrected over the rules compared (:func:`against_baseline`). Across
settings the rules are ranked the way rliable does (:mod:`bench.report.aggregate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..sweep.config import group_columns, instance_label
from . import aggregate, bootstrap, figures
from .bootstrap import CONFIDENCE
from .section import Figure, ReportInputs, SectionOutput
from .stats import bootstrap_rng, budget_reaching_target, budget_text, learner_note, success_values, values_text

MIN_RULES = 3
UNCERTAINTY_RULES = ("disagreement", "entropy", "info-gain")
"""B-Pref's "uncertainty-based" family (it has disagreement and entropy; info-gain is BALD)."""
BASELINE = "uniform"
"""The rule every other rule is compared with."""
_FAMILY = [c for c in group_columns() if c not in ("query", "budget")]
SEEDS_FIT = "round"
"""The seeds' fit (each round's new pairs); B-Pref's is ``"all"`` (every pair asked so far)."""


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
    seeds: int

    def shown(self, top: int, against: Comparison | None) -> dict[str, object]:
        versus = ("—" if against is None else        # no spread to resample: say so, not "[x, x]"
                  f"{against.difference:+.2f} (all {against.seeds} seeds alike)" if against.low == against.high else
                  f"{against.difference:+.2f} [{against.low:+.2f}, {against.high:+.2f}]")
        return {"rule": self.rule, "seeds": self.seeds, "pairs to target": budget_text(self.budget_to_target, top),
                "CI": f"[{budget_text(self.low, top)}, {budget_text(self.high, top)}]",
                "mean success": self.mean_success, f"vs {BASELINE}": versus,
                f"EPIC @ {top}": self.epic, f"regret @ {top}": self.regret, f"near-opt. @ {top}": self.near_optimal}


def _rule_row(rule: str, rows: pd.DataFrame, cells: pd.DataFrame, top: int, target: float) -> _RuleRow:
    rule_cells = _family_cells(cells, rows)
    reached, low, high = budget_to_target(rule_cells, target)
    last = rows[rows["budget"] == top].iloc[0]
    regret = float(last["regret_mean"]) if "regret_mean" in last else float("nan")
    near = float(last["near_optimal_mean"]) if "near_optimal_mean" in last else float("nan")
    return _RuleRow(rule, reached, low, high, float(rows["success_mean"].mean()), float(last["epic_mean"]), regret,
                    near, int(rows["seeds"].min()))


def seed_scores(cells: pd.DataFrame) -> pd.DataFrame:
    """Per seed (rows) and rule (columns) of one method family: the seed's mean success over the
    swept budgets (its area under the sample-efficiency curve; a failed cell is a failure). Only
    seeds every rule has at every budget: rules are compared on the same seeds."""
    scored = cells.assign(score=success_values(cells))
    table = scored.pivot_table(index="seed", columns=["query", "budget"], values="score", aggfunc="mean")
    table = table.dropna()
    return table.T.groupby(level="query").mean().T


@dataclass(frozen=True)
class Comparison:
    """One rule against the baseline in one setting."""

    rule: str
    difference: float
    """Mean over seeds of (the rule's − the baseline's) per-seed mean success."""
    low: float
    high: float
    confidence: float
    """The level of each interval (Bonferroni: 1 − (1 − CONFIDENCE) / rules compared)."""
    seeds: int

    @property
    def verdict(self) -> str:
        return "ahead" if self.low > 0 else "behind" if self.high < 0 else "not distinguishable"


def against_baseline(scores: pd.DataFrame, fields: dict, baseline: str = BASELINE) -> dict[str, Comparison]:
    """Each rule against ``baseline`` on the same seeds: the paired difference of per-seed mean
    success (:func:`seed_scores`) with a bootstrap CI over seeds (one resample of seeds serves
    every rule). The intervals are Bonferroni-corrected over the rules compared, so all of them
    hold together at ``CONFIDENCE``: no rule looks ahead because it was picked as the best of
    several."""
    if baseline not in scores or len(scores) == 0:
        return {}
    rules = [r for r in scores.columns if r != baseline]
    values = scores.to_numpy(dtype=float)                                          # [seeds, rules]
    base = list(scores.columns).index(baseline)
    level = 1 - (1 - CONFIDENCE) / max(len(rules), 1)
    draws = bootstrap.resample(values, bootstrap.mean, bootstrap_rng(fields | {"statistic": f"against {baseline}"}))
    low, high = bootstrap.percentile_interval(draws - draws[:, [base]], level)
    mean = values.mean(axis=0) - values[:, base].mean()
    return {str(r): Comparison(str(r), float(mean[j]), float(low[j]), float(high[j]), level, len(values))
            for j, r in enumerate(scores.columns) if r != baseline}


def _family_name(row: pd.Series, with_fit: bool = False) -> str:
    size = instance_label(row.to_dict()).replace("=", " = ")
    return (f"{row['task']}, {size}, slip {row['slip']:g}, teacher {row['teacher']}"
            + (f", fit {row['fit']}" if with_fit else ""))


def section(inputs: ReportInputs) -> SectionOutput:
    """Per method family: a table of rules and figures (written into the stage), then findings;
    nothing without a family."""
    methods = method_rows(inputs.summary)
    if methods.empty:
        return SectionOutput()
    cells, target, to = _with_fit(inputs.cells), inputs.target, inputs.stage
    fits = _fits(methods)
    several = len(fits) > 1
    shown_figures: list[Figure] = []
    for (task, teacher, slip, fit), rows in methods.assign(fit=_fit_column(methods)).groupby(
            ["task", "teacher", "slip", "fit"], sort=True):
        panels = [("success", "success rate"), ("epic", "EPIC distance")]
        if "regret_mean" in rows and rows["regret_mean"].notna().any():
            panels.append(("regret", "normalised regret"))
        suffix = "" if fit == SEEDS_FIT else f"_fit{fit}"
        name = f"queries_{task}_{str(teacher).replace(':', '').replace('+', '_')}_slip{slip:g}{suffix}.png"
        title = f"Query rules: {task}, teacher {teacher}, slip {slip:g}" + (f", fit {fit}" if several else "")
        path = figures.sample_efficiency(rows, str(task), panels, to / name, line_by="query", title=title)
        shown_figures.append(Figure(path, title, _caption(rows, panels)))
    lines = ["## Which pairs to ask: query rules", "",
             f"`bench/configs/queries.toml`: every rule with the same {values_text(methods['ensemble'])}-member bagged "
             "ensemble (planning on the members' mean reward), so rules differ only in the pairs they ask; active "
             f"rules choose from an on-policy pool of {values_text(methods['oversample'])}× the round's pairs "
             "(definitions: `rlhf/queries.py`). *Pairs to target*: the smallest swept budget whose success rate over "
             f"the seeds reaches {target:.0%}, with a {CONFIDENCE:.0%} bootstrap CI over seeds. *Mean success*: the "
             "success rate averaged over the swept budgets (the area under the sample-efficiency curve); rules are "
             f"ordered by it, then by EPIC at the largest budget. *vs {BASELINE}*: the rule's mean success minus "
             f"{BASELINE}'s on the same seeds, with a paired bootstrap CI over seeds at the level that keeps all of a "
             f"setting's comparisons at {CONFIDENCE:.0%} together (Bonferroni over the rules compared with "
             f"{BASELINE}). Figures: *Query rules* in [Figures](#figures).", ""]
    if several:
        per_fit = methods.assign(fit=_fit_column(methods)).drop_duplicates(_FAMILY)["fit"].astype(str).value_counts()
        counted = [f"fit {f} ({per_fit[f]} setting{'s' if per_fit[f] > 1 else ''})" for f in fits]
        which = (f"Each setting is run with {len(fits)} fits ({', '.join(fits)})" if per_fit.nunique() == 1 else
                 "The settings are run with " + " and ".join(counted))
        lines += [f"{which}: *round* fits each round's new pairs "
                  "only (the seeds' loop); *all* refits on every pair asked so far each round, as B-Pref (Lee et al., "
                  "2021) and imitation train on their buffer of every label. Each fit's settings are tables of their "
                  "own, and the findings are read per fit.", ""]
    found: dict[str, _FitFindings] = {}
    grouped = methods.assign(fit=_fit_column(methods)).groupby(_FAMILY, sort=True, dropna=False)
    families = [family for _, family in grouped]          # per setting, the seeds' fit first
    families.sort(key=lambda f: (_setting_order(f.iloc[0], grouped), f.iloc[0]["fit"] != SEEDS_FIT))
    for family in families:
        first = family.iloc[0]
        got = found.setdefault(str(first["fit"]), _FitFindings())
        top = int(family["budget"].max())
        table = [_rule_row(str(rule), rows, cells, top, target) for rule, rows in family.groupby("query", sort=True)]
        table.sort(key=lambda r: (-r.mean_success, r.epic))
        got.orderings.append(f"{_family_name(first, several)}: " + " > ".join(r.rule for r in table))
        per_rule = got.reached.setdefault(str(first["teacher"]), {})
        for r in table:
            per_rule.setdefault(r.rule, []).append(bool(np.isfinite(r.budget_to_target)))
        family_cells = _family_cells(cells, family)
        scores = seed_scores(family_cells)
        got.strata.append(scores)
        got.scores[_setting_key(first)] = scores
        compared = against_baseline(scores, {c: first[c] for c in _FAMILY if c in first})
        for rule, c in compared.items():
            counts = got.verdicts.setdefault(rule, {"ahead": 0, "behind": 0, "not distinguishable": 0})
            counts[c.verdict] += 1
            got.levels.add(c.confidence)
        shown = pd.DataFrame([r.shown(top, compared.get(r.rule)) for r in table]).dropna(axis="columns", how="all")
        lines += [f"### {_family_name(first, several)}", "", shown.to_markdown(index=False, floatfmt=".3f"), "",
                  *learner_note(family_cells)]
    for fit in fits:
        got = found[fit]
        heading = (f"Findings, fit {fit}" + (" (each round's new pairs: the seeds' loop)" if fit == SEEDS_FIT else
                                             " (every pair asked so far: B-Pref's setting)" if fit == "all" else "")
                   if several else "Findings")
        lines += _findings(got.verdicts, got.levels, got.orderings, got.reached, target, heading,
                           fit if several else None)
        lines += _across_settings(got.strata, fit if several else None)
    if several:
        lines += _fit_comparison(found, fits)
    return SectionOutput(lines=lines, files=[f.path for f in shown_figures], figures=shown_figures)


@dataclass
class _FitFindings:
    """What the findings of one fit are read from."""

    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)      # rule -> verdict -> settings
    levels: set[float] = field(default_factory=set)
    orderings: list[str] = field(default_factory=list)
    reached: dict[str, dict[str, list[bool]]] = field(default_factory=dict)   # teacher -> rule -> per setting
    strata: list[pd.DataFrame] = field(default_factory=list)
    scores: dict[tuple, pd.DataFrame] = field(default_factory=dict)     # setting without the fit -> seed scores


def _fit_column(rows: pd.DataFrame) -> pd.Series:
    """The rows' fit (the seeds' where the runs do not record one)."""
    if "fit" not in rows:
        return pd.Series(SEEDS_FIT, index=rows.index)
    return rows["fit"].fillna(SEEDS_FIT).replace("", SEEDS_FIT)


def _fits(rows: pd.DataFrame) -> list[str]:
    """The fits the rows use, the seeds' first."""
    return sorted({str(f) for f in _fit_column(rows)}, key=lambda f: (f != SEEDS_FIT, f))


def _setting_order(row: pd.Series, grouped) -> int:
    """The position of a family's setting (without its fit) among the sorted settings."""
    keys = list(dict.fromkeys(_setting_key(f.iloc[0]) for _, f in grouped))
    return keys.index(_setting_key(row))


def _setting_key(row: pd.Series) -> tuple:
    """A family's setting without its fit (where the two fits' families are paired)."""
    return tuple(str(row[c]) for c in _FAMILY if c != "fit")


def _with_fit(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with each one's fit (:func:`_fit_column`): what :func:`_family_cells` selects from."""
    return cells.assign(fit=_fit_column(cells))


def _family_cells(cells: pd.DataFrame, family: pd.DataFrame) -> pd.DataFrame:
    """The cells (:func:`_with_fit`, made once a section) of a family's configurations."""
    keys = [*_FAMILY, "query", "budget"]
    return cells.merge(family[keys], on=keys)


def _caption(rows: pd.DataFrame, panels: list[tuple[str, str]]) -> str:
    """What to look at in one query-rule figure, read off its rows."""
    seeds = values_text(rows["seeds"])
    rules = rows.groupby("query")["success_mean"].mean().sort_values(ascending=False)
    what = ", ".join(label for _, label in panels)
    text = (f"{what[:1].upper()}{what[1:]} (rows) against preference pairs (log axis, each column its own) for each "
            f"query rule (colour and hollow marker), one column per instance size. {CONFIDENCE:.0%} CIs over the "
            f"{seeds} seeds: bars for the success rate (Wilson), bands otherwise (percentile bootstrap). Points are "
            f"spread up to {figures.max_dodge(len(rules)):.0%} sideways so that rules at the same value stay visible. "
            f"Mean success over every panel's budgets: " + ", ".join(f"{r} {v:.2f}" for r, v in rules.items()) + ".")
    if BASELINE in rules and rules.index[0] != BASELINE:
        text += (f" Look at how far the {BASELINE} line (the baseline) lags {rules.index[0]} in the top row, and "
                 "whether the gap closes at the largest budget.")
    return text


def _across_settings(strata: list[pd.DataFrame], fit: str | None = None) -> list[str]:
    """The rules ranked across every setting (of one fit, where the runs have several) the way
    rliable does (:mod:`bench.report.aggregate`): a seed's mean success over the budgets is a run, a
    setting a task."""
    if len(strata) < 2:
        return []
    rules = sorted(set.intersection(*(set(s.columns) for s in strata)))
    if BASELINE not in rules or len(rules) < 2:
        return []
    data = [s[rules].to_numpy(dtype=float) for s in strata]
    fields: dict[str, object] = {"section": "query rules", "rules": rules}
    if fit is not None and fit != SEEDS_FIT:
        fields["fit"] = fit               # the seeds' fit keeps the generator it had before fits were swept
    results = aggregate.aggregate(data, rules, BASELINE, fields)
    results.sort(key=lambda a: (-a.iqm, -a.improvement, a.method))
    return [f"### Across settings{'' if fit is None else f', fit {fit}'}", "",
            f"The rules ranked over all {len(strata)} settings{'' if fit is None else f' of fit {fit}'} the way "
            "rliable does (Agarwal et al., 2021): a seed's "
            "mean success over the swept budgets is a run, a setting a task. *IQM*: the interquartile mean of the "
            "runs pooled over settings (the middle 50%: robust to a few settings where every rule succeeds or "
            f"fails); *P(better than {BASELINE})*: the chance that a seed of the rule scores above a seed of "
            f"{BASELINE} in the same setting (ties ½), averaged over settings; {CONFIDENCE:.0%} CIs by a bootstrap "
            "over seeds stratified by setting.", "",
            pd.DataFrame(aggregate.table_rows(results, BASELINE, "mean success")).rename(columns={"": "rule"})
            .to_markdown(index=False), ""]


def _findings(verdicts: dict[str, dict[str, int]], levels: set[float], orderings: list[str],
              reached: dict[str, dict[str, list[bool]]], target: float, heading: str = "Findings",
              fit: str | None = None) -> list[str]:
    lines = [f"### {heading}", ""]
    uncertain = [r for r in UNCERTAINTY_RULES if r in verdicts]
    if uncertain:
        total = sum(verdicts[uncertain[0]].values())
        level = " or ".join(f"{x:.1%}" for x in sorted(levels))
        ahead = [r for r in uncertain if verdicts[r]["ahead"] > total / 2]
        b_pref = [r for r in ("disagreement", "entropy") if r in uncertain]
        said = "; ".join(f"{r} ahead in {verdicts[r]['ahead']} of {total} settings, behind in "
                         f"{verdicts[r]['behind']}, not distinguishable in {verdicts[r]['not distinguishable']}"
                         for r in uncertain)
        verdict = ("this suite agrees with B-Pref's ordering for " + " and ".join(ahead) if ahead else
                   "this suite does not reproduce B-Pref's ordering for any of them")
        if ahead and set(b_pref) - set(ahead):
            verdict += ", not for " + " and ".join(sorted(set(b_pref) - set(ahead)))
        setting = ("" if fit is None else
                   f" With fit {fit} (every pair asked so far, as B-Pref trains its reward model)" if fit == "all" else
                   f" With fit {fit} (each round's new pairs only, unlike B-Pref, which trains on every pair so far)"
                   if fit == SEEDS_FIT else f" With fit {fit}")
        lines.append(f"- B-Pref (Lee et al., 2021) reports that uncertainty-based sampling (disagreement, entropy) "
                     f"beats uniform sampling on most of its tasks.{setting}: here each uncertainty rule is "
                     f"compared with {BASELINE} on its own, by the difference in mean success on the same seeds "
                     f"({level} paired "
                     f"CIs: {CONFIDENCE:.0%} for all of a setting's comparisons together, Bonferroni; no rule is "
                     f"picked as the best of several first): {said}. Counting a rule as ahead where it is ahead in "
                     f"more than half the settings, {verdict}" + (f" with fit {fit}." if fit is not None else "."))
    for teacher, rules in sorted(reached.items()):
        counts = sorted(((sum(v), len(v), rule) for rule, v in rules.items()), key=lambda c: (-c[0], c[2]))
        lines.append(f"- Teacher {teacher}: settings in which each rule reaches {target:.0%} within the sweep: "
                     + ", ".join(f"{rule} {k} of {n}" for k, n, rule in counts) + ".")
    lines += ["- Ordering of rules by mean success (best first; the CIs above say which gaps are distinguishable):",
              ""]
    lines += [f"  - {o}" for o in orderings]
    return [*lines, ""]


def _fit_comparison(found: dict[str, _FitFindings], fits: list[str]) -> list[str]:
    """Each rule with every other fit against the seeds' fit, setting by setting on the same seeds:
    the difference in per-seed mean success, with a paired bootstrap CI over seeds
    Bonferroni-corrected over the rules (all of a setting's rules hold together at ``CONFIDENCE``)."""
    if SEEDS_FIT not in found:
        return []
    lines = []
    for fit in (f for f in fits if f != SEEDS_FIT):
        counts: dict[str, dict[str, int]] = {}
        differences: dict[str, list[float]] = {}
        levels: set[float] = set()
        for key, other in found[fit].scores.items():
            base = found[SEEDS_FIT].scores.get(key)
            if base is None:
                continue
            rules = sorted(set(other.columns) & set(base.columns))
            seeds = other.index.intersection(base.index)
            if not rules or len(seeds) == 0:
                continue
            values = other.loc[seeds, rules].to_numpy(dtype=float) - base.loc[seeds, rules].to_numpy(dtype=float)
            level = 1 - (1 - CONFIDENCE) / len(rules)
            levels.add(level)
            fields = dict(zip([c for c in _FAMILY if c != "fit"], key, strict=True))
            rng = bootstrap_rng(fields | {"statistic": f"{fit} − {SEEDS_FIT}"})
            draws = bootstrap.resample(values, bootstrap.mean, rng)
            low, high = bootstrap.percentile_interval(draws, level)
            for j, rule in enumerate(rules):
                verdict = "ahead" if low[j] > 0 else "behind" if high[j] < 0 else "not distinguishable"
                counts.setdefault(rule, {"ahead": 0, "behind": 0, "not distinguishable": 0})[verdict] += 1
                differences.setdefault(rule, []).append(float(values[:, j].mean()))
        if not counts:
            continue
        level_text = " or ".join(f"{x:.1%}" for x in sorted(levels))
        said = "; ".join(f"{rule} {sum(c.values())} settings: ahead in {c['ahead']}, behind in {c['behind']}, not "
                         f"distinguishable in {c['not distinguishable']} (mean difference "
                         f"{np.mean(differences[rule]):+.3f})" for rule, c in sorted(counts.items()))
        lines += [f"### Fit {fit} against fit {SEEDS_FIT}", "",
                  f"- Each rule's mean success with fit {fit} minus with fit {SEEDS_FIT}, on the same seeds in each "
                  f"setting ({level_text} paired bootstrap CIs over seeds: {CONFIDENCE:.0%} for all of a setting's "
                  f"rules together, Bonferroni): {said}.", ""]
    return lines
