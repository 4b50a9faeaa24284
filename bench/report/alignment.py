"""The report's alignment section: from preferences to policies (#24).

It reads the alignment cells (cells with a ``method``, e.g. a run of ``bench/configs/alignment.toml``;
:mod:`bench.sweep.aligning` says how each is made) and writes:

* ``alignment.csv``: per configuration, each metric's mean over seeds with its 95% percentile-bootstrap
  CI (:func:`bench.report.stats.summarize`, the generator seeded by the configuration) and IQM;
* ``alignment_frontier.png``: scaled return against KL of every method's policies, beside the exact
  frontier (:mod:`bench.report.alignment_frontier`);
* ``alignment_toy.csv``: Azar et al.'s IPO/DPO toy, solved exactly here (:mod:`bench.report.alignment_toy`);

and the front page's Markdown: the win-rate tables, the toy table and the findings set against the
papers (:mod:`bench.report.alignment_findings`), each read off those numbers. Nothing without
alignment cells.
"""

from __future__ import annotations

import pandas as pd

import rlhf
from rlhf.policies.evaluation import WIN_RATE_SAMPLES

from ..sweep.config import ALIGNMENT_COLUMNS, instance_label
from . import alignment_findings, alignment_frontier, alignment_toy
from .bootstrap import CONFIDENCE
from .section import Figure, ReportInputs, SectionOutput
from .stats import summarize, values_text

METRICS = ["win_rate", "scaled_return", "true_return", "kl", "regularized_return", "implicit_epic", "ood_mass",
           "ood_action_mass", "reference_ood_mass", "loss"]
"""The per-cell metrics the configuration table aggregates (:mod:`bench.sweep.aligning`)."""


def split(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(alignment cells, every other cell)`` of one run's table; the others without the alignment
    columns, so the rest of the report reads them as it did before alignment cells existed."""
    if "method" not in cells:
        return cells.iloc[0:0], cells
    aligned = cells["method"].fillna("").astype(str) != ""
    rest = cells[~aligned].drop(columns=[c for c in ALIGNMENT_COLUMNS if c in cells])
    return cells[aligned].reset_index(drop=True), rest.reset_index(drop=True)


def section(inputs: ReportInputs) -> SectionOutput:
    """The configuration table, the frontier figure, the win-rate and toy tables, and the findings."""
    cells, stage = inputs.aligned, inputs.stage
    if cells.empty:
        return SectionOutput()
    summary = summarize(cells, [m for m in METRICS if m in cells])
    summary = summary.drop(columns=[c for c in summary.columns if str(c).startswith("success_")])
    table = stage / "alignment.csv"
    summary.to_csv(table, index=False, float_format="%.6g")
    toy = alignment_toy.toy_table()
    toy_csv = stage / "alignment_toy.csv"
    toy.to_csv(toy_csv, index=False, float_format="%.6g")
    title = "From preferences to policies: return against KL"
    figure = Figure(alignment_frontier.figure(summary, stage / "alignment_frontier.png"), title, _caption(summary))
    lines = ["## From preferences to policies", "", _introduction(cells), "",
             "### Win rate against the reference", "",
             f"P(a rollout of the policy beats one of the reference under the true return; ties ½), mean over "
             f"seeds with a {CONFIDENCE:.0%} percentile-bootstrap CI over seeds, at each setting's largest budget. "
             + _exactness(cells), ""]
    lines += win_rate_tables(summary)
    lines += ["### IPO and DPO on Azar et al.'s toys (§5.3–5.4), exact", "",
              "A bandit, a uniform reference and an offline dataset: one certain pair {a ≻ b}, or the three pairs "
              "{a ≻ b, b ≻ c, a ≻ c}. Each method's loss over the dataset is minimised exactly (`rlhf.align(..., "
              "exact=True)`, Newton to max |∇L| ≤ 1e-10) at each τ (the methods' β); IPO's optimum is also "
              "derived in closed form (`bench/report/alignment_toy.py`): π(a) = σ(1/(2τ)) for one pair, "
              "π ∝ (e^{2/(3τ)}, e^{1/(3τ)}, 1) for three. Numbers: [alignment_toy.csv](alignment_toy.csv).", "",
              alignment_toy.markdown(toy), "", "### Findings against the papers", ""]
    lines += [f"- {text}" for text in alignment_findings.findings(cells, toy)]
    lines += [""]
    return SectionOutput(lines=lines, files=[table, toy_csv, figure.path], figures=[figure])


def _introduction(cells: pd.DataFrame) -> str:
    methods = [m for m in rlhf.ALIGNMENT_METHODS.names() if m in set(cells["method"])]
    settings = cells.drop_duplicates(alignment_frontier.setting_columns(cells))
    names = sorted({alignment_findings.instance_name(row) for _, row in settings.iterrows()})
    seeds = cells.groupby([*ALIGNMENT_COLUMNS, "budget", "teacher", *alignment_findings.INSTANCE])["seed"].nunique()
    return (f"Policies fitted to preference pairs by {', '.join(f'`{m}`' for m in methods)} (`rlhf.align_batch`; "
            f"`rlhf` is a Bradley–Terry reward model, then the exact KL-regularised plan on it) on "
            f"{'; '.join(names)}, at β ∈ {{{values_text(cells['beta'])}}}, from {values_text(cells['budget'])} "
            f"pairs, taught by {', '.join(sorted(set(cells['teacher'])))}, against the references "
            f"{', '.join(sorted(set(cells['reference'])))}; {values_text(seeds)} seeds each. A seed's pairs are "
            "rolled out from the reference and labelled by the teacher. Every metric is exact (exact evaluation "
            "and enumeration), except where said: *scaled return* (uniform policy 0, optimum 1), *KL* to the "
            "reference (trajectory KL, nats), the *win rate* against the reference, the *implicit reward*'s EPIC "
            "distance from the truth, and the *out-of-data mass* (probability of a trajectory absent from the "
            "data). Numbers per configuration: [alignment.csv](alignment.csv); figure: *From preferences to "
            "policies* in [Figures](#figures).")


def _exactness(cells: pd.DataFrame) -> str:
    if "win_rate_exact" not in cells:
        return ""
    sampled = [alignment_findings.instance_name(rows.iloc[0]) for _, rows in
               cells.groupby(alignment_findings.INSTANCE, dropna=False) if rows["win_rate_exact"].min() < 1]
    if not sampled:
        return "Every win rate is exact (every pair of trajectories enumerated)."
    return (f"Exact (enumerated) except on {', '.join(sampled)}: there from {WIN_RATE_SAMPLES} sampled pairs "
            "per cell under fixed keys (`win_rate_low`/`win_rate_high` in the CSV: the cell's Wilson interval).")


def win_rate_tables(summary: pd.DataFrame) -> list[str]:
    """One Markdown table per task instance: rows (teacher, reference, method), columns β."""
    lines = []
    order = {m: i for i, m in enumerate(rlhf.ALIGNMENT_METHODS.names())}
    for _key, rows in summary.groupby(alignment_findings.INSTANCE, sort=True, dropna=False):
        first = rows.iloc[0]
        top = rows[rows["budget"] == rows.groupby(["teacher", "reference"])["budget"].transform("max")]
        top = top.assign(order=top["method"].map(lambda m: order.get(str(m), len(order))))
        betas = sorted(top["beta"].unique())
        table = []
        for (teacher, reference, _, method), line in top.groupby(["teacher", "reference", "order", "method"]):
            row = {"teacher": teacher, "reference": reference, "pairs": int(line["budget"].iloc[0]), "method": method}
            for beta in betas:
                at = line[line["beta"] == beta]
                row[f"β = {beta:g}"] = "—" if at.empty or pd.isna(at["win_rate_mean"].iloc[0]) else (
                    f"{at['win_rate_mean'].iloc[0]:.2f} [{at['win_rate_ci_low'].iloc[0]:.2f}, "
                    f"{at['win_rate_ci_high'].iloc[0]:.2f}]")
            table.append(row)
        lines += [f"**{first['task']} {instance_label(first.to_dict())}, slip {float(first['slip']):g}**", "",
                  pd.DataFrame(table).to_markdown(index=False), ""]
    return lines


def _caption(summary: pd.DataFrame) -> str:
    return ("One panel per setting (task instance, teacher, reference) at its largest budget. x: KL(π ‖ π_ref) of "
            "the fitted policy (nats, mean over seeds); y: its scaled return (uniform policy 0, optimum 1; mean "
            f"over seeds, bars: {CONFIDENCE:.0%} bootstrap CI over seeds). Each method's points are its β values "
            f"({values_text(summary['beta'])}), joined in order of β: a larger β keeps the policy closer to the "
            "reference (left). Black dashed: the exact optimum of E[R] − β·KL(π ‖ π_ref) for the true reward "
            "traced over β (`rlhf.kl_regularized_policy`): no policy lies above it, so a method's distance below "
            "the line is what its data and loss cost at that KL. Methods whose points coincide (CPL and DPO under "
            "a uniform reference) show as concentric markers of decreasing size.")
