"""The report's ecosystem section (#15): Gymnasium and seals environments as tasks.

Per environment (and teacher and method, when several were run): the *median seed's first
budget near-optimal* — per seed, the first swept budget at which its learned reward's greedy
policy is near-optimal; the lower median over seeds, with a percentile-bootstrap CI over seeds
(a statistic of a typical seed, unlike the query section's budget at which *mean* success
reaches the target) — the share of seeds
near-optimal at each budget, and whether the greedy policy's expected return reaches the
environment's registered ``reward_threshold`` where one is registered and the optimum reaches it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import rlhf

from ..sweep.config import group_columns
from . import bootstrap, figures
from .bootstrap import CONFIDENCE
from .section import Figure, ReportInputs, SectionOutput
from .stats import bootstrap_rng, budget_text, learner_note, proportion_interval

_SETTING = [c for c in group_columns() if c != "budget"]


def without_envs(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the rest of the report is about."""
    return frame[~frame["task"].isin(rlhf.registered_tasks(tag="environment"))]


def first_near_optimal(cells: pd.DataFrame) -> pd.Series:
    """Per seed of one setting: the first swept budget at which it is near-optimal (inf: never;
    a failed cell is not near-optimal)."""
    near = cells.assign(hit=(cells["status"] == "done") & (cells["near_optimal"] == 1.0))
    hits = near[near["hit"]].groupby("seed")["budget"].min()
    return pd.Series({seed: float(hits.get(seed, np.inf)) for seed in sorted(cells["seed"].unique())})


def median_first_near_optimal(first: np.ndarray, fields: dict) -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)``: the median seed's first budget near-optimal — the lower
    median of the per-seed budgets ``first`` (:func:`first_near_optimal`: a swept budget, or inf)
    — and its percentile-bootstrap CI over seeds, seeded by the setting's ``fields``."""
    low, high = bootstrap.interval(first, bootstrap.lower_median, bootstrap_rng(fields), discrete=True)
    return float(np.sort(first)[(len(first) - 1) // 2]), low, high


def table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: the median seed's first budget near-optimal (``pairs_to_near_optimal``,
    CI), near-optimal share per budget with its Wilson interval (``near_optimal_low@B``,
    ``near_optimal_high@B``), and the threshold columns."""
    rows = []
    envs = cells[cells["task"].isin(rlhf.registered_tasks(tag="environment"))]
    for key, setting in envs.groupby(_SETTING, sort=True, dropna=False):
        fields = dict(zip(_SETTING, key, strict=True))
        median_first, low, high = median_first_near_optimal(first_near_optimal(setting).to_numpy(), fields)
        top = setting[setting["budget"] == setting["budget"].max()]
        optimum = float(top["optimal_return"].dropna().iloc[0]) if top["optimal_return"].notna().any() else np.nan
        registered = top["reward_threshold"].dropna() if "reward_threshold" in top else pd.Series(dtype=float)
        threshold = float(registered.iloc[0]) if len(registered) else None
        reachable = threshold is not None and optimum >= threshold
        reached = ((top["status"] == "done") & (top["greedy_return"] >= (threshold or 0.0))).mean() if reachable \
            else np.nan
        row = {**fields, "seeds": setting["seed"].nunique(), "pairs_to_near_optimal": median_first, "ci_low": low,
               "ci_high": high, "reward_threshold": threshold if threshold is not None else np.nan,
               "optimal_return": optimum, "threshold_reached_share": reached, "top_budget": int(top["budget"].iloc[0])}
        hits = {str(budget): ((at["status"] == "done") & (at["near_optimal"] == 1.0)).to_numpy(dtype=float)
                for budget, at in setting.groupby("budget")}
        for budget, hit in hits.items():
            row[f"near_optimal@{budget}"] = float(hit.mean())
        for budget, hit in hits.items():      # Wilson intervals of the shares, after them (columns keep their place)
            row[f"near_optimal_low@{budget}"], row[f"near_optimal_high@{budget}"] = proportion_interval(hit)
        rows.append(row)
    return pd.DataFrame(rows)


def section(inputs: ReportInputs) -> SectionOutput:
    """The section's Markdown lines and its files (a CSV and a figure, into the stage); nothing without env cells."""
    cells, to = inputs.cells, inputs.stage
    if not cells["task"].isin(rlhf.registered_tasks(tag="environment")).any():
        return SectionOutput()
    rows = table(cells)
    csv = to / "ecosystem.csv"
    rows.to_csv(csv, index=False, float_format="%.6g")
    varying = [c for c in _SETTING if c not in ("task", "env", "size", "horizon") and rows[c].nunique() > 1]
    rows["line"] = [", ".join([str(r["env"]), *(f"{c} {r[c]}" for c in varying)]) for _, r in rows.iterrows()]
    rows["panel"] = [", ".join(f"{c} {r[c]}" for c in varying) or "all" for _, r in rows.iterrows()]
    figure = figures.ecosystem(rows, to / "ecosystem.png")
    shown = []
    for _, r in rows.iterrows():
        top = r["top_budget"]
        threshold = ("none registered" if np.isnan(r["reward_threshold"]) else
                     f"{r['reward_threshold']:g}: not reachable (V* = {r['optimal_return']:.3g})"
                     if np.isnan(r["threshold_reached_share"]) else
                     f"{r['reward_threshold']:g}: {r['threshold_reached_share']:.0%} of seeds")
        shown.append({"environment": r["env"], "states": r["size"], "H": r["horizon"],
                      **{c: r[c] for c in varying},
                      "pairs to near-optimal (median seed)": budget_text(r["pairs_to_near_optimal"], top),
                      "CI": f"[{budget_text(r['ci_low'], top)}, {budget_text(r['ci_high'], top)}]",
                      "seeds": r["seeds"],
                      f"near-opt. @ {top}": f"{r[f'near_optimal@{top}']:.2f} [{r[f'near_optimal_low@{top}']:.2f}, "
                                            f"{r[f'near_optimal_high@{top}']:.2f}]",
                      f"reward_threshold @ {top}": threshold})
    seeds = int(rows["seeds"].max())
    lines = ["## Tasks from the ecosystem: Gymnasium and seals", "",
             "`bench/configs/ecosystem.toml`: Gymnasium toy-text and seals tabular environments imported with "
             "`rlhf.from_gymnasium` / `rlhf.from_seals` and run through the same loop, teachers and metrics. "
             "A Boltzmann teacher's β applies to the environment's own reward scale, and rewards are expected "
             "rewards of (state, action): on slippery FrozenLake a step toward the goal is worth at most 1/3, so "
             "β = 1 labels are close to coin flips there. "
             "*Pairs to near-optimal*: per seed, the first swept budget at which the learned reward's greedy "
             f"policy has scaled return ≥ {rlhf.NEAR_OPTIMAL_SCALED_RETURN}; the median over {seeds} seeds with a "
             f"{CONFIDENCE:.0%} bootstrap CI over seeds. *near-opt.*: the share of seeds near-optimal at the largest "
             f"budget, with a {CONFIDENCE:.0%} Wilson interval. *reward_threshold*: the share of seeds whose greedy "
             "policy's expected return in H steps reaches the environment's registered threshold, where one is "
             "registered and the optimum V* reaches it. Numbers: [ecosystem.csv](ecosystem.csv); figure: "
             "*near-optimal share by budget* in [Figures](#figures).", "",
             pd.DataFrame(shown).to_markdown(index=False), "",
             *learner_note(cells[cells["task"].isin(rlhf.registered_tasks(tag="environment"))]), *_findings(rows)]
    return SectionOutput(lines=lines, files=[csv, figure], figures=[Figure(figure, _TITLE, _caption(rows, seeds))])


_TITLE = "Ecosystem environments: near-optimal share by budget"


def _caption(rows: pd.DataFrame, seeds: int) -> str:
    """What to look at in the ecosystem figure, read off its numbers."""
    columns = [c for c in rows.columns if c.startswith("near_optimal@")]
    never = sorted({str(r["env"]) for _, r in rows.iterrows()} -
                   {str(r["env"]) for _, r in rows.iterrows() if (r[columns].fillna(0) > 0).any()})
    gaps = []
    if rows["panel"].nunique() == 2:         # two teachers: where they differ most at the largest budget
        a, b = sorted(rows["panel"].unique())
        top = rows.set_index(["env", "panel"])
        for env in dict.fromkeys(rows["env"]):
            if (env, a) in top.index and (env, b) in top.index:
                budget = min(top.loc[(env, a), "top_budget"], top.loc[(env, b), "top_budget"])
                gap = top.loc[(env, b), f"near_optimal@{budget}"] - top.loc[(env, a), f"near_optimal@{budget}"]
                gaps.append((abs(gap), env, gap, budget, a, b))
    text = (f"Share of the {seeds} seeds whose learned reward's greedy policy is near-optimal (scaled return ≥ "
            f"{rlhf.NEAR_OPTIMAL_SCALED_RETURN}), against preference pairs on a log axis; one panel per "
            + ("teacher" if rows["panel"].nunique() > 1 else "setting")
            + f", one line per environment (the same colour and marker in every panel); bars: {CONFIDENCE:.0%} "
            "Wilson intervals over seeds. Points are spread up to "
            f"{figures.max_dodge(int(rows.groupby('panel').size().max())):.0%} sideways so that lines at the same "
            "share stay visible.")
    if never:
        text += " At 0 at every budget with every teacher: " + ", ".join(never) + "."
    if gaps:
        _, env, gap, budget, a, b = max(gaps)
        text += (f" The largest gap between the panels is {env}: {abs(gap):.0%} more seeds near-optimal with "
                 f"{b if gap > 0 else a} than with {a if gap > 0 else b} at {budget} pairs.")
    return text


def _findings(rows: pd.DataFrame) -> list[str]:
    solved = rows[np.isfinite(rows["pairs_to_near_optimal"])].sort_values("pairs_to_near_optimal")
    unsolved = rows[~np.isfinite(rows["pairs_to_near_optimal"])]
    lines = ["### Findings", ""]
    if len(solved):
        lines.append("- The median seed becomes near-optimal within the sweep on " + ", ".join(
            f"{r['line']} ({r['pairs_to_near_optimal']:.0f} pairs)" for _, r in solved.iterrows()) + ".")
    if len(unsolved):
        lines.append("- It does not within the sweep on " + ", ".join(
            f"{r['line']} ({r[f'near_optimal@{r.top_budget}']:.0%} of seeds near-optimal at {r.top_budget})"
            for _, r in unsolved.iterrows()) + ".")
    unreachable = rows[rows["reward_threshold"].notna() & rows["threshold_reached_share"].isna()]
    for _, r in unreachable.drop_duplicates(["env", "horizon"]).iterrows():
        lines.append(f"- {r['env']}: its reward_threshold {r['reward_threshold']:g} is above the optimal "
                     f"expected return in {r['horizon']} steps (V* = {r['optimal_return']:.3f}), so no policy "
                     "reaches it in expectation.")
    for _, r in rows[rows["threshold_reached_share"].notna()].iterrows():
        lines.append(f"- {r['line']}: {r['threshold_reached_share']:.0%} of seeds reach its reward_threshold "
                     f"{r['reward_threshold']:g} at {r['top_budget']} pairs (V* = {r['optimal_return']:.3f}).")
    return [*lines, ""]
