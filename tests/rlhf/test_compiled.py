"""The compiled kernels (rlhf.core.compiled) give the bits of the torch code they replace: each
caller's torch path (what runs off the CPU or without numba) is the reference."""

import math

import pytest
import torch

import rlhf
from rlhf.core import batched, compiled, keys
from rlhf.core.keys import Keys

pytestmark = pytest.mark.skipif(compiled.kernels() is None, reason="numba is not installed")


@pytest.fixture
def torch_path(monkeypatch):
    """Run the callers' torch code instead of the compiled kernels (loaded first: small calls use them
    only once loaded, :func:`rlhf.core.compiled.loaded`)."""
    assert compiled.kernels() is not None and compiled.loaded()
    def run(fn, *args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(compiled, "available", lambda *tensors: False)
            return fn(*args, **kwargs)
    return run


def _policy(batch, S, A, seed, steps=None):
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, *(() if steps is None else (steps,)), S, A)
    logits = torch.randn(shape, generator=g) * 2
    logits[..., 0, 1] = -torch.inf          # a zero-probability action: never drawn by either path
    return torch.softmax(logits, -1)


@pytest.mark.parametrize("task", [rlhf.GridWorld(size=5), rlhf.GridWorld(size=4, slip=0.2),
                                  rlhf.StringTask(vocab="ABC", target="ABCA", slip=0.1)], ids=str)
@pytest.mark.parametrize("seeds", [[0], [3, 1, 4]])
def test_rollout_walk_equals_the_torch_loop(task, seeds, torch_path):
    mdp, k = task.mdp, Keys.from_seeds(seeds).fold(7)
    policy = _policy(k.shape, mdp.num_states, mdp.num_actions, seed=len(seeds))
    with torch.inference_mode():
        fast = rlhf.rollout(mdp, policy, 64, 9, k)
        slow = torch_path(rlhf.rollout, mdp, policy, 64, 9, k)
    assert torch.equal(fast.states, slow.states) and torch.equal(fast.actions, slow.actions)
    assert fast.states.shape == (len(seeds), 64, 9)
    assert len(torch.unique(fast.actions)) > 1                 # the walk did draw, not copy zeros


def test_time_indexed_rollout_walk_equals_the_torch_loop(torch_path):
    mdp = rlhf.GridWorld(size=4, slip=0.1).mdp
    k = Keys.from_seeds([2, 5]).fold(1)
    policy = _policy(k.shape, mdp.num_states, mdp.num_actions, seed=9, steps=6)
    with torch.inference_mode():
        fast = rlhf.rollout(mdp, policy, 31, 6, k, time_indexed=True)
        slow = torch_path(rlhf.rollout, mdp, policy, 31, 6, k, time_indexed=True)
    assert torch.equal(fast.states, slow.states) and torch.equal(fast.actions, slow.actions)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_sums_add_in_step_order_like_the_torch_loop(dtype, torch_path):
    g = torch.Generator().manual_seed(0)
    # magnitudes spread over 2^±20, so any other order of the adds rounds differently
    scale = torch.exp2(torch.randint(-20, 20, (3, 17, 30), generator=g).float())
    values = (torch.randn(3, 17, 30, generator=g) * scale).to(dtype)
    fast, slow = batched.step_sums(values), torch_path(batched.step_sums, values)
    assert fast.dtype == dtype and torch.equal(fast, slow)
    assert not torch.equal(fast, values.sum(-1)) or not torch.equal(fast, values.flip(-1).sum(-1))
    strided = values.transpose(0, 1)                    # a non-contiguous input
    assert torch.equal(batched.step_sums(strided), torch_path(batched.step_sums, strided))


def test_mix_equals_the_torch_passes_and_the_python_reference(torch_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-2 ** 63, 2 ** 63 - 1, (257,), dtype=torch.int64, generator=g)
    fast, slow = keys._mix(x.clone()), torch_path(keys._mix, x.clone())
    assert torch.equal(fast, slow)
    assert [int(v) for v in fast[:5]] == [keys._signed(keys._mix_int(int(v))) for v in x[:5]]
    draws = Keys.from_seeds([0, 9]).fold(3, 4)
    assert torch.equal(draws.bits31_grid(5, 8), torch_path(draws.bits31_grid, 5, 8))


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_key_draws_equal_the_torch_passes(shape, torch_path):
    k = Keys(Keys.from_seeds(range(max(1, math.prod(shape)))).key.reshape(shape))
    for draw in (lambda k: k.fold(5, 2**40).key, lambda k: k.uniform(7), lambda k: k.bits(9),
                 lambda k: k.bits31(5), lambda k: k.normal(3)):
        fast, slow = draw(k), torch_path(draw, k)
        assert fast.shape == slow.shape and fast.dtype == slow.dtype and torch.equal(fast, slow)
    assert len(torch.unique(k.uniform(50))) > 40
