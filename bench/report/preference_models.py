"""The report's preference-model section (#14, #29): which model of human preference should the learner assume?

It reads the random worlds' cells (tasks tagged ``random-worlds``). A *method* is a learner
model (``partial``, ``advantage``: Knox et al. 2024, ``regret``: Knox et al. 2022) with a fit
(``round``: each round's new pairs; ``all``: every pair asked so far). Each world's near-optimal
rate is the mean over its seeds (a failed cell counts as not near-optimal); per teacher noise,
teacher model and budget, a method's *share of worlds near-optimal* is the mean of those rates,
with a percentile-bootstrap CI over worlds (:func:`shares`).

Findings are read from paired differences on the same worlds and seeds (:func:`differences`: one
bootstrap resample of worlds serves every method of a setting, so the worlds' spread in
difficulty does not hide a gap): between learners with the same fit (regret − partial,
regret − advantage, advantage − partial) and between fits of the same learner (all − round). A
setting's learner comparisons are read as one finding, and so are its fit comparisons: each
family's intervals are Bonferroni-corrected over its comparisons, as the query-rule section's are.

Where the cells record it (``loss_above_truth``), a table shows how often a fit on well-specified
labels ends above the true reward's loss on its pairs (:func:`above_truth`: the regret learner's loss
is not convex), with Wilson CIs over seeds; older runs' sections are as before.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

import rlhf

from . import aggregate, bootstrap, figures
from .bootstrap import CONFIDENCE
from .section import Figure, ReportInputs, SectionOutput
from .stats import bootstrap_rng, learner_note, proportion_interval, values_text

_SETTING = ["noise", "teacher_model", "budget"]
_METHOD = ["learner_model", "fit"]
LEARNERS = ("partial", "advantage", "regret")
"""The learner models in the order tables and figures show them."""
LEARNER_COMPARISONS = (("regret", "partial"), ("regret", "advantage"), ("advantage", "partial"))
"""Learner against learner (first − second), with the same fit, on the same worlds and seeds."""
FIT_COMPARISON = ("all", "round")
"""Fit against fit (first − second), with the same learner, on the same worlds and seeds."""
_DEFAULT_FIT = str(rlhf.TrainConfig.__dataclass_fields__["fit"].default)
_VERDICTS = ("above", "below", "not distinguishable")


def without_worlds(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the rest of the report is about (random worlds are this section's)."""
    return frame[~frame["task"].isin(_world_tasks())]


def world_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (noise, teacher model, budget, learner model, fit, world): ``near`` (the world's
    near-optimal rate over its seeds) and ``scaled`` (its mean scaled return over finished seeds).
    Cells without a ``fit`` column are the seeds' fit (``round``)."""
    rows = cells[cells["task"].isin(_world_tasks())].copy()
    if "fit" not in rows:
        rows["fit"] = _DEFAULT_FIT
    rows["fit"] = rows["fit"].fillna(_DEFAULT_FIT)
    teachers = {spec: rlhf.Teacher.parse(spec) for spec in rows["teacher"].unique()}
    default = rlhf.Teacher().preference_model        # the noise alone: the spec with the default preference model
    rows["noise"] = rows["teacher"].map(lambda s: str(dataclasses.replace(teachers[s], preference_model=default)))
    rows["teacher_model"] = rows["teacher"].map(lambda s: teachers[s].preference_model.name)
    done = rows["status"] == "done"
    rows["near"] = np.where(done, rows["near_optimal"].fillna(0.0), 0.0)
    rows["scaled"] = rows["scaled_return"].where(done)
    keys = [*_SETTING, *_METHOD, "world"]
    return rows.groupby(keys, sort=True).agg(near=("near", "mean"), scaled=("scaled", "mean"),
                                             seeds=("seed", "nunique")).reset_index()


def _order(method: tuple[str, str]) -> tuple[int, int, str, str]:
    learner, fit = method
    return (LEARNERS.index(learner) if learner in LEARNERS else len(LEARNERS),
            0 if fit == _DEFAULT_FIT else 1, learner, fit)


def _paired(rows: pd.DataFrame) -> tuple[list[tuple[str, str]], np.ndarray]:
    """A setting's methods (in table order) and their near-optimal rates ``[worlds, methods]`` on
    the worlds every method has."""
    table = rows.pivot(index="world", columns=_METHOD, values="near").dropna()
    methods = sorted((str(m[0]), str(m[1])) for m in table.columns)
    methods.sort(key=_order)
    return methods, table[methods].to_numpy(dtype=float)


def shares(rates: pd.DataFrame) -> pd.DataFrame:
    """Per setting, learner and fit: ``worlds``, ``share`` near-optimal with its CI over worlds,
    and the mean scaled return."""
    out = []
    for setting, rows in rates.groupby(_SETTING, sort=True):
        methods, values = _paired(rows)
        fields = dict(zip(_SETTING, setting, strict=True))
        draws = bootstrap.resample(values, bootstrap.mean, bootstrap_rng(fields))   # [R, methods]
        low, high = bootstrap.percentile_interval(draws)
        scaled = rows.groupby(_METHOD)["scaled"].mean()
        for j, (learner, fit) in enumerate(methods):
            out.append({**fields, "learner_model": learner, "fit": fit, "worlds": len(values),
                        "share": float(values[:, j].mean()), "ci_low": float(low[j]), "ci_high": float(high[j]),
                        "scaled_return": float(scaled[(learner, fit)])})
    return pd.DataFrame(out)


def differences(rates: pd.DataFrame) -> pd.DataFrame:
    """Per setting, the paired differences in share near-optimal on the same worlds (and seeds):
    learner − learner with the same fit (``comparison`` "learners": ``learner_model`` says which,
    e.g. "regret − partial"; ``fit`` the fit) and fit − fit with the same learner ("fits": ``fit``
    "all − round"). One bootstrap resample of worlds per setting serves all of them; each family
    (a setting's learner comparisons at one fit; a setting's fit comparisons) is
    Bonferroni-corrected over its members (``confidence``, ``comparisons``)."""
    out = []
    for setting, rows in rates.groupby(_SETTING, sort=True):
        methods, values = _paired(rows)
        fields = dict(zip(_SETTING, setting, strict=True))
        draws = bootstrap.resample(values, bootstrap.mean, bootstrap_rng(fields | {"statistic": "paired differences"}))
        index = {m: j for j, m in enumerate(methods)}
        families: list[tuple[str, list[tuple[str, str, tuple[str, str], tuple[str, str]]]]] = []
        for fit in sorted({f for _, f in methods}, key=lambda f: (f != _DEFAULT_FIT, f)):
            family = [(f"{a} − {b}", fit, (a, fit), (b, fit)) for a, b in LEARNER_COMPARISONS
                      if (a, fit) in index and (b, fit) in index]
            families.append(("learners", family))
        first, second = FIT_COMPARISON
        families.append(("fits", [(learner, f"{first} − {second}", (learner, first), (learner, second))
                                  for learner in sorted({m for m, _ in methods}, key=lambda m: _order((m, "")))
                                  if (learner, first) in index and (learner, second) in index]))
        for kind, family in families:
            level = 1 - (1 - CONFIDENCE) / max(len(family), 1)
            for learner, fit, a, b in family:
                low, high = bootstrap.percentile_interval(draws[:, index[a]] - draws[:, index[b]], level)
                out.append({**fields, "comparison": kind, "learner_model": learner, "fit": fit,
                            "worlds": len(values),
                            "difference": float(values[:, index[a]].mean() - values[:, index[b]].mean()),
                            "ci_low": float(low), "ci_high": float(high), "confidence": level,
                            "comparisons": len(family),
                            "identical": bool((values[:, index[a]] == values[:, index[b]]).all())})
    frame = pd.DataFrame(out)
    if len(frame):
        frame["verdict"] = np.where(frame["identical"], "identical", np.where(
            frame["ci_low"] > 0, "above", np.where(frame["ci_high"] < 0, "below", "not distinguishable")))
    return frame


def section(inputs: ReportInputs) -> SectionOutput:
    """The section's Markdown lines and its files (two CSVs and a figure, written into the stage);
    nothing without random-world cells."""
    cells, to = inputs.cells, inputs.stage
    worlds_cells = cells[cells["task"].isin(_world_tasks())]
    if worlds_cells.empty:
        return SectionOutput()
    rates = world_rates(cells)
    segments = values_text(worlds_cells["segment_length"])
    table, paired = shares(rates), differences(rates)
    csv, csv_paired = to / "preference_models.csv", to / "preference_models_differences.csv"
    table.to_csv(csv, index=False, float_format="%.6g")
    paired.to_csv(csv_paired, index=False, float_format="%.6g")
    figure = figures.preference_models(table, to / "preference_models.png")
    worlds = int(table["worlds"].max())
    seeds = int(rates["seeds"].max())
    learners = [m for m in LEARNERS if m in set(table["learner_model"])]
    fits = sorted(set(table["fit"]), key=lambda f: (f != _DEFAULT_FIT, f))
    lines = ["## Which model of human preference: partial return, advantage, regret", "",
             f"`bench/configs/preference_models.toml`: {worlds} random feature gridworlds (`rlhf.RandomGridWorld`, "
             "Knox et al.'s generator), each taught by a *partial-return* teacher (a segment's summed reward) or a "
             "*regret* teacher (its summed optimal advantage A*), noiseless or Boltzmann-rational, with pairs of "
             f"{segments}-step segments from random behaviour. Learners ({', '.join(learners)}): *partial* fits a "
             "reward by Bradley–Terry on segments' summed learned reward and plans on it; *advantage* (Knox et al., "
             "2024, \"Learning optimal advantage from preferences\") fits optimal advantages Â by the same "
             "Bradley–Terry model and acts greedily on them; *regret* (Knox et al., 2022, \"Models of human "
             "preference for learning reward functions\") fits a reward through the regret likelihood — a segment's "
             "summed optimal advantage under the learned reward, with planning inside the loss — and plans on it. "
             f"Fits ({', '.join(fits)}): *round* fits each round's new pairs only (the seeds' loop); *all* refits on "
             "every pair asked so far each round (B-Pref's and imitation's buffer). *Share near-optimal*: the share "
             "of worlds whose policy has scaled return ≥ "
             f"{rlhf.NEAR_OPTIMAL_SCALED_RETURN} (each world's rate over its {seeds} seeds), with a "
             f"{CONFIDENCE:.0%} bootstrap CI over worlds. Numbers: [preference_models.csv](preference_models.csv); "
             "paired differences: [preference_models_differences.csv](preference_models_differences.csv); figure: "
             "*Preference models* in [Figures](#figures).", ""]
    lines += [_markdown(table), "", *learner_note(worlds_cells)]
    lines += _above_truth_markdown(above_truth(worlds_cells))
    lines += _differences_markdown(paired)
    lines += [*_findings(table, paired), *_across_noises(rates)]
    return SectionOutput(lines=lines, files=[csv, csv_paired, figure],
                         figures=[Figure(figure, "Preference models: share of worlds near-optimal per learner and fit",
                                         _caption(table, paired, worlds, seeds))])


def above_truth(cells: pd.DataFrame) -> pd.DataFrame:
    """Per learner, fit, teacher (preference model and noise) and budget, with well-specified labels (the
    teacher's preference model is the learner's): of the finished seeds that have a ``loss_above_truth``
    (runs that record it: :func:`rlhf.training.phases.truth_loss_metrics`), ``above`` of ``seeds`` ended
    with a higher loss on the pairs their fit last saw than the true reward's, ``share`` with a Wilson
    CI over seeds (:func:`~bench.report.stats.proportion_interval`). Empty without the metric."""
    columns = [*_METHOD, "teacher_model", "noise", "budget", "seeds", "above", "share", "ci_low", "ci_high"]
    if "loss_above_truth" not in cells:
        return pd.DataFrame(columns=columns)
    rows = cells[(cells["status"] == "done") & cells["loss_above_truth"].notna()].copy()
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["fit"] = rows["fit"].fillna(_DEFAULT_FIT) if "fit" in rows else _DEFAULT_FIT
    teachers = {spec: rlhf.Teacher.parse(spec) for spec in rows["teacher"].unique()}
    default = rlhf.Teacher().preference_model
    rows["noise"] = rows["teacher"].map(lambda s: str(dataclasses.replace(teachers[s], preference_model=default)))
    rows["teacher_model"] = rows["teacher"].map(lambda s: teachers[s].preference_model.name)
    assumed = rows["learner_model"].map(
        lambda m: rlhf.LEARNER_MODELS[m].preference_model if m in rlhf.LEARNER_MODELS else None)
    out = []
    for (learner, fit, teacher, noise, _), at in rows[rows["teacher_model"] == assumed].groupby(
            [*_METHOD, "teacher_model", "noise", "budget"], sort=True):
        values = at["loss_above_truth"].to_numpy(dtype=float)
        low, high = proportion_interval(values)
        out.append({"learner_model": learner, "fit": fit, "teacher_model": teacher, "noise": noise,
                    "budget": int(at["budget"].iloc[0]), "seeds": len(values), "above": int(values.sum()),
                    "share": float(values.mean()), "ci_low": low, "ci_high": high})
    return pd.DataFrame(out, columns=columns)


def _above_truth_markdown(above: pd.DataFrame) -> list[str]:
    """The non-convexity check's sentence and table (nothing without the metric)."""
    if above.empty:
        return []
    rows = []
    keys = ["learner_model", "fit", "teacher_model", "noise"]
    for (learner, fit, teacher, noise), line in sorted(above.groupby(keys, sort=True),
                                                      key=lambda g: (*_order((str(g[0][0]), str(g[0][1]))), g[0][2:])):
        row = {"learner": learner, "fit": fit, "teacher": f"{teacher}, {noise}"}
        for _, r in line.sort_values("budget").iterrows():
            row[str(r["budget"])] = f"{r['above']}/{r['seeds']}: {_cell(r['share'], r['ci_low'], r['ci_high'])}"
        rows.append(row)
    return ["Does a fit end above the truth? The regret learner plans inside its loss, which is then not convex "
            "(`rlhf/learning/regret.py`). With well-specified labels (the teacher's preference model is the "
            "learner's), the share of seeds whose learned reward ends with a higher Bradley–Terry loss on the pairs "
            "its last update fitted (*round*: that round's; *all*: every pair so far) than the true reward scored "
            "the same way (the truth's optimal advantages A* for regret, its summed reward for partial, whose loss "
            f"is convex), with {CONFIDENCE:.0%} Wilson CIs over seeds (all worlds pooled):", "",
            pd.DataFrame(rows).fillna("").to_markdown(index=False), ""]


def _caption(table: pd.DataFrame, paired: pd.DataFrame, worlds: int, seeds: int) -> str:
    several = table["fit"].nunique() > 1
    text = (f"Share of the {worlds} random worlds whose learned policy is near-optimal (each world's rate over its "
            f"{seeds} seeds) against preference pairs on a log axis; one row per teacher preference model, one "
            "column per teacher noise; colour: the learner (blue partial, orange advantage, red regret)"
            + ("; line style: the fit (solid: each round's pairs, dashed: every pair so far)" if several else "")
            + f"; bands: {CONFIDENCE:.0%} bootstrap CIs over worlds.")
    learners = set(table["learner_model"])
    shared = [int(b) for b in table["budget"].unique()
              if set(table.loc[table["budget"] == b, "learner_model"]) == learners]
    regret_rows = table[(table["teacher_model"] == "regret") & table["budget"].isin(shared)]
    if len(regret_rows):
        top = regret_rows[regret_rows["budget"] == regret_rows["budget"].max()]
        best = top.sort_values(["share", "learner_model", "fit"], ascending=[False, True, True]).iloc[0]
        text += (f" With a regret teacher at {int(best['budget'])} pairs (the largest budget every learner was run "
                 f"at) the highest share is the {best['learner_model']} learner's ({best['fit']} fit, "
                 f"{best['noise']}: {best['share']:.2f}).")
    partial = paired[(paired["comparison"] == "learners") & (paired["teacher_model"] == "partial")
                     & (paired["learner_model"] == "advantage − partial")] if len(paired) else paired
    if len(partial) and (partial["verdict"] == "below").all():
        text += (" Look at the orange lines in the partial-teacher row: acting greedily on a fit of summed reward "
                 "stays below planning on it at every budget.")
    return text


def _cell(share: float, low: float, high: float, signed: bool = False) -> str:
    f = "+.2f" if signed else ".2f"
    return f"{share:{f}} [{low:{f}}, {high:{f}}]"


def _markdown(table: pd.DataFrame) -> str:
    rows = []
    for (teacher, noise), at in table.groupby(["teacher_model", "noise"], sort=True):
        for method in sorted({(str(m), str(f)) for m, f in zip(at["learner_model"], at["fit"], strict=True)},
                             key=_order):
            line = at[(at["learner_model"] == method[0]) & (at["fit"] == method[1])]
            row = {"teacher": f"{teacher}, {noise}", "learner": method[0], "fit": method[1],
                   "worlds": values_text(line["worlds"])}
            for _, r in line.sort_values("budget").iterrows():
                row[str(r["budget"])] = _cell(r["share"], r["ci_low"], r["ci_high"])
            rows.append(row)
    return pd.DataFrame(rows).fillna("").to_markdown(index=False)


def _differences_markdown(paired: pd.DataFrame) -> list[str]:
    if paired.empty:
        return []
    rows = []
    for (teacher, noise, kind, learner, fit), line in paired.groupby(
            ["teacher_model", "noise", "comparison", "learner_model", "fit"], sort=False):
        row = {"teacher": f"{teacher}, {noise}", "comparison": learner if kind == "learners" else f"{fit}",
               "learner": "—" if kind == "learners" else learner, "fit": fit if kind == "learners" else "—"}
        for _, r in line.sort_values("budget").iterrows():
            row[str(r["budget"])] = _cell(r["difference"], r["ci_low"], r["ci_high"], signed=True)
        rows.append(row)
    shown = pd.DataFrame(rows).sort_values("teacher", kind="stable").fillna("")
    levels = " or ".join(f"{x:.1%}" for x in sorted(paired["confidence"].unique()))
    return ["Paired differences in share near-optimal on the same worlds and seeds (first − second), with "
            f"{levels} bootstrap CIs over worlds: the learner comparisons at one fit, and the fit comparisons, are "
            f"each {CONFIDENCE:.0%} together (Bonferroni over the comparisons of a setting).", "",
            shown.to_markdown(index=False), ""]


def _said(rows: pd.DataFrame) -> str:
    """``"above at 300, 900; not distinguishable at 3000"`` from the verdicts of one comparison's budgets."""
    parts = []
    for kind in (*_VERDICTS, "identical"):
        budgets = rows.loc[rows["verdict"] == kind, "budget"].sort_values()
        if len(budgets):
            parts.append(f"{kind} at {', '.join(str(int(b)) for b in budgets)}")
    return "; ".join(parts)


def _shares_at(table: pd.DataFrame, teacher: str, noise: str, fit: str, budget: int) -> str:
    rows = table[(table["teacher_model"] == teacher) & (table["noise"] == noise) & (table["fit"] == fit)
                 & (table["budget"] == budget)]
    rows = rows.assign(order=rows["learner_model"].map(lambda m: _order((str(m), fit)))).sort_values("order")
    return f"at {budget} pairs " + ", ".join(f"{r['learner_model']} {r['share']:.2f}" for _, r in rows.iterrows())


def _claim(table: pd.DataFrame, paired: pd.DataFrame, teacher: str, comparison: str, kinds: tuple[str, ...],
           claim: str, holds: str) -> list[str]:
    """One paper's claim read per fit off a learner comparison (such as "regret − partial") with
    ``teacher`` labels: its verdicts per noise and budget; the claim holds at a budget when the
    verdict is one of ``kinds`` for every noise, and is contradicted where the difference's CI lies
    on the other side of 0."""
    rows = paired[(paired["comparison"] == "learners") & (paired["teacher_model"] == teacher)
                  & (paired["learner_model"] == comparison)]
    if rows.empty:
        return []
    lines = [f"- {claim}"]
    against = {"above": "below", "below": "above"}
    for fit, at_fit in rows.groupby("fit", sort=False):
        budgets = sorted(int(b) for b in at_fit["budget"].unique())
        per_noise = [f"{noise}: {_said(line)} ({_shares_at(table, teacher, str(noise), str(fit), max(budgets))})"
                     for noise, line in at_fit.groupby("noise", sort=True)]
        held = [b for b in budgets if at_fit.loc[at_fit["budget"] == b, "verdict"].isin(kinds).all()]
        opposite = {against[k] for k in kinds if k in against} - set(kinds)
        contradicted = sorted({int(b) for b in at_fit.loc[at_fit["verdict"].isin(opposite), "budget"]})
        if held == budgets:
            verdict = f"{holds} at every budget for every teacher noise: reproduced."
        elif held:
            verdict = (f"{holds} for every teacher noise at {', '.join(map(str, held))} pairs, not at "
                       f"{', '.join(str(b) for b in budgets if b not in held)}: reproduced only there.")
        else:
            verdict = "At no budget does that hold for every teacher noise: not reproduced."
        if contradicted:
            verdict += f" The opposite (CI excluding 0) at {', '.join(map(str, contradicted))} pairs for some noise."
        lines.append(f"  - Fit {fit}, {teacher} teacher, {comparison} (paired CIs over worlds): "
                     + "; ".join(per_noise) + f". {verdict}")
    return lines


def _findings(table: pd.DataFrame, paired: pd.DataFrame) -> list[str]:
    if paired.empty:
        return []
    lines = ["### Findings", ""]
    lines += _claim(table, paired, "regret", "regret − partial", ("above",),
                    "Knox et al. (2022) find that preferences generated by regret are learned better by the regret "
                    "model than by the partial-return model:", "The regret learner is ahead")
    lines += _claim(table, paired, "regret", "regret − advantage", ("above",),
                    "The same regret labels, the regret learner against Knox et al. (2024)'s advantage learner "
                    "(whether planning inside the loss pays over fitting Â and acting greedily):",
                    "The regret learner is ahead")
    lines += _claim(table, paired, "regret", "advantage − partial", ("above", "not distinguishable"),
                    "Knox et al. (2024) show that the Bradley–Terry fit to regret preferences is an optimal advantage "
                    "Â, so acting greedily on it is near-optimal, while planning on it as if it were a reward (the "
                    "partial learner here) mistakes advantage for reward:",
                    "Acting greedily on Â is not behind planning on it")
    lines += _claim(table, paired, "partial", "advantage − partial", ("below",),
                    "The converse (Knox et al., 2024): with partial-return labels the fit is a reward, and acting "
                    "greedily on it as if it were an advantage is myopic:",
                    "The advantage learner is behind the partial learner")
    lines += _fit_findings(paired)
    return [*lines, ""]


def _fit_findings(paired: pd.DataFrame) -> list[str]:
    """Every pair so far against each round's pairs, per learner: in how many settings it raises,
    lowers or does not tell apart the share (settings where the two fits are the same learner —
    a single round — counted apart), and the differences at the largest budget both fits share."""
    rows = paired[paired["comparison"] == "fits"]
    if rows.empty:
        return []
    lines = ["- B-Pref and imitation train the reward model on every pair asked so far; the seeds' loop fits each "
             "round's new pairs. Fitting all against round, per learner on the same worlds and seeds:"]
    for learner, at in sorted(rows.groupby("learner_model"), key=lambda g: _order((str(g[0]), ""))):
        counts = at["verdict"].value_counts()
        compared = at[at["verdict"] != "identical"]
        top = at[at["budget"] == at["budget"].max()]
        detail = "; ".join(f"{r['teacher_model']} teacher, {r['noise']}: "
                           f"{_cell(r['difference'], r['ci_low'], r['ci_high'], True)}"
                           for _, r in top.sort_values(["teacher_model", "noise"]).iterrows())
        same = (f" (identical in {counts['identical']} more, at "
                f"{', '.join(str(int(b)) for b in sorted(at.loc[at['verdict'] == 'identical', 'budget'].unique()))}"
                " pairs: one round, where the two fits are the same learner)" if counts.get("identical", 0) else "")
        lines.append(f"  - {learner} learner: above in {counts.get('above', 0)}, below in {counts.get('below', 0)}, "
                     f"not distinguishable in {counts.get('not distinguishable', 0)} of {len(compared)} settings "
                     f"(teacher × noise × budget){same}; {at['confidence'].iloc[0]:.1%} CIs, Bonferroni over the "
                     f"learners. At {int(top['budget'].iloc[0])} pairs: {detail}.")
    return lines


def _across_noises(rates: pd.DataFrame) -> list[str]:
    """Per teacher model, the methods (learner and fit) ranked across teacher noises the way rliable
    does (:mod:`bench.report.aggregate`), at the largest budget every method was run at: each world's
    near-optimal rate is a run, each noise a task; IQM and the probability that a method does better
    than the partial learner with the seeds' fit."""
    methods = {(str(m), str(f)) for m, f in zip(rates["learner_model"], rates["fit"], strict=True)}
    common = [int(b) for b in rates["budget"].unique()
              if {(str(m), str(f)) for m, f in zip(rates.loc[rates["budget"] == b, "learner_model"],
                                                   rates.loc[rates["budget"] == b, "fit"], strict=True)} == methods]
    if len(methods) < 2 or rates["noise"].nunique() < 2 or not common:
        return []
    budget = max(common)
    top = rates[rates["budget"] == budget].assign(method=lambda f: f["learner_model"] + ", " + f["fit"])
    ordered = sorted(methods, key=_order)
    names = [f"{m}, {f}" for m, f in ordered]
    baseline = f"partial, {_DEFAULT_FIT}" if f"partial, {_DEFAULT_FIT}" in names else names[0]
    names = [baseline, *(n for n in names if n != baseline)]
    rows = []
    for teacher, at in top.groupby("teacher_model", sort=True):
        strata = [g.pivot(index="world", columns="method", values="near")[names].dropna().to_numpy()
                  for _, g in at.groupby("noise", sort=True)]
        fields = {"section": "preference models", "teacher_model": teacher, "budget": int(budget)}
        for row in aggregate.table_rows(aggregate.aggregate(strata, names, baseline, fields), baseline, "share"):
            rows.append({"teacher": str(teacher), "learner, fit": row.pop(""), **row})
    noises = ", ".join(sorted(top["noise"].unique()))
    return [f"Across teacher noises ({noises}) at {budget} pairs (the largest budget every learner and fit was run "
            "at), ranked the way rliable does (Agarwal et al., 2021): each world's near-optimal rate is a run and "
            "each noise a task; *IQM*: the interquartile mean of the runs pooled over noises; *P(better than "
            f"{baseline})*: the chance that a world's rate with this learner and fit is above a world's rate with "
            f"{baseline} (ties ½), averaged over noises; {CONFIDENCE:.0%} CIs by a bootstrap over worlds stratified "
            "by noise.", "", pd.DataFrame(rows).to_markdown(index=False), "",
            *learner_note(top)]


def _world_tasks() -> tuple[str, ...]:
    """The tasks whose instances are Knox et al.'s random worlds (registered with that tag)."""
    return rlhf.registered_tasks(tag="random-worlds")
