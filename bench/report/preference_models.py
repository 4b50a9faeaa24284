"""The report's preference-model section (#14): partial return vs regret (Knox et al.).

It reads the random worlds' cells (tasks tagged ``random-worlds``). Each world's near-optimal rate is the mean over its
seeds (a failed cell counts as not near-optimal); per teacher noise, teacher model, learner
model and budget, the *share of worlds near-optimal* is the mean of those rates, with a
percentile-bootstrap CI over worlds. The finding is read from the paired difference between the
two learners on the same worlds (one bootstrap resample of worlds serves both), so the
worlds' spread in difficulty does not hide it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

import rlhf

from . import aggregate, bootstrap, figures
from .bootstrap import CONFIDENCE
from .section import Figure, ReportInputs, SectionOutput
from .stats import bootstrap_rng, values_text

_SETTING = ["noise", "teacher_model", "budget"]


def without_worlds(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the rest of the report is about (random worlds are this section's)."""
    return frame[~frame["task"].isin(_world_tasks())]


def world_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (noise, teacher model, learner model, budget, world): ``near`` (the world's
    near-optimal rate over its seeds) and ``scaled`` (its mean scaled return over finished seeds)."""
    rows = cells[cells["task"].isin(_world_tasks())].copy()
    teachers = {spec: rlhf.Teacher.parse(spec) for spec in rows["teacher"].unique()}
    default = rlhf.Teacher().preference_model        # the noise alone: the spec with the default preference model
    rows["noise"] = rows["teacher"].map(lambda s: str(dataclasses.replace(teachers[s], preference_model=default)))
    rows["teacher_model"] = rows["teacher"].map(lambda s: teachers[s].preference_model.name)
    done = rows["status"] == "done"
    rows["near"] = np.where(done, rows["near_optimal"].fillna(0.0), 0.0)
    rows["scaled"] = rows["scaled_return"].where(done)
    keys = [*_SETTING, "learner_model", "world"]
    return rows.groupby(keys, sort=True).agg(near=("near", "mean"), scaled=("scaled", "mean"),
                                             seeds=("seed", "nunique")).reset_index()


def shares(rates: pd.DataFrame) -> pd.DataFrame:
    """Per setting and learner: ``worlds``, ``share`` near-optimal with its CI, the mean scaled
    return; and per setting the paired difference regret − partial learner (``difference``
    with its CI, on both of the setting's rows)."""
    out = []
    for setting, rows in rates.groupby(_SETTING, sort=True):
        table = rows.pivot(index="world", columns="learner_model", values="near")
        learners = list(table.columns)
        values = table.to_numpy(dtype=float)                                  # [worlds, learners]
        fields = dict(zip(_SETTING, setting, strict=True))
        draws = bootstrap.resample(values, bootstrap.mean, bootstrap_rng(fields))   # [R, learners]: paired
        low, high = bootstrap.percentile_interval(draws)
        paired = {}
        if set(learners) == set(rlhf.PREFERENCE_MODELS):
            r, p = learners.index("regret"), learners.index("partial")
            diff_low, diff_high = bootstrap.percentile_interval(draws[:, r] - draws[:, p])
            paired = {"difference": float(values[:, r].mean() - values[:, p].mean()),
                      "difference_ci_low": float(diff_low), "difference_ci_high": float(diff_high)}
        scaled = rows.groupby("learner_model")["scaled"].mean()
        for j, learner in enumerate(learners):
            out.append({**fields, "learner_model": learner, "worlds": len(values), "share": float(values[:, j].mean()),
                        "ci_low": float(low[j]), "ci_high": float(high[j]), "scaled_return": float(scaled[learner]),
                        **paired})
    return pd.DataFrame(out)


def section(inputs: ReportInputs) -> SectionOutput:
    """The section's Markdown lines and its files (a CSV and a figure, written into the stage);
    nothing without random-world cells."""
    cells, to = inputs.cells, inputs.stage
    if not cells["task"].isin(_world_tasks()).any():
        return SectionOutput()
    rates = world_rates(cells)
    segments = values_text(cells.loc[cells["task"].isin(_world_tasks()), "segment_length"])
    table = shares(rates)
    csv = to / "preference_models.csv"
    table.to_csv(csv, index=False, float_format="%.6g")
    figure = figures.preference_models(table, to / "preference_models.png")
    worlds = int(table["worlds"].max())
    seeds = int(rates["seeds"].max())
    lines = ["## Which model of human preference: partial return vs regret", "",
             f"`bench/configs/preference_models.toml`: {worlds} random feature gridworlds (`rlhf.RandomGridWorld`, "
             "Knox et al.'s generator), each taught by a *partial-return* teacher (a segment's summed reward) or a "
             "*regret* teacher (its summed optimal advantage A*), noiseless or Boltzmann-rational, with pairs of "
             f"{segments}-step segments from random behaviour. The *partial* learner fits a reward and plans on it; "
             "the *regret* learner fits optimal advantages Â and acts greedily on them (Knox et al., 2024). Both fit "
             "the same Bradley–Terry model to the same pairs, so with these pairs they learn the *same table* and "
             "differ only in how they act on it: planning on Â as if it were a reward is what Knox et al. (2024) "
             "call mistaking advantage for reward. *Share near-optimal*: the share of worlds whose greedy policy "
             f"has scaled return ≥ {rlhf.NEAR_OPTIMAL_SCALED_RETURN} (each world's rate over its {seeds} seeds), "
             f"with a {CONFIDENCE:.0%} bootstrap CI over worlds. Numbers: "
             "[preference_models.csv](preference_models.csv); figure: *partial return vs regret* in "
             "[Figures](#figures).", ""]
    lines += [_markdown(table), "", *_findings(table), *_across_noises(rates)]
    caption = (f"Share of the {worlds} random worlds whose learned table's greedy policy is near-optimal (each world's "
               f"rate over its {seeds} seeds), against preference pairs on a log axis; one panel per teacher noise; "
               "colour: the teacher's preference model, line style: the learner's (dashed partial, solid regret); "
               f"bands: {CONFIDENCE:.0%} bootstrap CIs over worlds. Look at the solid blue line (a partial-return "
               "teacher, a learner acting greedily on Â): it stays near 0 at every budget, while the other three "
               "rise together." if _partial_regret_lags(table) else
               f"Share of the {worlds} random worlds whose learned table's greedy policy is near-optimal (each world's "
               f"rate over its {seeds} seeds), against preference pairs on a log axis; one panel per teacher noise; "
               "colour: the teacher's preference model, line style: the learner's (dashed partial, solid regret); "
               f"bands: {CONFIDENCE:.0%} bootstrap CIs over worlds.")
    return SectionOutput(lines=lines, files=[csv, figure],
                         figures=[Figure(figure, "Partial return vs regret: share of worlds near-optimal", caption)])


def _partial_regret_lags(table: pd.DataFrame) -> bool:
    """Whether, with a partial-return teacher, the regret learner's share is below the partial
    learner's (paired CI) at every budget and every noise: what the figure's caption points at."""
    rows = table[table["teacher_model"] == "partial"]
    return "difference" in rows and len(rows) > 0 and bool((rows["difference_ci_high"] < 0).all())


def _markdown(table: pd.DataFrame) -> str:
    rows = []
    for (noise, teacher, learner), line in table.groupby(["noise", "teacher_model", "learner_model"], sort=True):
        row = {"teacher": f"{teacher}, {noise}", "learner": learner, "worlds": values_text(line["worlds"])}
        for _, r in line.sort_values("budget").iterrows():
            row[str(r["budget"])] = f"{r['share']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False)


def _verdicts(rows: pd.DataFrame) -> dict[str, list[int]]:
    """Budgets at which the regret learner's share is above, below, or not told apart from the
    partial learner's (the paired CI of the difference excludes 0, or not)."""
    out: dict[str, list[int]] = {"above": [], "below": [], "not distinguishable": []}
    for _, r in rows.drop_duplicates("budget").sort_values("budget").iterrows():
        kind = ("above" if r["difference_ci_low"] > 0 else "below" if r["difference_ci_high"] < 0
                else "not distinguishable")
        out[kind].append(int(r["budget"]))
    return out


def _findings(table: pd.DataFrame) -> list[str]:
    if "difference" not in table:
        return []
    lines = ["### Findings", ""]
    regret_wins = []
    for (noise, teacher), rows in table.groupby(["noise", "teacher_model"], sort=True):
        verdict = _verdicts(rows)
        top = rows[rows["budget"] == rows["budget"].max()].set_index("learner_model")
        said = "; ".join(f"{kind} at {', '.join(map(str, budgets))}" for kind, budgets in verdict.items() if budgets)
        lines.append(f"- {str(teacher).capitalize()} teacher, {noise}: the regret learner's share near-optimal, "
                     f"against the partial learner's (paired {CONFIDENCE:.0%} CI over worlds), is {said} pairs. "
                     f"At {int(top['budget'].iloc[0])} pairs: regret learner {top.loc['regret', 'share']:.2f}, "
                     f"partial learner {top.loc['partial', 'share']:.2f}.")
        if teacher == "regret":
            regret_wins.append(len(verdict["above"]) > len(verdict["below"]) + len(verdict["not distinguishable"]))
    if regret_wins:
        agrees = all(regret_wins)
        lines.append("- Knox et al. (2022) find that preferences generated by regret are learned better by the "
                     "regret model than by the partial-return model. "
                     + ("This suite agrees: with a regret teacher the regret learner is ahead at most budgets, "
                        "for every teacher noise." if agrees else
                        "This suite does not reproduce that as a clear advantage: with a regret teacher the regret "
                        "learner is not ahead at most budgets for every teacher noise (above). Their regret "
                        "learner learns a reward through the regret model; here the partial learner, given the same "
                        "regret labels, learns Â itself and plans on it, which Knox et al. (2024) show often works."))
    return [*lines, ""]


def _across_noises(rates: pd.DataFrame) -> list[str]:
    """Per teacher model, the learners ranked across teacher noises at the largest budget the way
    rliable does (:mod:`bench.report.aggregate`): each world's near-optimal rate is a run, each noise
    a task; IQM and the probability that a learner does better than the partial-return learner."""
    top = rates[rates["budget"] == rates["budget"].max()]
    learners = sorted(top["learner_model"].unique())
    if len(learners) < 2 or top["noise"].nunique() < 2:
        return []
    baseline = "partial" if "partial" in learners else learners[0]
    learners = [baseline, *(m for m in learners if m != baseline)]
    rows = []
    for teacher, at in top.groupby("teacher_model", sort=True):
        strata = [g.pivot(index="world", columns="learner_model", values="near")[learners].dropna().to_numpy()
                  for _, g in at.groupby("noise", sort=True)]
        fields = {"section": "preference models", "teacher_model": teacher, "budget": int(at["budget"].iloc[0])}
        for row in aggregate.table_rows(aggregate.aggregate(strata, learners, baseline, fields), baseline, "share"):
            rows.append({"teacher": str(teacher), "learner": row.pop(""), **row})
    budget = int(top["budget"].iloc[0])
    noises = ", ".join(sorted(top["noise"].unique()))
    return [f"Across teacher noises ({noises}) at {budget} pairs, ranked the way rliable does (Agarwal et al., "
            "2021): each world's near-optimal rate is a run and each noise a task; *IQM*: the interquartile mean "
            f"of the runs pooled over noises; *P(better than {baseline})*: the chance that a world's rate with this "
            f"learner is above a world's rate with the {baseline} learner (ties ½), averaged over noises; "
            f"{CONFIDENCE:.0%} CIs by a bootstrap over worlds stratified by noise.", "",
            pd.DataFrame(rows).to_markdown(index=False), ""]


def _world_tasks() -> tuple[str, ...]:
    """The tasks whose instances are Knox et al.'s random worlds (registered with that tag)."""
    return rlhf.registered_tasks(tag="random-worlds")
