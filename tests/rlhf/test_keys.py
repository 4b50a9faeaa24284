"""Counter-based random numbers: pure functions of (key, index), the same in any batch."""

import math

import torch

import rlhf
from rlhf.core.keys import _GOLDEN, _mix, _mix_int, _signed


def test_the_tensor_mixer_equals_splitmix64_on_python_ints():
    values = [0, 1, 2**32 - 1, 2**40 + 7, 2**63 - 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15]
    mixed = _mix(torch.tensor([_signed(v) for v in values], dtype=torch.int64))
    assert [int(m) % 2**64 for m in mixed] == [_mix_int(v) for v in values]


def test_draws_are_the_halves_of_mixed_counters():
    key = rlhf.Keys.from_seeds([7])[0]
    word = _mix_int(int(key.key) % 2**64 + 3 * _GOLDEN)                # counter 3 -> draws 6 and 7
    bits = key.bits(8)
    assert (int(bits[6]), int(bits[7])) == (word & 0xFFFFFFFF, word >> 32)


def test_a_key_in_a_batch_draws_what_it_draws_alone():
    batch = rlhf.Keys.from_seeds(range(50)).fold(3, 9)
    together, normal = batch.uniform(1001), batch.normal(33)
    for k in (0, 17, 49):
        alone = rlhf.Keys.from_seeds([k]).fold(3, 9)
        assert torch.equal(alone.uniform(1001)[0], together[k]) and torch.equal(alone.normal(33)[0], normal[k])
    assert torch.equal(batch.bits(10), batch.bits(1000)[:, :10])        # a prefix does not depend on n


def test_streams_differ_by_seed_and_purpose_and_look_uniform():
    keys = rlhf.Keys.from_seeds([0, 1])
    assert not torch.equal(keys.uniform(100)[0], keys.uniform(100)[1])
    assert not torch.equal(keys.fold(0).uniform(100), keys.fold(1).uniform(100))
    assert not torch.equal(keys.fold(0, 1).uniform(100), keys.fold(1, 0).uniform(100))
    u = rlhf.Keys.from_seeds([5]).uniform(200_000)[0].double()
    n = u.numel()
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 5 * math.sqrt(1 / 12 / n)
    counts = torch.histc(u, bins=20, min=0, max=1)
    chi2 = float(((counts - n / 20) ** 2 / (n / 20)).sum())
    assert chi2 < 60                                                    # 19 dof: p < 1e-5 beyond ~50
    z = rlhf.Keys.from_seeds([6]).normal(100_000)[0].double()
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    bits31 = rlhf.Keys.from_seeds([6]).bits31(1000)
    assert bits31.dtype == torch.int32 and int(bits31.min()) >= 0


def test_grid_draws_are_bits31_in_rows_with_keys_in_the_middle():
    """Draw (r, c) of the grid is bits31's draw r·cols + c, for even and odd cols (0 and 1 too) and
    keys of any shape; a key's grid is its slice of the batch's."""
    for shape in [(), (5,), (2, 3)]:
        keys = rlhf.Keys(rlhf.Keys.from_seeds(range(6)).key[:max(1, math.prod(shape))].view(shape))
        for cols in (0, 1, 2, 5, 6):
            grid = keys.bits31_grid(4, cols)
            assert grid.shape == (4, *shape, cols) and grid.is_contiguous()
            flat = keys.bits31(4 * cols).view(*shape, 4, cols)
            assert torch.equal(grid, flat.movedim(-2, 0))
    keys = rlhf.Keys.from_seeds(range(5))
    assert torch.equal(keys[2].bits31_grid(3, 4), keys.bits31_grid(3, 4)[:, 2])
