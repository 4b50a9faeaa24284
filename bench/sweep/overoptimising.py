"""Run an over-optimisation group: one configuration's seeds and budgets, each seed's proxy optimised
along fixed paths away from the reference and scored exactly (Gao, Schulman and Hilton, 2023).

A cell with a ``proxy`` (:class:`~bench.sweep.config.CellConfig`) is one seed's optimisation paths,
not a training run. Per budget, seed k's data is ``budget`` pairs rolled out from the reference and
labelled by the cell's teacher (as an alignment cell's: :mod:`bench.sweep.aligning`), and its proxy is

* ``bt``: the Bradley–Terry reward learned from them (:func:`rlhf.policies.proxies.proxy_rewards`);
* ``mean:E`` / ``min:E``: an ensemble of E members on bootstrap resamples, averaged or worst-case
  (Coste et al., 2023; the ``min`` convention is :mod:`rlhf.policies.proxies`');
* a direct-alignment method's name (``dpo``, ``ipo``, …): the method fitted at each β of
  :data:`METHOD_BETAS`, its proxy return the policy's own implicit reward (Rafailov et al., 2024).

A reward proxy is optimised along three paths (:mod:`rlhf.policies.overoptimization`), every point
exact (float64 evaluation, no sampling): ``kl``, the KL-regularised optimum at each β of
:data:`KL_BETAS`; ``best_of_n``, best-of-n under the reference for each n of :data:`NS` (exact: the
task must be enumerable); ``npg``, natural policy gradient at :data:`NPG_LR` after each step count of
:data:`NPG_STEPS`. A method proxy has one path, ``align``. The grids are fixed here, not per
configuration: they are part of what every over-optimisation cell means.

What a cell stores: its paths in ``history`` (``"<path>.<quantity>"``, quantity ``param`` (β, n or
steps), ``kl``, ``proxy`` and ``gold``, in the grid's order: the report's curves and fits read them)
and, as metrics, ``gold_ref`` (the reference's gold return, exact) and per path ``<path>_peak_gold``
(the highest gold return on the path), ``<path>_peak_d`` (its ``d = √KL``), ``<path>_end_gold`` (the
gold return at the path's hardest point) and ``<path>_drop`` (peak minus end: how much optimising on
past the peak loses; 0 on a path whose gold never falls).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

import rlhf
from rlhf.core.planning import policy_return
from rlhf.policies.overoptimization import PathPoint, alignment_path, best_of_n_path, kl_path, npg_path
from rlhf.policies.proxies import AGGREGATES, proxy_rewards
from rlhf.policies.reference import reference_policy
from rlhf.tasks.strings import StringTask
from rlhf.training.loop import single_threaded

from .config import CellConfig

KL_BETAS = tuple(10.0 * 0.6 ** i for i in range(16))
"""The KL path's β, from 10 (next to the reference) down to about 0.005 (next to the proxy's argmax)."""
NS = tuple(2 ** i for i in range(13))
"""Best-of-n's n: 1 (the reference itself) to 4096 (KL at most log 4096 − 4095/4096 ≈ 7.3 nats)."""
NPG_STEPS = tuple([0] + [2 ** i for i in range(7)])
"""Natural policy gradient's checkpoints: 0 (the reference) to 64 steps."""
NPG_LR = 1.0
"""NPG's step size η: on a string task step k is the KL path's β = 1/(η·k) (1 at k = 1, 1/64 at k = 64)."""
METHOD_BETAS = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01)
"""A direct-alignment method's β (fewer than :data:`KL_BETAS`: each is a fit of its own)."""
QUANTITIES = ("param", "kl", "proxy", "gold")
"""What a path stores per point (history ``"<path>.<quantity>"``)."""


def parse_proxy(spec: str) -> tuple[str, int, str]:
    """``(kind, ensemble, aggregate)`` of a proxy spec: ``("reward", E, aggregate)`` for ``bt`` (E = 1),
    ``mean:E`` or ``min:E`` (E >= 2), ``("method", 0, name)`` for an alignment method's name; ValueError
    (one line) otherwise."""
    if spec == "bt":
        return "reward", 1, "mean"
    name, _, size = spec.partition(":")
    if name in AGGREGATES and size.isdigit() and int(size) >= 2:
        return "reward", int(size), name
    if spec in rlhf.ALIGNMENT_METHODS.names():
        return "method", 0, spec
    raise ValueError(f"must be bt, mean:E or min:E (E an integer >= 2), or an alignment method "
                     f"({', '.join(rlhf.ALIGNMENT_METHODS.names())}), got {spec!r}")


def with_gold(task: rlhf.Task, gold: str) -> rlhf.Task:
    """``task`` with its true ("gold") reward replaced by ``gold`` (a string task's ``reward=``: ``match``
    or ``random:K``; ``""`` keeps the task's own). ValueError for another task or a bad spec."""
    if not gold:
        return task
    if not isinstance(task, StringTask):
        raise ValueError(f"a gold reward applies to the string task only, got {gold!r} for {task!r}")
    return StringTask(vocab=task.vocab, target=task.target, slip=task.slip, reward=gold)


def path_group(first: CellConfig, seeds: Sequence[int],
               budgets: Sequence[int]) -> dict[tuple[int, int], tuple[dict, dict]]:
    """``{(budget, seed): (metrics, history)}`` of every seed at every budget of ``first``'s
    configuration, on one torch thread (as an alignment group: the same bits on every executor)."""
    with single_threaded():
        task = with_gold(first.make_task(), first.gold)
        reference = reference_policy(task, first.reference)
        gold_ref = policy_return(task.mdp, reference, task.true_reward, task.horizon)
        kind, ensemble, aggregate = parse_proxy(first.proxy)
        out: dict[tuple[int, int], tuple[dict, dict]] = {}
        by_seed: list[dict[str, list[PathPoint]]]
        for budget in budgets:
            data = [rlhf.PreferenceData.sampled(task, first.teacher, budget, seed=seed, policy=reference)
                    for seed in seeds]
            if kind == "method":
                by_seed = [{"align": path} for path in alignment_path(task, data, aggregate, METHOD_BETAS, reference,
                                                                       seeds)]
            else:
                proxies = proxy_rewards(task, data, seeds, ensemble, aggregate, reference)
                by_seed = [{"kl": kl_path(task, proxy, KL_BETAS, reference),
                            "best_of_n": best_of_n_path(task, proxy, NS, reference),
                            "npg": npg_path(task, proxy, NPG_STEPS, NPG_LR, reference)} for proxy in proxies]
            for seed, seed_paths in zip(seeds, by_seed, strict=True):
                out[budget, seed] = _stored(seed_paths, gold_ref)
    return out


def _stored(paths: dict[str, list[PathPoint]], gold_ref: float) -> tuple[dict, dict]:
    """A seed's ``(metrics, history)`` from its paths (see the module docstring)."""
    metrics: dict[str, float] = {"gold_ref": float(gold_ref)}
    history: dict[str, list[float]] = {}
    for name, points in paths.items():
        values = {"param": [p.param for p in points], "kl": [p.kl for p in points],
                  "proxy": [p.proxy_return for p in points], "gold": [p.gold_return for p in points]}
        history |= {f"{name}.{q}": [float(v) for v in values[q]] for q in QUANTITIES}
        top = max(range(len(points)), key=lambda i: (points[i].gold_return, -i))     # the first highest
        peak, end = points[top].gold_return, points[-1].gold_return
        metrics |= {f"{name}_peak_gold": peak, f"{name}_peak_d": points[top].d, f"{name}_end_gold": end,
                    f"{name}_drop": peak - end}
    return {k: float(v) for k, v in metrics.items() if not math.isnan(v)}, history


def check_cell(first: CellConfig) -> None:
    """ValueError (one line) when ``first``'s over-optimisation fields cannot make a cell: a bad proxy,
    a gold reward for another task, or a reward proxy on a task too large for exact best-of-n."""
    kind, _, _ = parse_proxy(first.proxy)
    task = with_gold(first.make_task(), first.gold)
    if kind == "reward":
        from rlhf.core.enumeration import MAX_TRAJECTORIES, count_trajectories
        executed = task.mdp.executed_policy(torch.full((task.mdp.num_states, task.mdp.num_actions),
                                                       1.0 / task.mdp.num_actions, dtype=torch.float64))
        count = count_trajectories(task.mdp, executed, task.horizon)
        if count > MAX_TRAJECTORIES:
            raise ValueError(f"exact best-of-n needs at most {MAX_TRAJECTORIES} trajectories, the task has {count:.0f}")
