"""The alignment section's findings, set against the papers and read off the sweep's numbers.

Each finding names a claim, the cells that test it, the numbers (means over seeds with 95% percentile
bootstrap CIs, the generator seeded by what is compared: :func:`bench.report.stats.bootstrap_rng`),
and a verdict from a stated rule: *reproduced*, *not reproduced* (or *refuted*, when the numbers point
the other way), or *not distinguishable*. A finding whose cells the runs lack is left out. Nothing
here is a conclusion written in advance: change the sweep and the verdicts follow its numbers.

* Azar et al. (2023): DPO over-fits deterministic preferences (β stops regularising); IPO does not.
* Xu et al. (2024): DPO can put probability on responses the data never covers, where RLHF with a
  reward model would not.
* Rafailov et al. (2023): under a Bradley–Terry teacher DPO's optimum is RLHF's (the KL-regularised
  optimum of the teacher's reward); Rafailov et al. (2024): token by token, β·log π/π_ref is an
  optimal advantage Q* − V*, the reward itself only where an action never changes the future.
* Hejna et al. (2023): with regret preferences CPL learns the optimal policy; partial-return
  preferences in a stochastic MDP bias a method that reads them as returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

import rlhf

from ..sweep.config import instance_label
from . import bootstrap
from .alignment_frontier import exact_point, setting_task
from .stats import bootstrap_rng

EQUIVALENCE_MARGIN = 0.05
"""Two methods give the same policy, for this report, when the CI of their mean paired difference in
scaled return lies within ± this margin (a twentieth of the way from the uniform policy to the optimum)."""
INSTANCE = ["task", "size", "slip", "start", "vocab_size", "horizon", "world", "env"]
"""The columns that name a task instance."""


def teacher_kind(spec: str) -> str:
    """``deterministic`` (noiseless oracle), ``bradley-terry`` (Boltzmann, nothing else), ``noisy``, or
    ``other`` (a spec that is not a simulated teacher's); the preference model is separate."""
    try:
        teacher = rlhf.Teacher.parse(spec)
    except ValueError:
        return "other"
    clean = teacher.mistake == 0 and teacher.myopic == 1 and teacher.skip == 0 and teacher.equal == 0
    if not clean:
        return "noisy"
    return "deterministic" if math.isinf(teacher.beta) else "bradley-terry"


def preference_model(spec: str) -> str:
    try:
        return rlhf.Teacher.parse(spec).preference_model.name
    except ValueError:
        return ""


def ci_text(values: np.ndarray, fields: dict, fmt: str = ".2f") -> str:
    """``mean [low, high]`` of per-seed ``values`` (bootstrap over seeds)."""
    low, high = _interval(values, fields)
    return f"{values.mean():{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _interval(values: np.ndarray, fields: dict) -> tuple[float, float]:
    return bootstrap.interval(np.asarray(values, dtype=float), bootstrap.mean, bootstrap_rng(fields))


def instance_name(row: pd.Series | dict) -> str:
    label = instance_label(dict(row))
    return f"{row['task']} {label}, slip {float(row['slip']):g}"


def _paired(cells: pd.DataFrame, a: dict, b: dict, value: str, on: list[str]) -> pd.DataFrame:
    """Rows of ``cells`` matching ``a`` and those matching ``b``, joined on ``on``: columns ``x`` (a's
    ``value``) and ``y`` (b's)."""
    def pick(conds: dict) -> pd.DataFrame:
        mask = np.ones(len(cells), dtype=bool)
        for k, v in conds.items():
            mask &= (cells[k] == v).to_numpy()
        return cells[mask][[*on, value]]
    return pick(a).merge(pick(b), on=on, suffixes=("_x", "_y")).rename(
        columns={f"{value}_x": "x", f"{value}_y": "y"}).dropna(subset=["x", "y"])


# ------------------------------------------------------------------ Azar et al. 2023
def azar(cells: pd.DataFrame, toy: pd.DataFrame) -> list[str]:
    """The toy (exact) and, where the sweep has a deterministic teacher, DPO's KL against IPO's."""
    out = []
    ipo, dpo = toy[toy["method"] == "ipo"], toy[toy["method"] == "dpo"]
    taus = ", ".join(f"{t:g}" for t in sorted(toy["tau"].unique()))
    exact = bool((ipo["gap"] < 1e-8).all()) and bool(((dpo["pi_a"] == 1.0) & ~dpo["finite_minimiser"]).all())
    one = ipo[ipo["dataset"] == ipo["dataset"].iloc[0]].sort_values("tau")
    out.append(
        f"**Azar et al. (2023), §5.3–5.4 — {'reproduced' if exact else 'not reproduced'} (exact).** On the "
        f"bandit toys (table above), IPO's exact solve is the optimum of its own loss to within "
        f"{ipo['gap'].max():.0e} at every τ ∈ {{{taus}}}, and τ regularises it (one certain pair: π(a) = "
        f"{one['pi_a'].iloc[0]:.3f} at τ = {one['tau'].iloc[0]:g}, {one['pi_a'].iloc[-1]:.3f} at τ = "
        f"{one['tau'].iloc[-1]:g}); DPO's loss has "
        f"{'no finite minimiser at any τ and its solve is greedy (π(a) = 1)' if exact else 'a finite minimiser'}.")
    done = cells[cells["status"] == "done"]
    done = done.assign(kind=done["teacher"].map(teacher_kind))
    for key, rows in done.groupby([*INSTANCE, "reference"], sort=True, dropna=False):
        det = rows[rows["kind"] == "deterministic"]
        if det.empty or not {"dpo", "ipo"} <= set(det["method"]):
            continue
        budget, beta = int(rows["budget"].max()), float(det["beta"].max())
        at = rows[(rows["budget"] == budget) & (rows["beta"] == beta)]
        fields = {"finding": "azar", "setting": [str(k) for k in key], "beta": beta, "budget": budget}

        def kl(method: str, kind: str, at: pd.DataFrame = at, fields: dict = fields) -> tuple[np.ndarray, str]:
            v = at[(at["method"] == method) & (at["kind"] == kind)]["kl"].dropna().to_numpy(dtype=float)
            return v, (ci_text(v, fields | {"method": method, "kind": kind}) if len(v) else "")
        dpo_det, dpo_det_text = kl("dpo", "deterministic")
        ipo_det, ipo_det_text = kl("ipo", "deterministic")
        dpo_bt, dpo_bt_text = kl("dpo", "bradley-terry")
        if not len(dpo_det) or not len(ipo_det):
            continue
        low = _interval(dpo_det, fields | {"method": "dpo", "kind": "deterministic"})[0]
        others = [_interval(ipo_det, fields | {"method": "ipo", "kind": "deterministic"})[1]]
        if len(dpo_bt):
            others.append(_interval(dpo_bt, fields | {"method": "dpo", "kind": "bradley-terry"})[1])
        verdict = "reproduced" if low > max(others) else "not reproduced"
        name = instance_name(rows.iloc[0])
        bt = f", against {dpo_bt_text} with the Bradley–Terry teacher's soft labels" if len(dpo_bt) else ""
        out.append(
            f"**Azar et al. in the sweep ({name}, reference {rows['reference'].iloc[0]}, {budget} pairs, the "
            f"largest β = {beta:g}) — {verdict}.** With the noiseless teacher every label is certain; DPO's policy "
            f"still moves KL = {dpo_det_text} nats from the reference{bt}, while IPO's moves {ipo_det_text}. "
            "Rule: reproduced when DPO's CI under certain labels lies above both others.")
    return out


# ------------------------------------------------------------------ Xu et al. 2024
def xu(cells: pd.DataFrame) -> list[str]:
    """Out-of-data mass of DPO's policy against rlhf's, at the smallest budget (paired by teacher, β, seed)."""
    out: list[str] = []
    done = cells[(cells["status"] == "done")]
    if "ood_mass" not in done:
        return out
    for key, rows in done.groupby([*INSTANCE, "reference"], sort=True, dropna=False):
        small = rows[rows["budget"] == rows["budget"].min()].dropna(subset=["ood_mass"])
        if not {"dpo", "rlhf"} <= set(small["method"]):
            continue
        budget = int(small["budget"].iloc[0])
        pairs = _paired(small, {"method": "dpo"}, {"method": "rlhf"}, "ood_mass", ["teacher", "beta", "seed"])
        if pairs.empty:
            continue
        fields = {"finding": "xu", "setting": [str(k) for k in key], "budget": budget}
        diff = (pairs["x"] - pairs["y"]).to_numpy(dtype=float)
        low, high = _interval(diff, fields)
        verdict = ("reproduced" if low > 0 else "refuted: rlhf's policy puts more of its mass off the data"
                   if high < 0 else "not distinguishable")
        by = small.groupby("method")["ood_mass"].mean()
        reference = small["reference_ood_mass"].mean() if "reference_ood_mass" in small else math.nan
        others = ", ".join(f"{m} {by[m]:.2f}" for m in rlhf.ALIGNMENT_METHODS.names() if m in by and m not in
                           ("dpo", "rlhf"))
        out.append(
            f"**Xu et al. (2024) ({instance_name(rows.iloc[0])}, reference {rows['reference'].iloc[0]}, "
            f"{budget} pairs: at most {2 * budget} distinct trajectories in the data) — {verdict}.** The "
            f"probability that the policy rolls out a trajectory absent from the data (exact): the reference "
            f"itself {reference:.2f}; DPO {by['dpo']:.2f}, rlhf {by['rlhf']:.2f}" + (f" ({others})" if others else "")
            + f"; DPO − rlhf = {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}] over {len(diff)} paired "
            "(teacher, β, seed) cells. Rule: reproduced when the CI lies above 0. (Both fit one parameter per "
            "state and action — DPO its log-ratios, rlhf its reward — so both extend what the data says about a "
            "step to every sequence through it.)")
    return out


# ------------------------------------------------------------------ Rafailov et al. 2023, 2024
def rafailov(cells: pd.DataFrame) -> list[str]:
    """DPO against rlhf and against the exact optimum of the teacher's reward, under Bradley–Terry teachers;
    the implicit reward's EPIC distance from the truth."""
    out, epic = [], []
    done = cells[cells["status"] == "done"]
    done = done.assign(kind=done["teacher"].map(teacher_kind), model=done["teacher"].map(preference_model))
    bt = done[(done["kind"] == "bradley-terry") & (done["model"] == "partial")]
    for key, rows in bt.groupby([*INSTANCE, "reference", "teacher"], sort=True, dropna=False):
        if not {"dpo", "rlhf"} <= set(rows["method"]):
            continue
        budget = int(rows["budget"].max())
        top = rows[rows["budget"] == budget]
        fields = {"finding": "rafailov", "setting": [str(k) for k in key], "budget": budget}
        pairs = _paired(top, {"method": "dpo"}, {"method": "rlhf"}, "scaled_return", ["beta", "seed"])
        diff = (pairs["x"] - pairs["y"]).to_numpy(dtype=float)
        low, high = _interval(diff, fields)
        same = low >= -EQUIVALENCE_MARGIN and high <= EQUIVALENCE_MARGIN
        gaps = _gaps_to_optimum(top[top["method"] == "dpo"], rlhf.Teacher.parse(str(key[-1])).beta)
        name = f"{instance_name(rows.iloc[0])}, teacher {key[-1]}, reference {rows['reference'].iloc[0]}"
        task, _ = setting_task(rows.iloc[0].to_dict())
        starts, deterministic = int((task.mdp.start > 0).sum()), bool(task.mdp.deterministic)
        assumptions = ("" if starts == 1 and deterministic else
                       " The equivalence is derived for pairs that share their prompt (start state) in deterministic "
                       "dynamics; here " + " and ".join(
                           ([f"trajectories start in {starts} states"] if starts > 1 else [])
                           + ([] if deterministic else ["transitions are stochastic"])) + ".")
        out.append(
            f"**Rafailov et al. (2023) ({name}, {budget} pairs) — {'reproduced' if same else 'not reproduced'}.** "
            f"DPO's policy against rlhf's (a Bradley–Terry reward model, then the exact KL-regularised plan on it), "
            f"paired by β and seed: Δ scaled return = {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]; DPO's mean "
            f"scaled return minus the exact optimum of the teacher's reward at the same β, per β: {gaps}. "
            f"Rule: reproduced when the CI lies within ±{EQUIVALENCE_MARGIN}." + assumptions)
        dpo_epic = top[top["method"] == "dpo"]["implicit_epic"].dropna().to_numpy(dtype=float) \
            if "implicit_epic" in top else np.array([])
        if len(dpo_epic):
            f = fields | {"statistic": "implicit_epic"}
            epic.append((f"{name}, {budget} pairs: {ci_text(dpo_epic, f)}", _interval(dpo_epic, f),
                         actions_fix_successors(task)))
    out += _token_level(epic)
    return out


def actions_fix_successors(task: rlhf.Task) -> bool:
    """Whether every action leads to the same successor distribution (a token of the string task)."""
    dense = task.mdp.dense_transitions()
    return bool(all(torch.equal(dense[a], dense[0]) for a in range(dense.shape[0])))


def _token_level(epic: list[tuple[str, tuple[float, float], bool]]) -> list[str]:
    """Rafailov et al. (2024): β·log π*/π_ref = Q* − V*, which is the reward up to a per-state constant
    (removed by the implicit EPIC) exactly where no action changes what follows."""
    same = [e for e in epic if e[2]]
    moving = [e for e in epic if not e[2]]
    if not same or not moving:
        return []
    if max(e[1][1] for e in same) < min(e[1][0] for e in moving):
        verdict = "reproduced"
    elif min(e[1][0] for e in same) > max(e[1][1] for e in moving):
        verdict = "refuted"
    else:
        verdict = "not distinguishable"
    return [
        f"**Rafailov et al. (2024), token-level rewards — {verdict}.** The optimum's implicit reward "
        "β·log π*/π_ref is an optimal advantage Q* − V*: the reward up to a per-state constant where no action "
        "changes what follows (a token of the string task), not where actions move the agent. EPIC distance "
        "between DPO's implicit reward and the true reward (each state's mean removed; 0: the same up to "
        "shaping and scale), Bradley–Terry teachers, largest budget — where actions do not change the "
        "successor: " + "; ".join(e[0] for e in same) + "; where they do: " + "; ".join(e[0] for e in moving)
        + ". Rule: reproduced when every CI of the first kind lies below every CI of the second."]


def _gaps_to_optimum(dpo: pd.DataFrame, teacher_beta: float) -> str:
    """Per β: DPO's mean scaled return minus the exact KL-regularised optimum of the teacher's reward
    ``teacher_beta·r`` at β (that of r at β / teacher_beta: the frontier point DPO's population optimum is)."""
    parts = []
    for beta in sorted(dpo["beta"].unique()):
        rows = dpo[dpo["beta"] == beta]
        task, reference = setting_task(rows.iloc[0].to_dict())
        exact = exact_point(task, reference, float(beta) / teacher_beta)["scaled_return"]
        parts.append(f"{rows['scaled_return'].mean() - exact:+.2f} at β = {float(beta):g}")
    return ", ".join(parts)


# ------------------------------------------------------------------ Hejna et al. 2023
def hejna(cells: pd.DataFrame) -> list[str]:
    """CPL (and each other method) taught by regret against partial-return teachers of the same noise,
    per task instance; and CPL against DPO where the reference is uniform."""
    out = []
    done = cells[cells["status"] == "done"]
    done = done.assign(model=done["teacher"].map(preference_model))
    gaps: dict[float, float] = {}
    for key, rows in done.groupby([*INSTANCE, "reference"], sort=True, dropna=False):
        if not {"partial", "regret"} <= set(rows["model"]) or "cpl" not in set(rows["method"]):
            continue
        top = rows[rows["budget"] == rows["budget"].max()]
        fields = {"finding": "hejna", "setting": [str(k) for k in key]}
        parts, verdict = [], "not distinguishable"
        for method in [m for m in rlhf.ALIGNMENT_METHODS.names() if m in set(top["method"])]:
            per_model = {}
            for model in ("regret", "partial"):
                sel = top[(top["method"] == method) & (top["model"] == model)]
                per_model[model] = sel.groupby("seed")["scaled_return"].mean().to_numpy(dtype=float)   # mean over β
            if not all(len(v) for v in per_model.values()):
                continue
            f = fields | {"method": method}
            parts.append(f"{method} {ci_text(per_model['regret'], f | {'model': 'regret'})} with regret labels, "
                         f"{ci_text(per_model['partial'], f | {'model': 'partial'})} with partial-return labels")
            if method == "cpl":
                gaps[float(rows["slip"].iloc[0])] = float(per_model["regret"].mean() - per_model["partial"].mean())
                lo_r, hi_r = _interval(per_model["regret"], f | {"model": "regret"})
                lo_p, hi_p = _interval(per_model["partial"], f | {"model": "partial"})
                verdict = "reproduced" if lo_r > hi_p else "refuted" if hi_r < lo_p else "not distinguishable"
        out.append(
            f"**Hejna et al. (2023) ({instance_name(rows.iloc[0])}, reference {rows['reference'].iloc[0]}, "
            f"{int(top['budget'].iloc[0])} pairs) — {verdict}.** Scaled return averaged over β per seed: "
            + "; ".join(parts) + ". Rule: reproduced when CPL's CI with regret labels lies above its CI with "
            "partial-return labels.")
    if len(gaps) > 1 and min(gaps) == 0:
        noisy = {slip: gap for slip, gap in gaps.items() if slip > 0}
        out.append(
            "**Where the gap comes from.** A partial-return label reads a segment's summed reward, which also "
            "carries luck (the slip) and, when segments start in different states, the start's value — neither "
            "of which an action explains (Knox et al. 2022, whose regret model CPL builds on). CPL's gain from "
            f"regret labels (mean over seeds and β) is {gaps[0]:+.2f} without slip and "
            + ", ".join(f"{gap:+.2f} at slip {slip:g}" for slip, gap in sorted(noisy.items()))
            + (": most of it is there without any slip, so in this sweep the start states, not the transitions' "
               "noise, carry most of it." if abs(gaps[0]) >= 0.5 * max(abs(g) for g in noisy.values()) else
               ": it grows with the slip, so here the transitions' noise carries most of it."))
    out += _cpl_is_dpo(done)
    return out


def _cpl_is_dpo(done: pd.DataFrame) -> list[str]:
    """With a uniform reference CPL's loss (λ = 1, α = β) is DPO's: log π_ref is a constant per step that
    cancels in the margin. Measured: the largest paired difference."""
    on = [*INSTANCE, "teacher", "reference", "budget", "beta", "seed"]
    pairs = _paired(done, {"method": "cpl"}, {"method": "dpo"}, "scaled_return", on)
    if pairs.empty:
        return []
    gap = (pairs["x"] - pairs["y"]).abs()
    uniform = pairs["reference"] == "uniform"
    largest = float(gap[uniform].max()) if uniform.any() else math.nan
    agree = f"agree to within {largest:.1e}" if largest <= 0.01 else f"differ by up to {largest:.2f}"
    text = (f"**CPL and DPO.** With a uniform reference CPL's loss (contrastive bias λ = 1, α = β) is DPO's — "
            "log π_ref is the same constant at every step and cancels in the margin — and their policies "
            f"{agree} in scaled return over {int(uniform.sum())} paired cells (float32 optimisers, two codings "
            "of one loss).")
    if (~uniform).any():
        text += (f" With a non-uniform reference (which DPO reads and CPL ignores) they part: mean |Δ| = "
                 f"{gap[~uniform].mean():.2f} over {int((~uniform).sum())} cells.")
    return [text] if uniform.any() else []


FINDINGS: tuple[Callable[..., list[str]], ...] = (xu, rafailov, hejna)
"""The findings read off the cells alone (Azar et al.'s also reads the toy table)."""


def findings(cells: pd.DataFrame, toy: pd.DataFrame) -> list[str]:
    """Every finding's paragraph, in the order of the papers above."""
    return [*azar(cells, toy), *(text for finding in FINDINGS for text in finding(cells))]

