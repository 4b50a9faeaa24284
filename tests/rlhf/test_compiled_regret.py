"""The regret learner's compiled step (rlhf.core._numba_regret): the torch recurrence's numbers in an
order of its own, the same bits for every CPU target numba compiles for, and no FMA contraction."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

import rlhf
from rlhf.core import compiled
from rlhf.learning.learner import LearnerConfig
from rlhf.learning.regret import RegretRewardLearner


def one_seed_pairs(task, n, length, seed):
    keys = rlhf.Keys.from_seeds([seed])[0]
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, length, keys.fold(0)).split()
    y = keys.fold(1).uniform(n)                                          # soft labels: no flat directions
    batch = first.__class__
    return batch(first.states[None], first.actions[None]), batch(second.states[None], second.actions[None]), y[None]


def fitted(task, config, path, rounds, answered=None, members=0):
    """θ after ``rounds`` updates of a learner on fresh pairs each round, the compiled or torch path."""
    shape = [1, members] if members else [1]
    model = task.new_reward_model(rlhf.Keys.from_seeds(list(range(3))).fold(7))
    model.theta = torch.randn(*shape, model.theta.shape[-1], generator=torch.Generator().manual_seed(3))
    learner = RegretRewardLearner(model, config, task.mdp, task.horizon, may_skip=answered is not None)
    assert learner._compiled                               # the case under test runs compiled by default
    learner._compiled = path == "compiled"
    losses = []
    for k in range(rounds):
        first, second, y = one_seed_pairs(task, 40, 3, k)
        weights = None
        if members:
            weights = torch.randint(0, 3, (1, members, 40), generator=torch.Generator().manual_seed(k))
        losses.append(learner.update(first, second, y, answered=answered, weights=weights))
    return model.theta.clone(), torch.stack([torch.as_tensor(x) for x in losses])


@pytest.mark.parametrize("case", ["whole-round", "minibatches", "unanswered", "ensemble"])
def test_the_compiled_step_follows_the_torch_recurrence(case):
    task = rlhf.RandomGridWorld(3)
    config = LearnerConfig("adam", 0.05, 5, 16 if case == "minibatches" else 0)
    answered = None
    if case == "unanswered":
        answered = torch.arange(40).unsqueeze(0) % 3 != 0
    members = 4 if case == "ensemble" else 0
    theta, losses = fitted(task, config, "compiled", 3, answered, members)
    reference, reference_losses = fitted(task, config, "torch", 3, answered, members)
    start = fitted(task, LearnerConfig("adam", 0.0, 1, 0), "torch", 1, answered, members)[0]
    assert not torch.equal(theta, start)                                 # it moved: the comparison can fail
    torch.testing.assert_close(theta, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses, reference_losses, rtol=1e-5, atol=1e-6)


_SCRIPT = """
import hashlib, json, torch
import rlhf
from rlhf.core import compiled
from rlhf.learning.learner import LearnerConfig
from rlhf.learning.regret import RegretRewardLearner
torch.set_num_threads(1)
task = rlhf.RandomGridWorld(2)
model = task.new_reward_model(rlhf.Keys.from_seeds([0, 1, 2]))
learner = RegretRewardLearner(model, LearnerConfig("adam", 0.05, 20, 0), task.mdp, task.horizon)
assert learner._compiled
for k in range(3):
    keys = rlhf.Keys.from_seeds([10 * k, 10 * k + 1, 10 * k + 2])
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * 50, 3, keys.fold(0)).split()
    learner.update(first, second, keys.fold(1).uniform(50))
kernels = compiled.regret_kernels()
asm = "".join(a for f in (kernels.advantages_and_logits, kernels.regret_gradient) for a in f.inspect_asm().values())
print(json.dumps({"theta": hashlib.sha256(model.theta.numpy().tobytes()).hexdigest(),
                  "fma": "vfmadd" in asm or "vfnmadd" in asm or "vfmsub" in asm,
                  "zmm": "zmm" in asm}))
"""


_BASELINE = "+64bit,+cmov,+cx8,+fxsr,+mmx,+sse,+sse2"
_HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,+sse2,"
            "+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")
_TARGETS = {"x86-64": (_BASELINE, ()),
            "haswell": (_HASWELL + ",-avx512f", ("avx2", "fma")),
            "skylake-avx512": (_HASWELL + ",+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl", ("avx512f", "avx512bw"))}
"""numba's target CPU, its features (numba takes the host's features unless told: the name alone changes
nothing), and what the host needs to run the build: the x86-64 baseline (SSE2, no FMA), Haswell (AVX2
with FMA, so a contraction would show) and Skylake-AVX512."""


def test_the_compiled_step_gives_the_same_bits_when_compiled_for_sse2_avx2_and_avx512(tmp_path):
    """numba compiles for the host CPU; forced to the x86-64 baseline, to Haswell's instruction set (AVX2)
    and to Skylake-AVX512's (where this CPU can run it), each in a fresh process with its own cache, the
    fitted rewards are byte-identical, and no build contracts a multiply and an add into an FMA."""
    from llvmlite import binding

    host = binding.get_host_cpu_features()
    out = {}
    for cpu, (features, needs) in _TARGETS.items():
        if not all(host.get(flag, False) for flag in needs):
            continue                                      # a build this CPU cannot run
        env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": features,
               "NUMBA_CACHE_DIR": str(tmp_path / cpu)}
        run = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        out[cpu] = json.loads(run.stdout.strip().splitlines()[-1])
    assert "x86-64" in out and len(out) >= 2, sorted(out)  # the baseline and at least one vector build
    assert len({o["theta"] for o in out.values()}) == 1, out
    assert not any(o["fma"] for o in out.values()), out
    assert not out["x86-64"]["zmm"] and not out.get("haswell", {}).get("zmm"), out   # no zmm below AVX-512
    if "skylake-avx512" in out:
        assert out["skylake-avx512"]["zmm"], out          # the targets really differ


def test_it_runs_compiled_only_where_its_order_is_defined():
    config = LearnerConfig()
    def learner(task, **kw):
        return RegretRewardLearner(task.new_reward_model(rlhf.Keys.from_seeds([0])), config, task.mdp, task.horizon,
                                   **kw)
    assert learner(rlhf.RandomGridWorld(0))._compiled
    assert learner(rlhf.preset_task("seed-gridworld"))._compiled
    assert not learner(rlhf.RandomGridWorld(0), discount=0.9)._compiled
    assert not learner(rlhf.RandomGridWorld(0), kappa=3.0)._compiled
    assert not learner(rlhf.GridWorld(size=3, slip=0.1, horizon=6))._compiled
    assert compiled.regret_kernels() is not None


def kernel_inputs(task, rewards, pairs=20, seed=0):
    """The compiled kernels' arrays for rewards ``[R, 1 or A, S]`` and ``pairs`` random 3-step pairs a row."""
    mdp = task.mdp
    R, A, S = rewards.shape[0], mdp.num_actions, mdp.num_states
    keys = rlhf.Keys.from_seeds(list(range(seed, seed + R)))
    first, second = rlhf.rollout(mdp, rlhf.uniform_policy(mdp), 2 * pairs, 3, keys.fold(0)).split()
    from rlhf.learning.regret import step_count_differences, step_indices
    steps = step_indices(mdp)
    counts = step_count_differences(steps(first), steps(second), A * S)            # [R, n, A·S]
    index = torch.empty(R, pairs, 6, dtype=torch.int64)
    count = torch.empty(R, pairs, 6)
    compiled.regret_kernels().sparse_pairs(counts.contiguous().numpy(), index.numpy(), count.numpy())
    return counts, index, count, mdp.next_states.reshape(-1).numpy()


@pytest.mark.parametrize("state_reward", [True, False])
@pytest.mark.parametrize("horizon", [1, 2, 7])
def test_the_kernels_are_the_torch_recurrence_for_state_and_action_rewards_and_short_horizons(state_reward, horizon):
    """Kernel by kernel against rlhf.core.advantages: A and the greedy policies bit for bit, the gradient
    (with respect to every reward entry, summed over actions for a state reward) to float tolerance,
    for three rows at once."""
    from rlhf.core.advantages import advantage_vjp, soft_advantages

    task = rlhf.RandomGridWorld(3)
    A, S = task.mdp.num_actions, task.mdp.num_states
    rewards = torch.randn(3, 1 if state_reward else A, S, generator=torch.Generator().manual_seed(horizon))
    counts, index, count, successor = kernel_inputs(task, rewards)
    kernels = compiled.regret_kernels()
    advantages, policies = torch.empty(3, A, S), torch.empty(horizon, 3, A, S)
    minus_z = torch.empty(3, counts.shape[1])
    kernels.advantages_and_logits(rewards.numpy(), successor, advantages.numpy(), policies.numpy(), index.numpy(),
                                  count.numpy(), minus_z.numpy())
    expected, weights = soft_advantages(task.mdp, rewards, horizon, 1.0, math.inf)
    assert torch.equal(advantages, expected) and torch.equal(policies, weights)
    z = (counts.double() * expected.reshape(3, 1, A * S).double()).sum(-1)
    torch.testing.assert_close(minus_z.double(), -z, rtol=1e-5, atol=1e-5)

    y = torch.rand(3, counts.shape[1], generator=torch.Generator().manual_seed(1))
    weight = torch.full_like(y, 1.0 / y.shape[1])
    sigma = torch.sigmoid(-minus_z)
    features = (torch.arange(A * S) % S) if state_reward else torch.arange(A * S)
    grad = torch.empty(3, S if state_reward else A * S)
    kernels.regret_gradient(sigma.numpy(), y.numpy(), weight.numpy(), index.numpy(), count.numpy(), policies.numpy(),
                            successor, features.numpy(), grad.numpy())
    cotangent = ((sigma - y) * weight).unsqueeze(-1).mul(counts).sum(1).view(3, A, S)
    reference = advantage_vjp(task.mdp, weights, cotangent, 1.0)                          # [3, A, S]
    reference = reference.sum(-2) if state_reward else reference.reshape(3, A * S)
    torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-6)


def test_a_nan_reward_gives_nan_advantages_as_torch_does_and_leaves_the_other_rows_alone():
    """A diverged fit must show (NaN, as torch.amax passes it on), not raise or vanish; rows stay apart."""
    from rlhf.core.advantages import soft_advantages

    task = rlhf.RandomGridWorld(3)
    A, S = task.mdp.num_actions, task.mdp.num_states
    rewards = torch.randn(2, A, S, generator=torch.Generator().manual_seed(0))
    rewards[0, 0, 0] = rewards[0, 2, 5] = float("nan")                 # action 0 too: the max starts there
    _, index, count, successor = kernel_inputs(task, rewards)
    advantages, policies = torch.empty(2, A, S), torch.empty(task.horizon, 2, A, S)
    minus_z = torch.empty(2, index.shape[1])
    compiled.regret_kernels().advantages_and_logits(rewards.numpy(), successor, advantages.numpy(), policies.numpy(),
                                                    index.numpy(), count.numpy(), minus_z.numpy())
    expected, weights = soft_advantages(task.mdp, rewards, task.horizon, 1.0, math.inf)
    assert bool(advantages[0].isnan().any()) and bool(policies[:, 0].isnan().any())
    torch.testing.assert_close(advantages, expected, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(policies, weights, rtol=0, atol=0, equal_nan=True)
    assert not bool(advantages[1].isnan().any()) and not bool(minus_z[1].isnan().any())


def test_a_horizon_below_1_is_refused():
    task = rlhf.RandomGridWorld(0)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        RegretRewardLearner(task.new_reward_model(rlhf.Keys.from_seeds([0])), LearnerConfig(), task.mdp, 0)
