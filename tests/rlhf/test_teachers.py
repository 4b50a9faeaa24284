"""Each teacher's label distribution against its definition, on constructed pairs.

Tolerances are 5 standard errors of a Bernoulli mean over n samples: a correct
teacher fails one comparison with probability < 1e-6.
"""

import math

import pytest
import torch
from helpers import keys_from

import rlhf
from rlhf import Teacher
from rlhf.core import batched

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


def test_optimal_advantages_equal_an_independent_dynamic_program(rng):
    from helpers import dense_hard_max_q
    for task in (rlhf.GridWorld(size=3, slip=0.2, horizon=5), rlhf.StringTask("ABC", "CAB", slip=0.3)):
        S, A = task.mdp.num_states, task.mdp.num_actions
        for reward in (task.true_reward, torch.randn(S, A, generator=rng)):
            q = dense_hard_max_q(task.mdp, reward, task.horizon)
            expected = q - q.max(-1, keepdim=True).values
            advantages = rlhf.optimal_advantages(task.mdp, reward, task.horizon)
            torch.testing.assert_close(advantages.double(), expected, atol=1e-5, rtol=1e-6)
            assert float(advantages.max()) == 0.0 and bool((advantages.amax(-1) == 0).all())


def test_a_regret_teacher_prefers_the_segment_with_less_regret():
    """Constructed segments on a 3×3 grid (goal (2, 2)): an oracle regret teacher ranks by summed
    optimal advantage, where partial return sees a tie."""
    task = rlhf.GridWorld(size=3, horizon=4, goal=[(2, 2)])
    advantages = rlhf.optimal_advantages(task.mdp, task.true_reward, task.horizon)
    up, stay = 0, 4
    # segment 1: at the goal's neighbour (1, 2), stay (a suboptimal action next to the goal);
    # segment 2: far from the goal, moving towards it (optimal steps, low reward)
    first = rlhf.Trajectories(torch.tensor([[5, 5]]), torch.tensor([[stay, stay]]))
    second = rlhf.Trajectories(torch.tensor([[0, 1]]), torch.tensor([[up, up]]))
    regret_1 = rlhf.step_rewards(advantages, first).sum(-1)
    regret_2 = rlhf.step_rewards(advantages, second).sum(-1)
    assert float(regret_1) < float(regret_2) == 0.0                     # staying loses, moving up is optimal
    assert float(rlhf.step_rewards(task.true_reward, first).sum()) == float(
        rlhf.step_rewards(task.true_reward, second).sum())               # partial return cannot tell them apart
    keys = rlhf.Keys.from_seeds([0])[0]
    oracle = rlhf.Teacher.parse("regret+oracle")
    labels = oracle.label(rlhf.step_rewards(advantages, first), rlhf.step_rewards(advantages, second),
                          (float(advantages.min()), 0.0), keys)
    assert labels.prefer_first.tolist() == [0.0]


def test_preference_model_specs_round_trip_and_reject_two_models():
    for spec in ("regret+boltzmann:1", "regret+skip:0.1+oracle+mistake:0.1", "partial+boltzmann:1"):
        teacher = rlhf.Teacher.parse(spec)
        assert rlhf.Teacher.parse(str(teacher)) == teacher
    assert str(rlhf.Teacher.parse("partial+boltzmann:1")) == "boltzmann:1"        # the default is not written
    assert rlhf.Teacher.parse("boltzmann:1+regret").preference_model is rlhf.PREFERENCE_MODELS["regret"]
    with pytest.raises(ValueError, match="two preference models"):
        rlhf.Teacher.parse("regret+partial+oracle")


def test_the_oracle_ties_segments_of_equal_return_whatever_the_order_of_their_steps():
    """The same step rewards in another order: a tie (0.5) for every pair, though float32 sums
    in step order do not cancel exactly for most of them (the hazard is real)."""
    g = torch.Generator().manual_seed(0)
    first = torch.randn(64, 30, generator=g) * 10
    second = first[:, torch.randperm(30, generator=g)]
    key = rlhf.Keys.from_seeds([0])[0]
    assert torch.equal(Teacher.parse("oracle").label(first, second, (-30.0, 30.0), key).prefer_first,
                       torch.full((64,), 0.5))
    assert torch.equal(Teacher.parse("deterministic").label(first, second, (-30.0, 30.0), key).prefer_first,
                       torch.zeros(64))
    assert (batched.step_sums(first - second) != 0).sum() > 32
