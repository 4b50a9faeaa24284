"""Run an alignment group: one configuration's seeds and budgets through :func:`rlhf.align_batch`.

A cell with a ``method`` (:class:`~bench.sweep.config.CellConfig`) is a policy fitted to preference
data, not a training run. Per budget, seed k's data is ``budget`` pairs rolled out from the
reference policy (the policy a fine-tuned model's pairs come from: DPO's setting) and labelled by
the cell's teacher, ``rlhf.PreferenceData.sampled(task, teacher, budget, seed=k, policy=reference)``
(a pure function of k); the group's seeds are then fitted as one batch, and
:func:`rlhf.align_batch` gives seed k the bits it gets alone. The reference is made once per group
(an ``sft`` reference draws its demonstrations with seed 0, shared by every seed).

The metrics are :func:`rlhf.policies.evaluation.policy_metrics`' (exact, except a win rate on a task
too large to enumerate: sampled, ``win_rate_exact = 0``), the method's final ``loss``, and
``reference_ood_mass``: the reference's own probability of a trajectory absent from the seed's data
(exact; what ``ood_mass`` is to be read against). A metric that does not apply to the cell is NaN
there and left out here: the out-of-data mass of a task too large to enumerate, the implicit
reward's EPIC distance of a policy that gives an action probability 0, a scaled return where no
policy beats random. The methods run with :class:`rlhf.policies.align.AlignOptions`' defaults
(1000 full-batch Adam steps at lr 0.05 on sampled data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import rlhf
from rlhf.policies.evaluation import ood_mass
from rlhf.policies.reference import reference_policy
from rlhf.training.loop import single_threaded

from .config import CellConfig


def align_group(first: CellConfig, seeds: Sequence[int], budgets: Sequence[int]) -> dict[tuple[int, int], dict]:
    """``{(budget, seed): metrics}`` of every seed at every budget of ``first``'s configuration, on one
    torch thread (as ``rlhf.train_checkpoints`` runs: the same bits on every executor, and no
    oversubscribed cores; two threads per worker made a group 20x slower on 2 cores, measured)."""
    with single_threaded():
        return _align_group(first, seeds, budgets)


def _align_group(first: CellConfig, seeds: Sequence[int], budgets: Sequence[int]) -> dict[tuple[int, int], dict]:
    task = first.make_task()
    reference = reference_policy(task, first.reference)
    out: dict[tuple[int, int], dict] = {}
    for budget in budgets:
        data = [rlhf.PreferenceData.sampled(task, first.teacher, budget, seed=seed, policy=reference)
                for seed in seeds]
        results = rlhf.align_batch(task, data, method=first.method, beta=first.beta, reference=reference, seeds=seeds)
        for result, pairs in zip(results, data, strict=True):
            metrics = result.metrics | {"reference_ood_mass": ood_mass(task, reference, pairs)}
            out[budget, result.seed] = {k: float(v) for k, v in metrics.items() if not math.isnan(v)}
    return out
