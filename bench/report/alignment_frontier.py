"""The return-vs-KL frontier: the exact KL-regularised optimum of the true reward traced over β, and the
figure that sets each method's policies against it.

For a reference π_ref, the policies maximising ``E[Σ r] − β·KL(π ‖ π_ref)`` (:func:`rlhf.kl_regularized_policy`,
exact backward induction) trace the upper boundary of all policies' (KL, return): a policy whose KL
is at most k returns no more than the frontier at k (else it would beat the optimum at the β of that
point). Everything here is exact (returns by exact evaluation, :func:`rlhf.policy_return`; KL by
:func:`rlhf.policy_kl`); the methods' points are means over seeds from the sweep.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import matplotlib.artist
import numpy as np
import pandas as pd
import torch

import rlhf
from rlhf.core.truths import truths_of
from rlhf.policies.reference import reference_policy
from rlhf.tasks.registry import INSTANCE_FIELDS

from ..sweep.config import grouping_columns, instance_label
from .figures import MARKERS, _save, plt
from .stats import plain

FRONTIER_BETAS = tuple(float(b) for b in np.logspace(-2, 2, 41))
"""The β at which the frontier is traced (log-spaced, 0.01 to 100)."""
PER_SETTING = ("method", "beta", "budget")
"""What varies within a setting: the frontier figure draws a setting (task instance, teacher,
reference) in one panel."""


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """The configuration columns that make a setting: all but method, β and budget."""
    return [c for c in grouping_columns(frame) if c not in PER_SETTING]


def setting_task(fields: dict) -> tuple[rlhf.Task, torch.Tensor]:
    """The task instance and the reference table ``[S, A]`` of a configuration's fields (a summary row)."""
    task = rlhf.task_spec(str(fields["task"])).make({k: plain(fields[k]) for k in INSTANCE_FIELDS})
    return task, reference_policy(task, str(fields["reference"]))


def exact_point(task: rlhf.Task, reference: torch.Tensor, beta: float) -> dict[str, float]:
    """The KL-regularised optimum of the true reward at ``beta``: its KL, true and scaled return."""
    mdp, horizon = task.mdp, task.horizon
    policy = rlhf.kl_regularized_policy(mdp, task.true_reward, horizon, beta, reference)
    j = rlhf.policy_return(mdp, policy, task.true_reward, horizon)
    return {"beta": beta, "kl": rlhf.policy_kl(mdp, policy, reference, horizon), "true_return": j,
            "scaled_return": truths_of(task).scaled(j)}


def frontier(fields: dict) -> pd.DataFrame:
    """The exact frontier of a configuration's task and reference, one row per :data:`FRONTIER_BETAS`."""
    return _frontier(json.dumps({k: plain(fields[k]) for k in (*INSTANCE_FIELDS, "task", "reference")},
                                sort_keys=True)).copy()


@functools.lru_cache(maxsize=64)
def _frontier(key: str) -> pd.DataFrame:
    task, reference = setting_task(json.loads(key))
    return pd.DataFrame([exact_point(task, reference, beta) for beta in FRONTIER_BETAS])


def panel_title(fields: dict, budget: int) -> str:
    """A setting's name in two lines: the task instance, then teacher, reference and budget."""
    label = instance_label(fields).replace("=", " = ")
    return (f"{fields['task']} {label}, slip {float(fields['slip']):g}\n"
            f"teacher {fields['teacher']}, reference {fields['reference']}, {int(budget)} pairs")


def figure(summary: pd.DataFrame, path: Path, columns: int = 4) -> Path:
    """One panel per setting at its largest budget: scaled return (y, uniform policy 0, optimum 1) against
    KL to the reference (x, nats) of each method's policy at each β (mean over seeds, 95% bootstrap CI
    bars on the return), joined in order of β, and the exact frontier (black, dashed)."""
    settings = setting_columns(summary)
    panels = list(summary.groupby(settings, sort=True, dropna=False))
    order = [m for m in rlhf.ALIGNMENT_METHODS.names() if m in set(summary["method"])]
    colours = {m: f"C{i % 10}" for i, m in enumerate(order)}
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(order)}
    sizes = {m: 9.0 - 5.0 * i / max(len(order) - 1, 1) for i, m in enumerate(order)}   # coinciding points: concentric
    ncols = min(columns, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.7 * nrows + 0.5), squeeze=False)
    for ax, (key, rows) in zip(axes.flat, panels, strict=False):
        fields = dict(zip(settings, key, strict=True))
        top = rows[rows["budget"] == rows["budget"].max()]
        exact = frontier(top.iloc[0].to_dict())
        reach = max(float(top["kl_mean"].max()), 0.05)
        shown = exact[exact["kl"] <= 1.15 * reach]
        ax.plot(shown["kl"], shown["scaled_return"], "--", color="black", lw=1.3,
                label="exact optimum of E[R] − β·KL (true reward)")
        for method in order:
            line = top[top["method"] == method].sort_values("beta")
            if line.empty:
                continue
            mean = line["scaled_return_mean"].to_numpy(dtype=float)
            bars = np.clip([mean - line["scaled_return_ci_low"], line["scaled_return_ci_high"] - mean], 0, None)
            ax.errorbar(line["kl_mean"], mean, yerr=bars, fmt="-", marker=markers[method], ms=sizes[method],
                        mfc="none", lw=1.0, elinewidth=0.8, capsize=0, color=colours[method], label=method, alpha=0.9)
        ax.set_xlim(-0.03 * reach * 1.15, 1.15 * reach)
        ax.set_title(panel_title(fields, int(top["budget"].iloc[0])), fontsize=8.5)
        ax.set_xlabel("KL(π ‖ π_ref), nats")
        ax.set_ylabel("scaled return")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    labelled: dict[str, matplotlib.artist.Artist] = {}
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            labelled.setdefault(text, handle)
    fig.tight_layout(rect=(0, 0.5 / (3.7 * nrows + 0.5) + 0.01, 1, 1))
    fig.legend(list(labelled.values()), list(labelled), loc="lower center", ncol=len(labelled), fontsize=8,
               frameon=False)
    return _save(fig, path, tight=False)
