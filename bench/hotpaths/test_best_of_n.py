"""Exact best-of-n (#25): 10^5 sequences (a string task of vocab 10, length 5) and 20 values of n, from
the enumeration to every n's distribution, KL, proxy and gold returns; the issue asks for under 0.5 s
on one core."""

import pytest

import rlhf

from .conftest import SOME, info

VOCAB, LENGTH = "ABCDEFGHIJ", 5
NS = [2 ** k for k in range(20)]


@pytest.mark.benchmark(group="best_of_n")
def test_exact_best_of_n_curve(benchmark):
    task = rlhf.StringTask(vocab=VOCAB, target="A" * LENGTH, reward="random:0")
    proxy = rlhf.Keys.from_seeds([1])[0].normal(LENGTH * len(VOCAB)).view(LENGTH, len(VOCAB))
    info(benchmark, "best_of_n", "exact", len(VOCAB) ** LENGTH, task="strings", size=LENGTH, slip=0.0)
    curve = benchmark.pedantic(rlhf.best_of_n_curve, args=(task, proxy, NS), **SOME)
    assert len(curve) == len(NS) and curve[0].probs.shape == (len(VOCAB) ** LENGTH,)
    assert all(b.kl <= b.kl_bound + 1e-12 for b in curve)
