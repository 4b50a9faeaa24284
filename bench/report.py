"""``python -m bench report``: tables, figures and the reader's front page, from stored runs.

Convergence outputs (``convergence.csv``/``.md`` and the figures) depend only on
the stored results: no timestamps, no machine names. Run metadata (config,
versions, machine, wall time) lives in one place, the "Run" section of
``reports/README.md``.
"""

from __future__ import annotations

import platform
import math
from pathlib import Path

import pandas as pd
import torch

import rlhf

from . import figures
from .check import load_run
from .config import CellConfig
from .stats import CONFIDENCE, GROUP_KEYS, summarize
from .store import Store

METRICS = ["tv", "regret", "goal_hit", "exact_match", "position_accuracy", "epic", "pref_accuracy"]
SUCCESS_TARGET = 0.9
PATH_ROUNDS = (1, 2, 3, 5, 10, 20, 50, 100, 150, 200)


def write_report(runs: list[Path], to: Path) -> list[Path]:
    to.mkdir(parents=True, exist_ok=True)
    cells = pd.concat([load_run(r) for r in runs], ignore_index=True)
    # Runs may share cells (same config hash): count each once.
    cells = cells.drop_duplicates(subset=list(CellConfig.__dataclass_fields__), ignore_index=True)
    metrics = [m for m in METRICS if m in cells]
    summary = summarize(cells, metrics)
    written = _tables(summary, to)
    panels = [("success", "success rate"), ("epic", "EPIC distance")]
    for task in sorted(summary["task"].unique()):
        main = summary[(summary["task"] == task) & (summary["teacher"] == _main_teacher(summary, task))]
        written.append(figures.sample_efficiency(main, task, panels, to / f"sample_efficiency_{task}.png"))
        teachers = _teacher_rows(summary, task)
        if teachers is not None:
            written.append(figures.sample_efficiency(teachers, task, panels, to / f"teachers_{task}.png",
                                                     line_by="teacher"))
    written += _seed_figures(to)
    written.append(_front_page(runs, cells, summary, to, written))
    return written


def _main_teacher(summary: pd.DataFrame, task: str) -> str:
    """The teacher most configurations of a task use (the default sweep's)."""
    return summary[summary["task"] == task]["teacher"].value_counts().index[0]


def _tables(summary: pd.DataFrame, to: Path) -> list[Path]:
    csv = to / "convergence.csv"
    summary.to_csv(csv, index=False, float_format="%.6g")
    md = to / "convergence.md"
    md.write_text("# Convergence by configuration\n\n"
                  f"Mean over seeds with {CONFIDENCE:.0%} percentile-bootstrap CI; IQM in convergence.csv. "
                  "`success` is the task's `converged` rule (see README).\n\n"
                  + _markdown(summary) + "\n")
    return [csv, md]


def _markdown(summary: pd.DataFrame) -> str:
    def ci(row, name, fmt):
        if f"{name}_mean" not in row or pd.isna(row[f"{name}_mean"]):
            return ""
        return f"{row[f'{name}_mean']:{fmt}} [{row[f'{name}_ci_low']:{fmt}}, {row[f'{name}_ci_high']:{fmt}}]"
    rows = []
    for _, r in summary.iterrows():
        rows.append({"task": r["task"], "N / L": r["size"], "slip": r["slip"], "start": r["start"],
                     "teacher": r["teacher"], "budget": r["budget"], "seeds": r["seeds"], "failed": r["failed"],
                     "success": ci(r, "success", ".2f"), "TV": ci(r, "tv", ".3f"),
                     "regret": ci(r, "regret", ".3f"), "EPIC": ci(r, "epic", ".3f"),
                     "pref. acc.": ci(r, "pref_accuracy", ".3f")})
    return pd.DataFrame(rows).to_markdown(index=False)


def _seed_figures(to: Path) -> list[Path]:
    """The gridworld seed's three figures and the string lab's tables, from the presets (seed 0)."""
    torch.set_num_threads(1)
    task = rlhf.preset_task("seed-gridworld")
    paths: dict[int, torch.Tensor] = {}

    def keep_paths(record: rlhf.RoundRecord) -> None:
        if record.index + 1 in PATH_ROUNDS:
            paths[record.index + 1] = record.first.states[:10]

    result = rlhf.train(task, seed=0, on_round=keep_paths)
    strings = rlhf.preset_task("seed-strings")
    tables = {f"{b} pairs": rlhf.train(strings, seed=0, budget=b).reward for b in (10, 200)}
    return [figures.gridworld_paths(task, paths, to / "seed_gridworld_paths.png"),
            figures.training_curves(result.history, to / "seed_gridworld_training.png"),
            figures.reward_heatmaps(task, result.reward.exp(), to / "seed_gridworld_rewards.png"),
            figures.string_tables(strings, tables, to / "seed_strings_tables.png")]


def _findings(summary: pd.DataFrame) -> list[str]:
    """Plain-words findings computed from the table (nothing here is hand-written per run)."""
    lines = []
    keys = ["task", "size", "slip", "start", "teacher", "sampler"]
    for key, rows in summary.groupby(keys, sort=True):
        rows = rows.sort_values("budget")
        fields = dict(zip(keys, key))
        name = (f"{fields['task']} {'N' if fields['task'] == 'gridworld' else 'L'} = {fields['size']}, "
                f"slip {fields['slip']:g}" + (f", {fields['start']} start" if fields["start"] else "")
                + f", teacher {fields['teacher']}")
        hit = rows[rows["success_mean"] >= SUCCESS_TARGET]
        if len(hit):
            lines.append(f"{name}: ≥ {SUCCESS_TARGET:.0%} success from {int(hit['budget'].iloc[0])} pairs.")
        else:
            best = rows.loc[rows["success_mean"].idxmax()]
            lines.append(f"{name}: never reaches {SUCCESS_TARGET:.0%} success "
                         f"(best {best['success_mean']:.0%} at {int(best['budget'])} pairs).")
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
            entry = {"teacher": teacher}
            entry |= {f"success @ {b}": f"{g.loc[b, 'success_mean']:.0%}" for b in budgets}
            entry[f"EPIC @ {top}"] = (f"{g.loc[top, 'epic_mean']:.3f} [{g.loc[top, 'epic_ci_low']:.3f}, "
                                      f"{g.loc[top, 'epic_ci_high']:.3f}]")
            entry[f"pref. acc. @ {top}"] = f"{g.loc[top, 'pref_accuracy_mean']:.3f}"
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
            monotone = all(a <= b + 1e-9 for a, b in zip(values, values[1:]))
            chain = " → ".join(f"{t} {v:.3f}" for t, v in zip(seen, values))
            lines.append(f"- {family}, EPIC at {top} pairs: {chain}: "
                         + ("more noise, farther from the true reward (monotone)." if monotone
                            else "not monotone in the noise level."))
        lines.append("")
    if lines:
        lines = ["## Irrational teachers", "",
                 "The B-Pref teacher family (`bench/configs/teachers.toml`, slip 0). A teacher's noise bounds how "
                 "large a preference logit the data supports, so Bradley–Terry learns a *compressed* reward: its "
                 "ranking of segments can stay good (preference accuracy) while planning on it at temperature 1 "
                 "is close to random — the success rate falls much faster than the accuracy.", ""] + lines
    return lines


def _front_page(runs, cells: pd.DataFrame, summary: pd.DataFrame, to: Path, written: list[Path]) -> Path:
    meta, rows = {}, {}
    for run in runs:
        with Store.open_existing(run) as store:
            meta[str(run)] = store.meta()
            rows |= {r["key"]: r for r in store.rows()}
    wall = sum(r["wall_s"] for r in rows.values())
    failed = cells[cells["status"] != "done"]
    lines = ["# rlhf-bench report", "",
             "Generated by `python -m bench report`; regenerate everything with `tox -e bench`.", "",
             "## Run", ""]
    for run, m in meta.items():
        lines.append(f"- `{run}`: config `{m.get('config', '?')}`, rlhf {m.get('rlhf_version', '?')}")
    lines += [f"- cells: {len(cells)} ({len(failed)} failed), compute {wall:.0f} s summed over cells",
              f"- python {platform.python_version()}, torch {torch.__version__}, pandas {pd.__version__}; "
              f"machine {platform.machine()} with {_cores()} cores", ""]
    if len(failed):
        lines += ["### Failed cells", "", failed[["task", "size", "slip", "budget", "teacher", "seed", "error"]]
                  .to_markdown(index=False), ""]
    lines += ["## What converges, and with how many pairs", ""]
    corner = _corner_finding(summary, _tied_round_share(list(rows.values())))
    if corner:
        lines += [corner, ""]
    lines += ["Smallest budget reaching the success target, per configuration:", ""]
    lines += [f"- {f}" for f in _findings(summary)]
    lines += ["", "Success means: gridworld — the learned reward's argmax is the goal and planning on it loses at "
              "most 10% of the truth's advantage over a random policy (normalised regret ≤ 0.1); strings — the "
              "greedy string equals the target. Full table with CIs: [convergence.md](convergence.md), "
              "numbers: [convergence.csv](convergence.csv).", ""]
    lines += _teacher_section(summary)
    lines += ["## Figures", ""]
    for path in written:
        if path.suffix == ".png":
            lines += [f"### {path.stem.replace('_', ' ')}", "", f"![{path.stem}]({path.name})", ""]
    if (to / "timings.md").exists():
        lines += ["## Hot-path timings", "", "See [timings.md](timings.md) and ![scaling](timings_scaling.png)", ""]
    lines += ["## Regenerate", "", "```", "python3 -m pip install -c constraints.txt 'tox>=4' && tox -e bench", "```",
              "", "or step by step: `python -m bench run --config bench/configs/default.toml --out runs/default "
              "--executor process`, then `python -m bench report --run runs/default --to reports`.", ""]
    page = to / "README.md"
    page.write_text("\n".join(lines))
    return page


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)

