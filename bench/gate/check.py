"""The convergence gate: compare a run with a committed baseline, configuration by configuration.

Per configuration (every config field but the seed) the gate compares the
success rate (mean ``converged``), the number of failed cells, and the mean
of each metric over seeds. A value regresses when ``|now − baseline| >
abs + rel·|baseline|``, with (abs, rel) per metric from the baseline's
``tolerances`` (copied from the sweep config's ``[check]`` table when the
baseline is written; :data:`DEFAULT_TOLERANCES` for metrics it does not name).
The check is two-sided: a configuration known to fail that starts converging is
flagged too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from ..errors import BenchError
from ..report.runs import load_run
from ..report.stats import config_id, configurations, plain, success_values, varying_fields
from ..sweep.config import OWN_COLUMNS, RANKING_COLUMNS, SHOWN_COLUMNS, CellConfig, config_columns, instance_label
from ..sweep.config import load as load_config

EXACT = {"abs": 0.0, "rel": 0.0}
DEFAULT_TOLERANCES = {
    "failed": EXACT, "success_rate": EXACT, "goal_hit": EXACT, "exact_match": EXACT,
    "tv": {"abs": 0.05, "rel": 0.1}, "regret": {"abs": 0.05, "rel": 0.1}, "epic": {"abs": 0.05, "rel": 0.1},
    "pref_accuracy": {"abs": 0.05, "rel": 0.0}, "position_accuracy": {"abs": 0.05, "rel": 0.0},
}
"""Used for every metric a config's ``[check]`` table does not name: exact for counts and
rates (each cell is deterministic), ±(0.05 + 10%) for distances, ±0.05 for accuracies.
A metric in neither is compared exactly."""
_NOT_METRICS = {*config_columns(), *RANKING_COLUMNS, *OWN_COLUMNS, "status", "error", "converged"}


def aggregate(frame: pd.DataFrame) -> dict[str, dict]:
    """``{configuration id: {fields, seeds, success_rate, failed, <metric means>}}``."""
    metrics = [c for c in frame.columns if c not in _NOT_METRICS]
    out = {}
    for fields, group in configurations(frame, sort=False):
        done = group[group["status"] == "done"]
        entry = {"fields": fields, "seeds": sorted(int(s) for s in group["seed"]),
                 "failed": int((group["status"] != "done").sum()),
                 "success_rate": float(success_values(group).mean())}
        for m in metrics:
            values = done[m].dropna()
            if len(values):
                entry[m] = float(values.mean())
        out[config_id(fields)] = entry
    return out


def label(fields: dict, varying: frozenset[str] = frozenset()) -> str:
    """A short human name of a configuration; ``varying`` names the other fields that tell
    the configurations at hand apart (shown as ``name=value``)."""
    parts = [fields["task"], instance_label(fields), f"slip={fields['slip']:g}", f"budget={fields['budget']}",
             fields["teacher"]]
    if fields.get("start"):
        parts.append(f"start={fields['start']}")
    parts += [f"{k}={fields[k]}" for k in sorted(varying - set(SHOWN_COLUMNS)) if k in fields]
    return " ".join(str(p) for p in parts)


def write_baseline(run_dir: Path, config_path: Path, out: Path) -> None:
    """Freeze a run's aggregates, with the config's tolerances, as the new baseline."""
    sweep = load_config(config_path)
    frame = load_run(run_dir)
    keys = {c.key for c in sweep.cells}
    stored = {CellConfig.from_fields({str(k): plain(v) for k, v in row.items()}).key
              for row in frame.to_dict("records")}
    if keys - stored:
        raise BenchError(f"{run_dir}: {len(keys - stored)} cells of {config_path} are not in the run; run it first")
    compared = {"failed", "success_rate", *(c for c in frame.columns if c not in _NOT_METRICS)}
    unknown = sorted(set(sweep.check) - compared)
    if unknown:
        raise BenchError(f"{config_path}: check.{unknown[0]}: no such metric in the run "
                         f"(metrics: {', '.join(sorted(compared))})")
    tolerances = {k: v for k, v in DEFAULT_TOLERANCES.items() if k in compared} | sweep.check
    body = {"config": str(config_path), "tolerances": tolerances,
            "configurations": list(aggregate(frame).values())}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)


def _load_baseline(path: Path) -> dict:
    try:
        body = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: baseline not found") from None
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: malformed baseline ({exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("configurations"), list) \
            or not isinstance(body.get("tolerances"), dict):
        raise BenchError(f"{path}: malformed baseline (expected 'tolerances' and 'configurations')")
    return body


def compare(baseline: dict, run: dict[str, dict]) -> tuple[list[list], int]:
    """Rows ``[configuration, metric, baseline, now, allowed]`` of every regression, and
    the number of values compared."""
    tolerances = baseline["tolerances"]
    regressions, compared = [], 0
    varying = varying_fields([e["fields"] for e in baseline["configurations"]])
    for entry in baseline["configurations"]:
        now = run[config_id(entry["fields"])]
        for metric, base in sorted(entry.items()):
            if metric in ("fields", "seeds"):
                continue
            tol = tolerances.get(metric, DEFAULT_TOLERANCES.get(metric, EXACT))
            allowed = tol["abs"] + tol["rel"] * abs(base)
            value = now.get(metric, math.nan)
            compared += 1
            if not abs(value - base) <= allowed + 1e-12:      # NaN (metric gone) regresses too
                regressions.append([label(entry["fields"], varying), metric, base, value, allowed])
    return regressions, compared


def run_check(run_dir: Path, baseline_path: Path) -> int:
    baseline = _load_baseline(baseline_path)
    run = aggregate(load_run(run_dir))
    try:
        wanted = {config_id(e["fields"]): e for e in baseline["configurations"]}
    except (KeyError, TypeError):
        raise BenchError(f"{baseline_path}: malformed baseline (a configuration has no 'fields')") from None
    missing, extra = wanted.keys() - run.keys(), run.keys() - wanted.keys()
    if missing or extra:
        names = [f"missing from the run: {label(wanted[k]['fields'])}" for k in sorted(missing)[:3]]
        names += [f"not in the baseline: {label(run[k]['fields'])}" for k in sorted(extra)[:3]]
        raise BenchError(f"{baseline_path} and {run_dir} cover different configurations "
                         f"({len(missing)} missing, {len(extra)} extra): " + "; ".join(names))
    for k, e in wanted.items():
        if e.get("seeds") != run[k]["seeds"]:
            raise BenchError(f"{baseline_path}: seeds differ for {label(e['fields'])}: "
                             f"baseline {e.get('seeds')}, run {run[k]['seeds']}")
    regressions, compared = compare(baseline, run)
    if regressions:
        print(f"convergence gate: {len(regressions)} regression(s) against {baseline_path}")
        print(tabulate(regressions, headers=["configuration", "metric", "baseline", "now", "allowed ±"],
                       floatfmt=".4g", tablefmt="github"))
        return 1
    print(f"convergence gate: ok, {len(wanted)} configurations, {compared} values within tolerance of {baseline_path}")
    return 0

