"""The report's rankings-and-ties section (#26): rankings of K segments against pairs at equal human effort,
the Plackett–Luce likelihood against pair splitting (Zhu, Jordan and Jiao, ICML 2023), and tie-aware learners
on a teacher that declares ties (Chen et al., 2024).

It reads the cells whose ranking fields are set (``rank``, ``rank_learner``, ``rank_cost``, ``ties``,
``tie_fit``; :data:`bench.sweep.config.RANKING_COLUMNS`) and the pair cells of the same settings (their
baselines); the numbers and their paired bootstrap CIs over seeds are :mod:`bench.report.rankings_tables`'.
Every finding is read off those numbers: a paper's claim is *reproduced* where the CI excludes 0 on its side,
*contradicted* where it excludes 0 on the other, and neither where it does not exclude 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.artist import Artist

from ..sweep.config import instance_label
from . import rankings_tables as rt
from .bootstrap import CONFIDENCE
from .figures import MARKERS, _budget_axis, _interval, _save, dodge, plt
from .section import Figure, ReportInputs, SectionOutput
from .stats import learner_note, values_text

split = rt.split


def section(inputs: ReportInputs) -> SectionOutput:
    """The section's Markdown, its three CSVs and its figure; nothing without ranking or tie cells."""
    frame = rt.ranking_cells(inputs.ranked)
    if frame.empty:
        return SectionOutput()
    pairs, learners, ties = rt.versus_pairs(frame), rt.learners(frame), rt.ties(frame)
    if pairs.empty and learners.empty and ties.empty:
        return SectionOutput()
    to = inputs.stage
    files = []
    for name, table in (("rankings.csv", pairs), ("rankings_learners.csv", learners), ("rankings_ties.csv", ties)):
        table.to_csv(to / name, index=False, float_format="%.6g")
        files.append(to / name)
    figure = figure_of(pairs, learners, ties, to / "rankings.png")
    used = frame[frame["task"].isin(set(pairs.get("task", [])) | set(ties.get("task", [])))]
    costs = sorted(set(used.loc[used["rank"] > 2, "rank_cost"]))
    lines = ["## Rankings and ties", "",
             "`bench/configs/rankings.toml` (#26). *Human effort* is the budget of comparisons asked of a person: "
             "a ranking of K segments costs K − 1 of them (`rank_cost = "
             f"{', '.join(repr(c) for c in costs) or repr('comparisons')}`: the fewest judgements a ranking rests "
             "on), so each column compares methods that cost the same effort. Queries: "
             f"{values_text(used['query'])}; the budget is asked in "
             + ("one round and fitted full-batch, so each reward is close to its learner's maximum-likelihood "
                "estimate (Zhu et al.'s fixed design)" if (used["pairs_per_round"] == 0).all() else "rounds")
             + f"; {values_text(used.groupby([*rt.SETTING, 'budget'], dropna=False)['seed'].nunique())} seeds. "
             "*EPIC*: the distance of the learned reward from the true one (0 = equal up to scale and shift). "
             f"CIs: {CONFIDENCE:.0%} percentile bootstrap over seeds, paired (one resample of seeds serves every "
             "method of a budget), Bonferroni over the comparisons of a budget. Numbers: [rankings.csv](rankings.csv), "
             "[rankings_learners.csv](rankings_learners.csv), [rankings_ties.csv](rankings_ties.csv); figure: "
             "*Rankings and ties* in [Figures](#figures).", ""]
    lines += _pairs_markdown(pairs) + _learners_markdown(learners) + _ties_markdown(ties)
    lines += [*learner_note(used), *findings(pairs, learners, ties)]
    return SectionOutput(lines=lines, files=[*files, figure],
                         figures=[Figure(figure, "Rankings and ties: EPIC against human effort",
                                         caption(pairs, learners, ties))])


# ------------------------------------------------------------------ labels and cells
def label(row: pd.Series | dict) -> str:
    """``"strings, L=5"`` (the task and its instance)."""
    return f"{row['task']}, {instance_label(dict(row))}"


def _ci(mean: float, low: float, high: float, signed: bool = False, digits: int = 3) -> str:
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"{mean:{f}} [{low:{f}}, {high:{f}}]"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _wide(rows: list[dict]) -> str:
    return pd.DataFrame(rows).fillna("").to_markdown(index=False)


# ------------------------------------------------------------------ tables
def _pairs_markdown(pairs: pd.DataFrame) -> list[str]:
    if pairs.empty:
        return []
    epic, near = [], []
    for (name, teacher), at in pairs.groupby([pairs.apply(label, axis=1), "teacher"], sort=True):
        base = at.drop_duplicates("budget").sort_values("budget")
        head = {"task": name, "teacher": teacher, "K": 2, "learner": "pairs (Bradley–Terry)"}
        epic.append(head | {f"{b}": f"{e:.3f}" for b, e in zip(base["budget"], base["epic_pairs"], strict=True)})
        near.append(head | {f"{b}": f"{e:.0%}" for b, e in zip(base["budget"], base["near_optimal_pairs"],
                                                                 strict=True)})
        groups = sorted(at.groupby(["rank", "rank_learner"]), key=lambda g: (g[0][0], g[0][1] != rt.PL))
        for (k, learner), line in groups:
            head = {"task": name, "teacher": teacher, "K": k, "learner": learner}
            line = line.sort_values("budget")
            records = _records(line)
            epic.append(head | {f"{r['budget']}": _ci(r["difference"], r["ci_low"], r["ci_high"], True)
                                for r in records})
            near.append(head | {f"{r['budget']}": f"{r['near_optimal_rankings']:.0%}" for r in records})
    return ["### Rankings against pairs at equal effort", "",
            "EPIC by comparisons asked (columns): the pairs row gives the pairs' mean EPIC; each ranking row the "
            "paired difference rankings − pairs with its CI (negative: the rankings' reward is closer to the truth; "
            "Bonferroni over the K of one learner).", "", _wide(epic), "",
            "Share of seeds whose policy is near-optimal (scaled return ≥ 0.9), same columns:", "", _wide(near), ""]


def _learners_markdown(learners: pd.DataFrame) -> list[str]:
    if learners.empty:
        return []
    rows = []
    for r in _records(learners.sort_values(["task", "rank", "budget"])):
        rows.append({"task": label(r), "K": r["rank"], "comparisons": r["budget"],
                     "EPIC PL": f"{r['epic_pl']:.3f}", "EPIC PS": f"{r['epic_ps']:.3f}",
                     "PL − PS": _ci(r["difference"], r["ci_low"], r["ci_high"], True),
                     "std PL": f"{r['std_pl']:.3f}", "std PS": f"{r['std_ps']:.3f}",
                     "std PL − PS": _ci(r["std_difference"], r["std_ci_low"], r["std_ci_high"], True),
                     "efficiency PS/PL": _ci(r["efficiency"], r["efficiency_ci_low"], r["efficiency_ci_high"],
                                             digits=2),
                     "near-opt. PL / PS": f"{r['near_optimal_pl']:.0%} / {r['near_optimal_ps']:.0%}"})
    return ["### Plackett–Luce against pair split", "",
            "The same rankings (same seeds, rollouts and teacher draws) fitted by the full Plackett–Luce likelihood "
            "(PL) and by InstructGPT's mean log-likelihood of the ranking's C(K, 2) pairs (PS). *std*: the standard "
            "deviation of EPIC across seeds. The learned rewards themselves are not stored, so their spread across "
            "seeds is read through EPIC: 4·EPIC² is the squared distance between the learned and the true reward, "
            "each centred and scaled to unit norm, so its mean over seeds is the estimator's mean squared error there "
            "(its variance, for a consistent estimator at large budgets); *efficiency PS/PL*: pair split's mean "
            "4·EPIC² over Plackett–Luce's (above 1: Plackett–Luce needs fewer comparisons). CIs Bonferroni over the "
            "K of one budget.", "", _wide(rows), ""]


def _ties_markdown(ties: pd.DataFrame) -> list[str]:
    if ties.empty:
        return []
    epic, calibration = [], []
    for (name, teacher, learner), line in ties.groupby([ties.apply(label, axis=1), "teacher", "ties"], sort=False):
        line = line.sort_values("budget")
        head = {"task": name, "teacher": teacher, "learner": learner}
        records = _records(line)
        if learner == "none":
            epic.append(head | {f"{r['budget']}": _ci(r["epic"], r["epic_ci_low"], r["epic_ci_high"]) for r in records})
            continue
        epic.append(head | {f"{r['budget']}": _ci(r["difference"], r["ci_low"], r["ci_high"], True) for r in records})
        calibration.append(head | {"teacher's": f"{line['teacher_tie'].iloc[0]:.3f}"}
                           | {f"{r['budget']}": _ci(r["tie"], r["tie_ci_low"], r["tie_ci_high"]) for r in records}
                           | {"fitted θ or ν (largest)": f"{line['fitted_tie_param'].iloc[-1]:.2f}"})
    return ["### Ties", "",
            "A teacher that declares ties (Rao–Kupper or Davidson, its spec's tie model) learned by Bradley–Terry "
            "(`none`: a tie is the soft label ½) and by the two tie models, their tie parameter fitted "
            "(`tie_fit`). The `none` row gives Bradley–Terry's EPIC; each tie model's row the paired difference from "
            "it on the same labels (negative: closer to the truth; Bonferroni over the tie models).", "",
            _wide(epic), "",
            "Tie calibration: the learner's probability that two segments of equal return tie, (θ − 1)/(θ + 1) "
            "(Rao–Kupper) or ν/(2 + ν) (Davidson) from its fitted parameter, mean over seeds with its CI, against "
            "the teacher's own (*teacher's*).", "", _wide(calibration), ""]


# ------------------------------------------------------------------ findings
def _budgets(rows: pd.DataFrame) -> str:
    return ", ".join(str(int(b)) for b in sorted(rows["budget"].unique()))


def findings(pairs: pd.DataFrame, learners: pd.DataFrame, ties: pd.DataFrame) -> list[str]:
    """The findings, each read off the tables' numbers."""
    lines = [*_pairs_findings(pairs), *_zhu_findings(learners), *_chen_findings(ties)]
    return ["### Findings", "", *lines, ""] if lines else []


def _pairs_findings(pairs: pd.DataFrame) -> list[str]:
    if pairs.empty:
        return []
    out = []
    for name, at in pairs[pairs["rank_learner"] == rt.PL].groupby(pairs.apply(label, axis=1), sort=True):
        parts = []
        for k, line in at.groupby("rank", sort=True):
            closer, farther = line[line["verdict"] == "below"], line[line["verdict"] == "above"]
            text = f"K = {k}: closer at {_budgets(closer) or 'no budget'}"
            parts.append(text + (f", farther at {_budgets(farther)}" if len(farther) else ""))
        top = at[at["budget"] == at["budget"].max()].sort_values("epic_rankings")
        best = top.iloc[0]
        beats = top[top["verdict"] == "below"]
        out.append(f"- Rankings against pairs at equal effort, {name} (Plackett–Luce; CI of rankings − pairs "
                   f"excluding 0): {'; '.join(parts)}. At {int(best['budget'])} comparisons EPIC goes from "
                   f"{best['epic_pairs']:.3f} (pairs) to "
                   + ", ".join(f"{r['epic_rankings']:.3f} (K = {r['rank']})"
                               for r in _records(top.sort_values("rank")))
                   + (f": rankings beat pairs there for K = {', '.join(str(k) for k in sorted(beats['rank']))}, "
                      f"most with K = {best['rank']}." if len(beats) else ": no K beats pairs there."))
    return out


def _zhu_findings(learners: pd.DataFrame) -> list[str]:
    if learners.empty:
        return []
    out = ["- Zhu, Jordan and Jiao (ICML 2023) prove the Plackett–Luce maximum-likelihood estimator asymptotically "
           "more efficient than the pair-split one (both consistent):"]
    for name, at in learners.groupby(learners.apply(label, axis=1), sort=True):
        counts = at["verdict"].value_counts()
        top = at[at["budget"] == at["budget"].max()].sort_values("rank")
        ahead, behind = top[top["verdict"] == "below"], top[top["verdict"] == "above"]
        effs = [f"{r['efficiency']:.2f} [{r['efficiency_ci_low']:.2f}, {r['efficiency_ci_high']:.2f}] "
                f"(K = {r['rank']})" for r in _records(top)]
        if len(behind):
            verdict = f"contradicted for K = {', '.join(map(str, behind['rank']))} (pair split closer)"
        elif len(ahead) == len(top):
            verdict = "reproduced for every K"
        elif len(ahead):
            verdict = f"reproduced for K = {', '.join(map(str, ahead['rank']))} only"
        else:
            verdict = "not reproduced at these budgets (no difference excludes 0)"
        grows = len(top) > 1 and bool(np.all(np.diff(top["efficiency"].to_numpy()) > 0))
        std = at["std_ci_high"] < 0
        std_more = at["std_ci_low"] > 0
        out.append(f"  - {name}: Plackett–Luce's EPIC is below pair split's (CI excluding 0) in "
                   f"{counts.get('below', 0)} of {len(at)} (K, budget) settings, above in {counts.get('above', 0)}. "
                   f"At {int(top['budget'].iloc[0])} comparisons the relative efficiency is {', '.join(effs)}"
                   + (", growing with K" if grows else "") + f": {verdict}. Its spread across seeds (std of EPIC) is "
                   f"smaller in {int(std.sum())} and larger in {int(std_more.sum())} of the {len(at)} settings "
                   "(the rest: CI including 0).")
    return out


def _where(rows: pd.DataFrame) -> str:
    """``"davidson on T at 30, 60; rao-kupper on T at 60"`` (tie model, teacher, budgets)."""
    return "; ".join(f"{learner} on {teacher} at {_budgets(line)}"
                     for (learner, teacher), line in rows.groupby(["ties", "teacher"], sort=True))


def _chen_findings(ties: pd.DataFrame) -> list[str]:
    models = ties[ties["ties"] != "none"] if len(ties) else ties
    if models.empty:
        return []
    out = ["- Chen et al. (2024) find that tied pairs presented to DPO (Bradley–Terry) degrade it, while its "
           "Rao–Kupper and Davidson variants take the same ties without that degradation. Here Bradley–Terry reads a "
           "tie as ½ (the expected loss of a tied pair given in a random order) and the measure is the learned "
           "reward's EPIC, not a policy's task score; tie model − Bradley–Terry on the same tied labels (CI "
           "excluding 0):"]
    for name, at in models.groupby(models.apply(label, axis=1), sort=True):
        closer, farther = at[at["verdict"] == "below"], at[at["verdict"] == "above"]
        verdict = ("reproduced: a tie model is closer there and never farther" if len(closer) and farther.empty else
                   "contradicted: a tie model is never closer than Bradley–Terry, and farther there"
                   if len(farther) and closer.empty else "mixed" if len(closer) else
                   "not reproduced: no difference excludes 0")
        text = (f"  - {name}: closer in {len(closer)}" + (f" ({_where(closer)})" if len(closer) else "")
                + f", farther in {len(farther)}" + (f" ({_where(farther)})" if len(farther) else "")
                + f" of {len(at)} (teacher, model, budget) settings: {verdict}.")
        for rows, side in ((farther, "farthest"), (closer, "closest")):
            if len(rows):
                r = rows.iloc[int(np.argmax(rows["difference"].abs().to_numpy()))]
                text += (f" The {side}: {r['ties']} on {r['teacher']} at {int(r['budget'])} comparisons, "
                         f"{_ci(r['difference'], r['ci_low'], r['ci_high'], True)}.")
        out.append(text)
        for teacher, line in at.groupby("teacher", sort=True):
            parts = []
            for learner, own in sorted(line.groupby("ties"), key=lambda g: g[0] != line["teacher_tie_model"].iloc[0]):
                own = own.sort_values("budget")
                first, last = own.iloc[0], own.iloc[-1]
                inside = last["tie_ci_low"] <= last["teacher_tie"] <= last["tie_ci_high"]
                side = ("calibrated (the teacher's in the CI)" if inside else
                        f"{'over' if last['tie'] > last['teacher_tie'] else 'under'} by "
                        f"{abs(last['tie'] - last['teacher_tie']):.3f}")
                which = ("the teacher's own model" if learner == last["teacher_tie_model"] else
                         "the other model: another tie curve, so equality is not expected")
                parts.append(f"{learner} ({which}) {first['tie']:.2f} at {int(first['budget'])} → "
                             f"{_ci(last['tie'], last['tie_ci_low'], last['tie_ci_high'])} at {int(last['budget'])}: "
                             f"{side}")
            out.append(f"    - Tie calibration, {teacher} (teacher's P(tie | equal returns) "
                       f"{line['teacher_tie'].iloc[0]:.3f}): {'; '.join(parts)}.")
    return out


# ------------------------------------------------------------------ the figure
def caption(pairs: pd.DataFrame, learners: pd.DataFrame, ties: pd.DataFrame) -> str:
    text = ("One row per task. Left: mean EPIC over seeds against comparisons asked (both axes log), pairs in "
            "black, K = 3, 4, 6 in colour, Plackett–Luce solid, pair split dashed; bands (pairs and Plackett–Luce): "
            f"{CONFIDENCE:.0%} bootstrap CIs over seeds. Middle: the standard deviation of EPIC across seeds (log), "
            "same lines. Right: each tie learner's P(tie | equal returns) against comparisons (colour: the teacher; "
            "solid Rao–Kupper, dashed Davidson), the teacher's own as a dotted line.")
    if len(learners):
        top = learners[learners["budget"] == learners["budget"].max()]
        best = top.iloc[int(np.argmax(top["efficiency"].to_numpy()))]
        text += (f" The widest Plackett–Luce lead at the largest budget: {label(best)}, K = {best['rank']}, "
                 f"efficiency {best['efficiency']:.2f}.")
    return text


def figure_of(pairs: pd.DataFrame, learners: pd.DataFrame, ties: pd.DataFrame, path: Path) -> Path:
    """EPIC and its spread across seeds against human effort by K and learner, and tie calibration; rows:
    tasks."""
    names = sorted({*(pairs.apply(label, axis=1) if len(pairs) else []),
                    *(ties.apply(label, axis=1) if len(ties) else [])})
    fig, axes = plt.subplots(len(names), 3, figsize=(13, 3.2 * len(names) + 0.5), squeeze=False)
    ks = sorted(set(pairs["rank"])) if len(pairs) else []
    colours = {k: f"C{i}" for i, k in enumerate(ks)}
    for row, name in enumerate(names):
        ax_epic, ax_std, ax_tie = axes[row]
        at = pairs[pairs.apply(label, axis=1) == name] if len(pairs) else pairs
        spread = learners[learners.apply(label, axis=1) == name] if len(learners) else learners
        lines = [("pairs", None, None)] + [(f"K = {k}, {ln}", k, ln) for k in ks for ln in (rt.PL, rt.PS)]
        lines = lines if len(at) else []
        for i, (tag, k, learner) in enumerate(lines):
            if k is None:
                line = at.drop_duplicates("budget").sort_values("budget")
                column, colour, style = "epic_pairs", "black", "-"
            else:
                line = at[(at["rank"] == k) & (at["rank_learner"] == learner)].sort_values("budget")
                column, colour, style = "epic_rankings", colours[k], "-" if learner == rt.PL else "--"
            if line.empty:
                continue
            x = line["budget"].to_numpy(dtype=float) * dodge(i, len(lines))
            ax_epic.plot(x, line[column], style, color=colour, marker=MARKERS[i % len(MARKERS)], ms=4, mfc="none",
                         lw=1.2, label=tag)
            if learner != rt.PS:             # bands for pairs and Plackett–Luce only: eight would be one block
                _interval(ax_epic, x, line[column], line[f"{column}_ci_low"], line[f"{column}_ci_high"], colour, False)
            if k is not None:
                own = spread[spread["rank"] == k].sort_values("budget")
                if len(own):
                    ax_std.plot(own["budget"].to_numpy(dtype=float) * dodge(i, len(lines)),
                                own["std_pl" if learner == rt.PL else "std_ps"], style, color=colour,
                                marker=MARKERS[i % len(MARKERS)], ms=4, mfc="none", lw=1.2, label=tag)
        for ax, ylabel in ((ax_epic, "EPIC (mean over seeds)"), (ax_std, "std of EPIC across seeds")):
            if ax.lines:
                _budget_axis(ax, sorted(at["budget"].unique()))
                ax.set_yscale("log")
                for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                    axis(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.tick_params(axis="y", which="both", labelsize=7)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("comparisons asked (human effort, log scale)")
            ax.set_title(name, fontsize=9)
            ax.grid(alpha=0.3)
        own_ties = ties[(ties.apply(label, axis=1) == name) & (ties["ties"] != "none")] if len(ties) else ties
        for j, (teacher, by_teacher) in enumerate(own_ties.groupby("teacher", sort=True) if len(own_ties) else []):
            for learner, line in by_teacher.groupby("ties", sort=True):
                line = line.sort_values("budget")
                ax_tie.plot(line["budget"], line["tie"], "-" if learner == "rao-kupper" else "--", color=f"C{j + 5}",
                            marker="o", ms=3.5, mfc="none", lw=1.2, label=f"{learner} learner, {teacher}")
                _interval(ax_tie, line["budget"], line["tie"], line["tie_ci_low"], line["tie_ci_high"], f"C{j + 5}",
                          False)
            ax_tie.axhline(by_teacher["teacher_tie"].iloc[0], color=f"C{j + 5}", ls=":", lw=1)
        if len(own_ties):
            _budget_axis(ax_tie, sorted(own_ties["budget"].unique()))
            ax_tie.set_ylim(0, 1)
            ax_tie.legend(fontsize=6, frameon=False)
            ax_tie.set_ylabel("P(tie | equal returns)")
            ax_tie.set_xlabel("comparisons asked (log scale)")
            ax_tie.set_title(f"{name}: tie calibration", fontsize=9)
            ax_tie.grid(alpha=0.3)
        else:
            ax_tie.axis("off")
    handles: dict[str, Artist] = {}
    for ax in axes[:, 0]:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(text, handle)
    fig.tight_layout(rect=(0, 0.5 / (3.2 * len(names) + 0.5) + 0.02, 1, 1))
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=7, fontsize=7, frameon=False)
    return _save(fig, path, tight=False)
