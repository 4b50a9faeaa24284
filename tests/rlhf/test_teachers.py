"""Each teacher's label distribution against its definition, on constructed pairs.

Tolerances are 5 standard errors of a Bernoulli mean over n samples: a correct
teacher fails one comparison with probability < 1e-6.
"""

import math

import pytest
import torch

from helpers import keys_from
from rlhf import Teacher

N = 20_000
RANGE = (0.0, 1.0)      # step rewards in [0, 1]: normalised return = mean step reward


def tol(p, n=N):
    return 5 * math.sqrt(max(p * (1 - p), 1e-4) / n)


def constant_pairs(r1, r2, T=4, n=N):
    return torch.full((n, T), r1 / T), torch.full((n, T), r2 / T)


def mean_label(teacher, r1, r2, rng, T=4):
    labels = teacher.label(*constant_pairs(r1, r2, T), RANGE, keys_from(rng))
    return float(labels.prefer_first[labels.answered].mean()), labels


@pytest.mark.parametrize("beta,r1,r2", [(1.0, 1.0, 0.0), (2.0, 0.25, 0.75), (0.5, 3.0, 1.0)])
def test_boltzmann_matches_the_softmax(beta, r1, r2, rng):
    p = 1 / (1 + math.exp(-beta * (r1 - r2)))
    got, labels = mean_label(Teacher(beta=beta), r1, r2, rng)
    assert got == pytest.approx(p, abs=tol(p))
    assert labels.entropy == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), rel=1e-5)
    assert set(labels.prefer_first.unique().tolist()) <= {0.0, 1.0}      # drawn hard labels


def test_oracle_and_deterministic_ties(rng):
    assert mean_label(Teacher.parse("oracle"), 0.6, 0.5, rng)[0] == 1.0
    assert mean_label(Teacher.parse("oracle"), 0.5, 0.5, rng)[0] == 0.5
    assert mean_label(Teacher.parse("deterministic"), 0.5, 0.5, rng)[0] == 0.0   # ties to the second
    assert mean_label(Teacher.parse("deterministic"), 0.5, 0.6, rng)[0] == 0.0


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_mistake_flips_with_probability_eps(eps, rng):
    got, _ = mean_label(Teacher.parse(f"oracle+mistake:{eps}"), 1.0, 0.0, rng)
    assert got == pytest.approx(1 - eps, abs=tol(eps))


def test_myopic_weights_recent_steps():
    """Segment 1 is good early, segment 2 late: a myopic teacher prefers 2."""
    early = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    late = torch.tensor([[0.0, 0.0, 0.0, 0.9]])
    g = torch.Generator().manual_seed(0)
    assert Teacher.parse("oracle").label(early, late, RANGE, keys_from(g)).prefer_first.item() == 1.0
    assert Teacher.parse("myopic:0.5+oracle").label(early, late, RANGE, keys_from(g)).prefer_first.item() == 0.0


def test_skip_drops_pairs_whose_best_return_is_low(rng):
    teacher = Teacher.parse("skip:0.5+oracle")
    low = teacher.label(*constant_pairs(0.4 * 4, 0.2 * 4, n=10), RANGE, keys_from(rng))
    high = teacher.label(*constant_pairs(0.6 * 4, 0.2 * 4, n=10), RANGE, keys_from(rng))
    assert not low.answered.any() and high.answered.all()


def test_equal_gives_half_and_mistakes_leave_it_half(rng):
    got, labels = mean_label(Teacher.parse("equal:0.1+oracle+mistake:0.5"), 0.5 * 4, 0.45 * 4, rng)
    assert got == 0.5 and labels.entropy == pytest.approx(math.log(2))
    got, _ = mean_label(Teacher.parse("equal:0.1+oracle"), 0.5 * 4, 0.3 * 4, rng)
    assert got == 1.0


def test_composition_order_skip_before_equal_before_mistake(rng):
    teacher = Teacher.parse("skip:0.9+equal:0.5+oracle+mistake:1")
    skipped = teacher.label(*constant_pairs(0.5 * 4, 0.4 * 4, n=50), RANGE, keys_from(rng))
    assert not skipped.answered.any()                       # skip wins over equal
    answered = teacher.label(*constant_pairs(0.95 * 4, 0.0, n=50), RANGE, keys_from(rng))
    assert answered.answered.all() and (answered.prefer_first == 0.0).all()   # oracle 1, then flipped


@pytest.mark.parametrize("spec", ["boltzmann:1", "oracle", "deterministic", "skip:0.1+equal:0.05+myopic:0.9+boltzmann:2+mistake:0.1"])
def test_spec_round_trip(spec):
    assert str(Teacher.parse(spec)) == spec
    assert Teacher.parse(str(Teacher.parse(spec))) == Teacher.parse(spec)


@pytest.mark.parametrize("spec,needle", [("boltzman:1", "cannot read"), ("mistake:2", "mistake"),
                                         ("boltzmann:0", "beta"), ("oracle+boltzmann:1", "two rational"),
                                         ("myopic:0", "myopic"), ("skip:x", "cannot read")])
def test_bad_specs(spec, needle):
    with pytest.raises(ValueError, match=needle):
        Teacher.parse(spec)
