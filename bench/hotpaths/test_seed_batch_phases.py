"""Where a round of the batched seed run spends its time: each phase of one round of the
`seed-gridworld` loop, for one seed and for a batch of seeds, on the inputs a round sees
(200 trajectories of 30 steps a seed, 100 labelled pairs, 50 Adam steps). The ratio of
the two, per phase, says which phase keeps `seed_batch` from a larger speed-up.

Each phase also records how many Python-level calls one round makes (``extra_info``: ``calls``,
``builtin_calls``, ``top_calls``; :func:`count_calls`): a one-seed round is dispatch-bound, so
its call count says where the next bottleneck is."""

import sys
from collections import Counter

import pytest
import torch

import rlhf
from rlhf.learning.learner import RewardLearner
from rlhf.training.loop import plan

from ..timings.report import BATCH_SEEDS
from .conftest import info

PHASES = ("rollout", "label", "update", "plan")
TOP_CALLS = 3
"""The most frequent calls a phase records by name."""


def _call_name(frame, event: str, arg) -> str:
    """A call's name: a Python function's qualified name, or a builtin's (torch's ops as ``torch.bmm``,
    tensor methods as ``Tensor.view``)."""
    if event == "call":
        return frame.f_code.co_qualname
    name = getattr(arg, "__qualname__", None) or repr(arg)
    return name.replace("_VariableFunctionsClass.", "torch.").replace("TensorBase.", "Tensor.")


def count_calls(fn, *args, **kwargs) -> dict:
    """Run ``fn(*args, **kwargs)`` once under :func:`sys.setprofile`, counting the calls it makes
    in Python: Python functions (generators resumed included) and C builtins called from Python
    (torch's ops, tensor methods); what a builtin does inside is not counted. Returns ``calls``
    (all), ``builtin_calls`` (the builtins), and ``top_calls``, the :data:`TOP_CALLS` most frequent
    as ``[name, count]``."""
    counts: Counter[str] = Counter()
    builtins = 0

    def profile(frame, event, arg):
        nonlocal builtins
        if event == "call" or (event == "c_call" and arg is not sys.setprofile):     # not the profiler's own end
            counts[_call_name(frame, event, arg)] += 1
            builtins += event == "c_call"

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return {"calls": sum(counts.values()), "builtin_calls": builtins,
            "top_calls": [[name, n] for name, n in counts.most_common(TOP_CALLS)]}


def round_inputs(seeds: int):
    """A mid-run round's inputs for ``seeds`` seeds: a learned reward per seed (random), the
    policy planned on it, the round's pairs rolled out from that policy, and their labels."""
    task = rlhf.preset_task("seed-gridworld")
    keys = rlhf.Keys.from_seeds(range(seeds))
    cfg = task.defaults
    pairs = cfg.pairs_per_round
    reward = keys.fold(9).normal(task.mdp.num_states).unsqueeze(-1)               # [B, S, 1]
    policy = plan(task, reward, cfg)
    first, second = rlhf.rollout(task.mdp, policy, 2 * pairs, task.horizon, keys.fold(0)).split()
    teacher = cfg.labeller()
    scored = (rlhf.step_rewards(task.true_reward, first), rlhf.step_rewards(task.true_reward, second),
              task.reward_range(), keys.fold(1))
    return task, cfg, keys, reward, policy, first, second, teacher, scored


def round_phase(phase: str, seeds: int):
    """One round's ``phase`` for ``seeds`` seeds as ``(task, run, setup, check)``: ``run(*setup())`` is
    what the loop calls (``setup`` makes what must be fresh each time, untimed: the update's learner),
    ``check(out)`` says its output has the shape it must."""
    task, cfg, keys, reward, policy, first, second, teacher, scored = round_inputs(seeds)
    labels = teacher.label(*scored)
    pairs = first.states.shape[-2]
    if phase == "rollout":
        def rollout():
            return rlhf.rollout(task.mdp, policy, 2 * pairs, task.horizon, keys.fold(0))
        return task, rollout, tuple, lambda out: out.states.shape == (seeds, 2 * pairs, task.horizon)
    if phase == "label":
        def label():          # what the loop does: the pairs' step rewards, then the teacher
            return teacher.label(rlhf.step_rewards(task.true_reward, first),
                                 rlhf.step_rewards(task.true_reward, second), *scored[2:])
        return task, label, tuple, lambda out: out.prefer_first.shape == first.states.shape[:2]
    if phase == "update":
        def fresh():
            return RewardLearner(task.new_reward_model(keys), cfg.learner), first, second, labels.prefer_first
        return (task, lambda learner, *a: learner.update(*a), fresh,
                lambda loss: bool((torch.as_tensor(loss) > 0).all()))

    def plan_and_evaluate():  # plan on the learned reward, then the exact return logged each round
        planned = plan(task, reward, cfg)
        return rlhf.expected_returns(task.mdp, planned, task.true_reward, task.horizon)
    return task, plan_and_evaluate, tuple, lambda returns: returns.shape == (seeds,)


@pytest.mark.benchmark(group="seed_batch_phases")
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("seeds", [1, BATCH_SEEDS])
def test_seed_round_phase(benchmark, phase, seeds):
    task, run, setup, check = round_phase(phase, seeds)
    info(benchmark, "seed_batch_phases", phase, task.mdp.num_states, task="gridworld", size=task.size,
         slip=task.slip, seeds=seeds)
    with torch.inference_mode():
        out = benchmark.pedantic(run, setup=lambda: (setup(), {}), rounds=20, warmup_rounds=2)
        assert check(out)
        benchmark.extra_info.update(count_calls(run, *setup()))      # one more round, warm, counted
