"""``python -m bench report``: tables, figures and the reader's front page, from stored runs.

The report is a list of sections (:data:`SECTIONS`), each one module answering one
question (:mod:`bench.report.section` says what a section takes and returns). This module
loads the runs, builds the inputs every section shares, runs the sections in order and lays
out the front page: the runs and their provenance, each section's Markdown, the figure
gallery, and the commands that regenerate it all.

A report says only what its runs support: a section with nothing to read returns nothing,
and the provenance and regenerate commands come from the stores, never from the environment
running the report. Runs made by different code or kernels are not reported together.
Tables and figures depend only on the stored results: no timestamps, no machine names. The
report writes only into a directory it owns (:mod:`bench.outputs`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd

from .. import outputs
from ..sweep.config import SHOWN_COLUMNS, group_columns, grouping_columns
from . import (
    alignment,
    convergence,
    ecosystem,
    overoptimisation,
    overoptimisation_data,
    preference_models,
    preset_figures,
    queries,
    rankings,
    teachers,
)
from .parallel import run_sections
from .runs import Run, load_run, load_store, same_provenance
from .section import ReportInputs, Section, SectionOutput
from .stats import summarize, varying_fields

METRICS = ["tv", "regret", "goal_hit", "exact_match", "position_accuracy", "epic", "pref_accuracy", "scaled_return",
           "near_optimal"]
"""Metrics the per-configuration summary aggregates (those the cells have)."""

SECTIONS: tuple[Section, ...] = (
    convergence.section,          # what converges, and with how many pairs (tables, sample-efficiency figures)
    teachers.section,             # irrational teachers
    queries.section,              # which pairs to ask: query rules
    preference_models.section,    # partial return vs regret
    ecosystem.section,            # Gymnasium and seals environments
    preset_figures.section,       # the teaching examples' own figures
    rankings.section,             # rankings of K segments against pairs, and ties
    alignment.section,            # from preferences to policies: alignment methods against the exact optimum
    overoptimisation.section,     # reward over-optimisation: Gao et al.'s curves, exact
)
"""The report's sections, in the order of the front page."""


def write_report(runs: list[Path], to: Path, command: str = "", workers: int | None = None) -> list[Path]:
    """Write the report for ``runs`` into ``to``; returns the files written. ``workers``: processes the
    sections run in (:func:`~bench.report.parallel.run_sections`; None: one per usable core)."""
    loaded = [load_store(path) for path in runs]
    same_provenance(loaded)
    tables = []                  # each run's (alignment cells, over-optimisation cells, the others)
    for run in runs:
        paths, rest = overoptimisation_data.split(load_run(run))
        tables.append((*alignment.split(rest), paths))
    cells, aligned, paths = (_pooled([t[k] for t in tables]) for k in (1, 0, 2))
    # Runs may share cells (same config hash): count each once.
    cells = cells.drop_duplicates(subset=[*grouping_columns(cells), "seed"], ignore_index=True)
    aligned = aligned.drop_duplicates(subset=[*grouping_columns(aligned), "seed"], ignore_index=True)
    paths = paths.drop_duplicates(subset=[*grouping_columns(paths), "seed"], ignore_index=True)
    ranked, cells = rankings.split(cells)            # (settings with rankings or ties, every other cell)
    timings = "timings.md" in outputs.owned(to)
    with outputs.publishing(to, "report") as stage:
        inputs = report_inputs(cells, stage, loaded, aligned, paths, ranked)
        done = run_sections(SECTIONS, inputs, workers, first=HEAVY_FIRST)
        page = _front_page(inputs, done, timings, command)
        names = [p.name for out in done for p in out.files] + [page.name]
    return [to / name for name in names]


HEAVY_FIRST = (queries.section, overoptimisation.section, alignment.section, convergence.section)
"""Sections that take most of a report's time (seconds each: their figures), started first so that
the last one to finish is a short one (:func:`bench.report.parallel.run_sections`)."""


def _pooled(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The runs' tables as one; a run with no such cells adds neither rows nor its columns."""
    kept = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(kept, ignore_index=True)


def report_inputs(cells: pd.DataFrame, stage: Path, runs: list[Run] | tuple[Run, ...] = (),
                  aligned: pd.DataFrame | None = None, paths: pd.DataFrame | None = None,
                  ranked: pd.DataFrame | None = None) -> ReportInputs:
    """What every section reads: ``cells`` (one row per cell), their per-configuration summary
    (random worlds and imported environments are aggregated by their own sections), the summary
    without query-rule families, the fields that vary, the runs' stored rows, and the alignment
    cells (``aligned``), the over-optimisation cells (``paths``) and the settings with rankings or ties
    (``ranked``): their own sections'."""
    metrics = [m for m in METRICS if m in cells]
    summary = summarize(ecosystem.without_envs(preference_models.without_worlds(cells)), metrics)
    extra = tuple(sorted(varying_fields(summary[group_columns()].to_dict("records")) - set(SHOWN_COLUMNS)))
    stored = {key: row for run in runs for key, row in run.rows.items()}     # every run's cells by key
    return ReportInputs(cells=cells, summary=summary, main=queries.without_methods(summary), extra=extra,
                        stage=stage, runs=tuple(runs), stored=stored,
                        aligned=pd.DataFrame() if aligned is None else aligned,
                        paths=pd.DataFrame() if paths is None else paths,
                        ranked=pd.DataFrame() if ranked is None else ranked)


def _front_page(inputs: ReportInputs, sections: list[SectionOutput], timings: bool, command: str) -> Path:
    """``README.md``: the runs, every section's Markdown, the figure gallery, how to regenerate."""
    runs = inputs.runs
    cells = _pooled([inputs.cells, *(f for f in (inputs.ranked, inputs.aligned, inputs.paths) if len(f))])
    wall = sum(r["wall_s"] for r in inputs.stored.values())
    failed = cells[cells["status"] != "done"]
    lines = ["# rlhf-bench report", "", "Generated by `python -m bench report` from the runs below.", "",
             "## Runs", ""]
    for run in runs:
        lines.append(f"- `{run.path}`: config `{run.meta.get('config', '?')}`, {len(run.rows)} cells")
    lines += ["", f"Made by {runs[0].provenance.describe()}.", "",
              f"{len(cells)} cells ({len(failed)} failed), compute {wall:.0f} s summed over cells.", ""]
    if len(failed):
        lines += ["### Failed cells", "", failed[["task", "size", "slip", "budget", "teacher", "seed", "error"]]
                  .to_markdown(index=False), ""]
    for out in sections:
        lines += out.lines
    lines += ["## Figures", ""]
    lines += [f"{note}\n" for out in sections for note in out.notes]
    for figure in (figure for out in sections for figure in out.figures):
        lines += [f"### {figure.title}", "", figure.caption, "", f"![{figure.path.stem}]({figure.path.name})", ""]
    if timings:
        lines += ["## Hot-path timings", "", "See [timings.md](timings.md) and ![scaling](timings_scaling.png)", ""]
    lines += ["## Regenerate", "", "The commands that made these runs and this report:", "", "```"]
    lines += [run.meta["command"] for run in runs if run.meta.get("command")]
    lines += [command or "python -m bench report " + " ".join(f"--run {shlex.quote(str(r.path))}" for r in runs),
              "```", ""]
    page = inputs.stage / "README.md"
    page.write_text("\n".join(lines))
    return page
