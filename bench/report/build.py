"""``python -m bench report``: tables, figures and the reader's front page, from stored runs.

A report says only what its runs support: the seed figures appear when the
seed configurations are in the runs (drawn by replaying the stored cell, which
must reproduce its stored metrics), the teacher section when a task was run
with several teachers, and the provenance and regenerate commands come from the
stores, never from the environment running the report. Runs made by different
code or kernels are not reported together. Convergence outputs
(``convergence.csv``/``.md`` and the figures) depend only on the stored
results: no timestamps, no machine names. The report writes only into a
directory it owns (:mod:`bench.outputs`).
"""

from __future__ import annotations

import itertools
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

import rlhf

from .. import outputs, provenance
from ..errors import BenchError
from ..gate.check import load_run, varying_fields
from ..provenance import Provenance
from ..sweep.config import SHOWN_COLUMNS, CellConfig, group_columns, preset_cell
from ..sweep.store import Store
from . import ecosystem, figures, preference_models, queries
from .stats import CONFIDENCE, summarize

METRICS = ["tv", "regret", "goal_hit", "exact_match", "position_accuracy", "epic", "pref_accuracy", "scaled_return",
           "near_optimal"]
SUCCESS_TARGET = 0.9
PATH_ROUNDS = (1, 2, 3, 5, 10, 20, 50, 100, 150, 200)
STRING_TABLE_BUDGETS = (10, 200)


@dataclass(frozen=True)
class Run:
    """One run directory as the report reads it."""

    path: Path
    meta: dict[str, str]
    rows: dict[str, dict]
    """The store's rows by cell key."""
    provenance: Provenance
    """The provenance its cells share (the first cell's: a run is one code and kernel set)."""


def write_report(runs: list[Path], to: Path, command: str = "") -> list[Path]:
    """Write the report for ``runs`` into ``to``; returns the files written."""
    loaded = [_load(path) for path in runs]
    _same_provenance(loaded)
    stored = {key: row for run in loaded for key, row in run.rows.items()}     # every run's cells by key
    cells = pd.concat([load_run(r) for r in runs], ignore_index=True)
    # Runs may share cells (same config hash): count each once.
    cells = cells.drop_duplicates(subset=[*group_columns(), "seed"], ignore_index=True)
    metrics = [m for m in METRICS if m in cells]
    # random worlds are hundreds of configurations, aggregated over worlds in a section of their own;
    # imported environments have theirs too
    summary = summarize(ecosystem.without_envs(preference_models.without_worlds(cells)), metrics)
    extra = tuple(sorted(varying_fields(summary[group_columns()].to_dict("records")) - set(SHOWN_COLUMNS)))
    timings = "timings.md" in outputs.owned(to)
    main = queries.without_methods(summary)     # the query rules have a section of their own
    with outputs.publishing(to, "report") as stage:
        written = _tables(summary, extra, stage)
        panels = [("success", "success rate"), ("epic", "EPIC distance")]
        for task in sorted(main["task"].unique()):
            written.append(figures.sample_efficiency(_main_rows(main, task, extra), task, panels,
                                                     stage / f"sample_efficiency_{task}.png"))
            teachers = _teacher_rows(main, task)
            if teachers is not None:     # a line's label names only what varies between its lines
                varying = tuple(c for c in extra if teachers[c].nunique() > 1)
                written.append(figures.sample_efficiency(teachers, task, panels, stage / f"teachers_{task}.png",
                                                         line_by="teacher", extra=varying))
        query_lines, query_figures = queries.section(summary, cells, SUCCESS_TARGET, stage)
        preference_lines, preference_files = preference_models.section(cells, stage)
        ecosystem_lines, ecosystem_files = ecosystem.section(cells, stage)
        seed_figures, notes = _seed_figures(stored, loaded[0].provenance, stage)
        written += seed_figures
        page = _front_page(loaded, stored, cells, main, extra, stage, written, notes, timings, command,
                           [*query_lines, *preference_lines, *ecosystem_lines])
        written += [*query_figures, *preference_files, *ecosystem_files, page]
        names = [p.name for p in written]
    return [to / name for name in names]


def _load(path: Path) -> Run:
    with Store.open_existing(path) as store:
        meta, rows = store.meta(), {r["key"]: r for r in store.rows()}
    if not rows:
        raise BenchError(f"{path}: the run has no stored cells")
    return Run(path, meta, rows, next(iter(rows.values()))["provenance"])


def _same_provenance(runs: list[Run]) -> None:
    """Refuse to pool runs (or cells of one run) made by different code or kernels."""
    first = runs[0]
    for run in runs:
        for row in run.rows.values():
            differs = first.provenance.differences(row["provenance"])
            if differs:
                raise BenchError(f"{first.path} and {run.path} were made by different code or kernels "
                                 f"({', '.join(differs)}); rerun one of them so that both come from the same code")


def _main_rows(summary: pd.DataFrame, task: str, extra: tuple[str, ...]) -> pd.DataFrame:
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
                  f"Mean over seeds with {CONFIDENCE:.0%} percentile-bootstrap CI; IQM in convergence.csv. "
                  "`success` is the task's `converged` rule (see README); a failed cell counts as not converged.\n\n"
                  + _markdown(summary, extra) + "\n")
    return [csv, md]


def _markdown(summary: pd.DataFrame, extra: tuple[str, ...]) -> str:
    def ci(row, name, fmt):
        if f"{name}_mean" not in row or pd.isna(row[f"{name}_mean"]):
            return ""
        return f"{row[f'{name}_mean']:{fmt}} [{row[f'{name}_ci_low']:{fmt}}, {row[f'{name}_ci_high']:{fmt}}]"
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


def _seed_figures(rows: dict[str, dict], made_by: Provenance, to: Path) -> tuple[list[Path], list[str]]:
    """The gridworld seed's three figures and the string lab's tables, for the seed
    configurations among the stored ``rows`` (seed 0), by replaying the stored cell; and
    notes on figures left out."""
    grid = rows.get(preset_cell("seed-gridworld").key)
    tables_cells = {b: preset_cell("seed-strings", budget=b) for b in STRING_TABLE_BUDGETS}
    tables_rows = {b: rows.get(c.key) for b, c in tables_cells.items()}
    if grid is None and not any(tables_rows.values()):
        return [], []
    here = provenance.current(with_git=False)
    differs = here.differences(made_by)
    if differs:
        return [], [f"The seed figures are left out: drawing them replays the stored cells, which needs the code "
                    f"and kernels that made the run ({', '.join(differs)} here)."]
    written: list[Path] = []
    if grid is not None:
        cell = preset_cell("seed-gridworld")
        task = cell.make_task()
        paths: dict[int, torch.Tensor] = {}

        def keep_paths(record: rlhf.RoundRecord) -> None:
            if record.index + 1 in PATH_ROUNDS:
                paths[record.index + 1] = record.first.states[:10].clone()

        result = _replay(cell, grid, keep_paths)
        assert isinstance(task, rlhf.GridWorld)
        written += [figures.gridworld_paths(task, paths, to / "seed_gridworld_paths.png"),
                    figures.training_curves(grid["history"], to / "seed_gridworld_training.png"),
                    figures.reward_heatmaps(task, result.reward.exp(), to / "seed_gridworld_rewards.png")]
    if all(tables_rows.values()):
        strings = tables_cells[STRING_TABLE_BUDGETS[0]].make_task()
        assert isinstance(strings, rlhf.StringTask)
        tables = {f"{b} pairs": _replay(tables_cells[b], row).reward      # every row is there (checked above)
                  for b, row in tables_rows.items() if row is not None}
        written.append(figures.string_tables(strings, tables, to / "seed_strings_tables.png"))
    return written, []


def _replay(cell: CellConfig, stored: dict, on_round=None) -> rlhf.RunResult:
    """Train a stored cell again (for what the store does not keep: paths, the learned reward);
    it must reproduce the stored metrics exactly."""
    result = rlhf.train(cell.make_task(), seed=cell.seed, config=cell.train, on_round=on_round)
    same = all(stored["metrics"].get(k) == v or (math.isnan(v) and math.isnan(stored["metrics"].get(k, 0.0)))
               for k, v in result.metrics.items())
    if not same:
        raise BenchError(f"replaying cell {cell.key} ({cell.task}, seed {cell.seed}) did not reproduce its stored "
                         "metrics: the run is not deterministic here")
    return result


def _findings(summary: pd.DataFrame, extra: tuple[str, ...]) -> list[str]:
    """Plain-words findings computed from the table (nothing here is hand-written per run)."""
    lines = []
    keys = [c for c in group_columns() if c != "budget"]
    per_task = {str(task): varying_fields(rows[group_columns()].to_dict("records")) & set(extra)
                for task, rows in summary.groupby("task")}
    for key, rows in summary.groupby(keys, sort=True, dropna=False):
        rows = rows.sort_values("budget")
        fields = dict(zip(keys, key, strict=True))
        name = (f"{fields['task']} {'N' if fields['task'] == 'gridworld' else 'L'} = {fields['size']}, "
                f"slip {fields['slip']:g}" + (f", {fields['start']} start" if fields["start"] else "")
                + f", teacher {fields['teacher']}"
                + "".join(f", {k} {fields[k]}" for k in sorted(per_task[str(fields["task"])])))
        hit = rows[rows["success_mean"] >= SUCCESS_TARGET]
        if len(hit):
            line = f"{name}: ≥ {SUCCESS_TARGET:.0%} success from {int(hit['budget'].iloc[0])} pairs"
        else:
            # pandas-stubs: .loc[] does not accept the Hashable label that idxmax() is typed to return
            best = rows.loc[rows["success_mean"].idxmax()]  # type: ignore[call-overload]
            line = (f"{name}: never reaches {SUCCESS_TARGET:.0%} success "
                    f"(best {best['success_mean']:.0%} at {int(best['budget'])} pairs)")
        if "near_optimal_mean" in rows:
            last = rows.iloc[-1]
            line += f"; near-optimal in {last['near_optimal_mean']:.0%} of seeds at {int(last['budget'])} pairs"
        lines.append(line + ".")
    return lines


def _corner_finding(summary: pd.DataFrame, tied_rounds: float | None) -> str | None:
    corner = summary[(summary["task"] == "gridworld") & (summary["start"] == "corner") & (summary["size"] >= 10)]
    uniform = summary[(summary["task"] == "gridworld") & (summary["start"] == "uniform") & (summary["size"] >= 10)]
    if corner.empty:
        return None
    text = (f"**The corner-start failure.** With the seed's corner start, grids of N ≥ 10 reach "
            f"{corner['success_mean'].max():.0%} success at best across {len(corner)} configurations.")
    if tied_rounds is not None:
        text += (f" In {tied_rounds:.1%} of their training rounds the teacher's preference entropy was exactly "
                 "ln 2 — no sampled trajectory reached the goal within the horizon of 30, so every segment had the "
                 "same true return, the labels were coin flips and the learned reward got no signal.")
    if not uniform.empty:
        text += (f" Starting uniformly over non-goal cells (the seed's own default when no start is given) "
                 f"escapes it: up to {uniform['success_mean'].max():.0%} success at the same sizes.")
    return text


def _tied_round_share(rows: list[dict]) -> float | None:
    """Share of training rounds, over corner-start gridworld cells with N ≥ 10, where the teacher
    saw only ties (entropy ln 2)."""
    entropies = [e for r in rows if r["config"]["task"] == "gridworld" and r["config"]["start"] == "corner"
                 and r["config"]["size"] >= 10 for e in r["history"].get("entropy", [])]
    if not entropies:
        return None
    return sum(abs(e - math.log(2)) < 1e-6 for e in entropies) / len(entropies)


NOISE_FAMILIES = {   # teacher specs ordered from least to most noisy
    "mistake ε (Boltzmann β = 1)": ["boltzmann:1", "boltzmann:1+mistake:0.1", "boltzmann:1+mistake:0.3"],
    "mistake ε (oracle)": ["oracle", "oracle+mistake:0.1", "oracle+mistake:0.3"],
    "Boltzmann β": ["oracle", "boltzmann:1", "boltzmann:0.3", "boltzmann:0.1"],
}


def _teacher_rows(summary: pd.DataFrame, task: str) -> pd.DataFrame | None:
    """The teacher sweep's configurations of a task (slip 0, at the size and start mode with the
    most teachers), or None when the task was run with one teacher only."""
    rows = summary[(summary["task"] == task) & (summary["slip"] == 0)]
    if rows["teacher"].nunique() < 2:
        return None
    rows = rows[rows["size"] == rows.groupby("size")["teacher"].nunique().idxmax()]
    return rows[rows["start"] == rows.groupby("start")["teacher"].nunique().idxmax()]


def _teacher_section(summary: pd.DataFrame) -> list[str]:
    """Per task with several teachers: success by budget per teacher, EPIC at the largest budget,
    and whether more noise means more pairs, read off the numbers."""
    lines: list[str] = []
    for task in sorted(summary["task"].unique()):
        rows = _teacher_rows(summary, task)
        if rows is None:
            continue
        size, start = rows["size"].iloc[0], rows["start"].iloc[0]
        budgets = sorted(set.intersection(*[set(g["budget"]) for _, g in rows.groupby("teacher")]))
        rows = rows[rows["budget"].isin(budgets)]
        top = budgets[-1]
        table = []
        for teacher, g in rows.groupby("teacher", sort=False):
            g = g.set_index("budget")
            entry = {"teacher": str(teacher)}
            entry |= {f"success @ {b}": f"{g.loc[b, 'success_mean']:.0%}" for b in budgets}
            entry[f"EPIC @ {top}"] = (f"{g.loc[top, 'epic_mean']:.3f} [{g.loc[top, 'epic_ci_low']:.3f}, "
                                      f"{g.loc[top, 'epic_ci_high']:.3f}]")
            entry[f"pref. acc. @ {top}"] = f"{g.loc[top, 'pref_accuracy_mean']:.3f}"
            if "near_optimal_mean" in g:
                entry[f"near-opt. @ {top}"] = f"{g.loc[top, 'near_optimal_mean']:.0%}"
            table.append(entry)
        table.sort(key=lambda e: float(e[f"EPIC @ {top}"].split()[0]))
        name = f"{task}, {'N' if task == 'gridworld' else 'L'} = {size}" + (f", {start} start" if start else "")
        lines += [f"### Teachers: {name}", "", "Ordered by EPIC distance at the largest budget (closest first).", "",
                  pd.DataFrame(table).to_markdown(index=False), ""]
        epic = {t: g.set_index("budget").loc[top, "epic_mean"] for t, g in rows.groupby("teacher")}
        for family, order in NOISE_FAMILIES.items():
            seen = [t for t in order if t in epic]
            if len(seen) < 3:
                continue
            values = [epic[t] for t in seen]
            monotone = all(a <= b + 1e-9 for a, b in itertools.pairwise(values))
            chain = " → ".join(f"{t} {v:.3f}" for t, v in zip(seen, values, strict=True))
            lines.append(f"- {family}, EPIC at {top} pairs: {chain}: "
                         + ("more noise, farther from the true reward (monotone)." if monotone
                            else "not monotone in the noise level."))
        lines.append("")
    if lines:
        lines = ["## Irrational teachers", "",
                 "The B-Pref teacher family (`bench/configs/teachers.toml`, slip 0). A teacher's noise bounds how "
                 "large a preference logit the data supports, so Bradley–Terry learns a *compressed* reward: its "
                 "ranking of segments can stay good (preference accuracy) while planning on it at temperature 1 "
                 "is close to random — the success rate falls much faster than the accuracy.", "", *lines]
    return lines


def _front_page(runs: list[Run], rows: dict[str, dict], cells: pd.DataFrame, summary: pd.DataFrame,
                extra: tuple[str, ...], to: Path, written: list[Path], notes: list[str], timings: bool,
                command: str, sections: list[str]) -> Path:
    wall = sum(r["wall_s"] for r in rows.values())
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
    lines += ["## What converges, and with how many pairs", ""]
    corner = _corner_finding(summary, _tied_round_share(list(rows.values())))
    if corner:
        lines += [corner, ""]
    lines += ["Smallest budget reaching the success target, per configuration:", ""]
    lines += [f"- {f}" for f in _findings(summary, extra)]
    lines += ["", "Success means: gridworld — the learned reward's argmax is the goal and planning on it *softly at "
              "temperature 1* loses at most 10% of the truth's advantage over a random policy (normalised regret "
              "≤ 0.1); strings — the greedy string equals the target. A failed cell counts as not converged. "
              "Beside it, *near-optimal* is Knox et al.'s scale-free criterion: the greedy (hard-max) policy for "
              "the learned reward has scaled return (J − J_uniform) / (V* − J_uniform) ≥ 0.9 under the true reward. "
              "Soft planning also needs the reward's *scale*, so a noisy teacher, whose labels bound the "
              "Bradley–Terry logits, can leave a reward that ranks behaviour well (near-optimal) yet plans nearly "
              "at random at temperature 1 (not a success). Full table with CIs: "
              "[convergence.md](convergence.md), numbers: [convergence.csv](convergence.csv).", ""]
    lines += _teacher_section(summary)
    lines += sections      # the query-rule, preference-model and ecosystem sections
    lines += ["## Figures", ""]
    lines += [f"{note}\n" for note in notes]
    for path in written:
        if path.suffix == ".png":
            lines += [f"### {path.stem.replace('_', ' ')}", "", f"![{path.stem}]({path.name})", ""]
    if timings:
        lines += ["## Hot-path timings", "", "See [timings.md](timings.md) and ![scaling](timings_scaling.png)", ""]
    lines += ["## Regenerate", "", "The commands that made these runs and this report:", "", "```"]
    lines += [run.meta["command"] for run in runs if run.meta.get("command")]
    lines += [command or "python -m bench report " + " ".join(f"--run {shlex.quote(str(r.path))}" for r in runs),
              "```", ""]
    page = to / "README.md"
    page.write_text("\n".join(lines))
    return page
