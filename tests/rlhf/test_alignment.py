"""rlhf.align and its registry: the losses as TRL writes them, their derivatives, the batched optimiser
(seed k alone == seed k in a batch, bit for bit), the exact population solver, reference policies."""

import math

import pytest
import torch
import torch.nn.functional as F

import rlhf
from rlhf.policies import cdpo, cpl, dpo, ipo, slic
from rlhf.policies.methods import margin_loss

METHODS = ["rlhf", "dpo", "ipo", "cdpo", "slic", "cpl", "pl-dpo", "rk-dpo", "davidson-dpo"]


def test_every_method_is_registered_and_unknown_names_are_refused():
    assert list(rlhf.ALIGNMENT_METHODS) == METHODS
    task = rlhf.StringTask()
    data = rlhf.PreferenceData.from_pairs(task, [("ABC", "CBA")])
    with pytest.raises(ValueError, match="alignment method must be one of rlhf, dpo"):
        rlhf.align(task, data, method="ppo")
    with pytest.raises(TypeError, match="label_smoothing"):
        rlhf.align(task, data, method="dpo", label_smoothing=0.1)
    with pytest.raises(ValueError, match="beta"):
        rlhf.align(task, data, beta=0.0)
    with pytest.raises(ValueError, match="steps"):
        rlhf.align(task, data, steps=0)
    with pytest.raises(ValueError, match="already registered"):
        rlhf.register_alignment_method(rlhf.ALIGNMENT_METHODS["dpo"])


def test_a_method_of_your_own_is_one_registration():
    """A method that keeps the reference, written as a user would (its fit returns one policy per seed)."""
    from rlhf.policies.align import AlignFit

    def keep_reference(problem):
        K = len(problem.seeds)
        return AlignFit(problem.reference.expand(K, *problem.reference.shape).clone(), [{"loss": 0.0}] * K)

    method = rlhf.AlignmentMethod("keep-reference-test", keep_reference, description="the reference itself")
    rlhf.register_alignment_method(method)
    try:
        task = rlhf.StringTask()
        result = rlhf.align(task, rlhf.PreferenceData.from_pairs(task, [("ABC", "CBA")]), method="keep-reference-test")
        assert result.metrics["kl"] == 0.0 and result.metrics["win_rate"] == pytest.approx(0.5, abs=1e-12)
    finally:
        rlhf.ALIGNMENT_METHODS._items.pop("keep-reference-test")


Z = torch.linspace(-6, 6, 25, dtype=torch.float64)


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.5])
def test_losses_are_trls_on_hard_labels(beta):
    one, zero = torch.ones_like(Z), torch.zeros_like(Z)
    torch.testing.assert_close(dpo.dpo_loss(Z, one, beta), -F.logsigmoid(beta * Z))
    torch.testing.assert_close(dpo.dpo_loss(Z, zero, beta), -F.logsigmoid(-beta * Z))
    eps = 0.2
    torch.testing.assert_close(cdpo.cdpo_loss(Z, one, beta, eps),
                               -F.logsigmoid(beta * Z) * (1 - eps) - F.logsigmoid(-beta * Z) * eps)
    torch.testing.assert_close(ipo.ipo_loss(Z, one, beta), (Z - 1 / (2 * beta)) ** 2)
    torch.testing.assert_close(slic.hinge_loss(Z, one, beta), torch.relu(1 - beta * Z))
    h1, h2 = Z, Z.flip(0) * 0.5
    lam = 0.7
    expected = -torch.log(torch.exp(beta * h1) / (torch.exp(beta * h1) + torch.exp(lam * beta * h2)))
    torch.testing.assert_close(cpl.cpl_loss(h1, h2, one, beta, lam), expected)


PAIR_LOSSES = [
    ("dpo", lambda: dpo.make_dpo(0.7, 4)),
    ("cdpo", lambda: cdpo.make_cdpo(0.7, 4, 0.15)),
    ("ipo", lambda: ipo.make_ipo(0.7, 4, False)),
    ("ipo-averaged", lambda: ipo.make_ipo(0.7, 4, True)),
    ("slic-smoothed", lambda: slic.make_slic(0.7, 4).smoothed(0.3)),
    ("cpl", lambda: cpl.make_cpl(0.7, 4, 0.6)),
]


@pytest.mark.parametrize("name,make", PAIR_LOSSES, ids=[c[0] for c in PAIR_LOSSES])
def test_pair_loss_derivatives_match_autograd(name, make, rng):
    loss = make()
    h1 = torch.randn(40, generator=rng, dtype=torch.float64).mul_(3).requires_grad_()
    h2 = torch.randn(40, generator=rng, dtype=torch.float64).mul_(3).requires_grad_()
    y = torch.rand(40, generator=rng, dtype=torch.float64)
    g1, g2 = torch.autograd.grad(loss.loss(h1, h2, y).sum(), (h1, h2), create_graph=True)
    d1, d2 = loss.gradient(h1, h2, y)
    torch.testing.assert_close(d1, g1)
    torch.testing.assert_close(d2, g2)
    c11, c12, c22 = loss.curvature(h1, h2, y)
    torch.testing.assert_close(c11, torch.autograd.grad(g1.sum(), h1, retain_graph=True)[0])
    torch.testing.assert_close(c12, torch.autograd.grad(g1.sum(), h2, retain_graph=True)[0])
    torch.testing.assert_close(c22, torch.autograd.grad(g2.sum(), h2)[0])


def test_the_smoothed_hinge_is_within_kappa_log_2():
    loss = slic.make_slic(0.7, 4)
    y = torch.rand(25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for kappa in (1.0, 0.1, 0.01):
        gap = loss.smoothed(kappa).loss(Z, 0 * Z, y) - loss.loss(Z, 0 * Z, y)
        assert bool((gap >= -1e-15).all()) and float(gap.max()) <= kappa * math.log(2) + 1e-15


def sampled(task, seeds, pairs=40, teacher="boltzmann:1+mistake:0.1"):
    return [rlhf.PreferenceData.sampled(task, teacher, pairs, seed=k) for k in seeds]


TASKS = [
    ("strings", lambda: rlhf.StringTask(vocab="ABC", target="ABCAB", reward="random:2")),
    ("grid-slip", lambda: rlhf.GridWorld(size=4, slip=0.2, horizon=7)),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,make", TASKS, ids=[c[0] for c in TASKS])
def test_seed_k_alone_equals_seed_k_in_a_batch(name, make, method):
    task = make()
    seeds = [0, 3, 5, 8]
    data = sampled(task, seeds)
    batch = rlhf.align_batch(task, data, method=method, beta=0.5, seeds=seeds, steps=40)
    for k, seed in enumerate(seeds):
        alone = rlhf.align(task, data[k], method=method, beta=0.5, seed=seed, steps=40)
        assert torch.equal(batch[k].policy, alone.policy), (method, seed)
        assert batch[k].metrics == alone.metrics
    assert not torch.equal(batch[0].policy, batch[1].policy)


def test_batch_invariance_with_skipped_pairs_and_time_indexed_policies():
    task = rlhf.GridWorld(size=3, slip=0.1, horizon=5)
    data = sampled(task, range(3), pairs=30, teacher="skip:0.3+boltzmann:2")
    for method in ("dpo", "rlhf"):
        batch = rlhf.align_batch(task, data, method=method, seeds=range(3), steps=30, time_indexed=True)
        for k in range(3):
            alone = rlhf.align(task, data[k], method=method, seed=k, steps=30, time_indexed=True)
            assert alone.policy.shape == (5, 9, 5) and torch.equal(batch[k].policy, alone.policy)


def test_same_seed_same_result_and_one_dataset_for_every_seed():
    task = rlhf.StringTask(vocab="ABC", target="ABCA", reward="random:0")
    data = rlhf.PreferenceData.sampled(task, "boltzmann:1", 50, seed=1)
    a = rlhf.align(task, data, method="rlhf", seed=2, steps=50)
    b = rlhf.align(task, data, method="rlhf", seed=2, steps=50)
    assert torch.equal(a.policy, b.policy) and a.metrics == b.metrics
    shared = rlhf.align_batch(task, data, method="rlhf", seeds=[2, 7], steps=50)
    assert torch.equal(shared[0].policy, a.policy) and not torch.equal(shared[1].policy, a.policy)  # own init


@pytest.mark.parametrize("method", ["dpo", "ipo", "cdpo", "cpl"])
def test_the_optimiser_reaches_the_exact_empirical_optimum(method):
    """Adam on the data's loss converges to what the Newton solver finds for the same data (exact=True):
    the closed-form gradient is the loss's gradient."""
    task = rlhf.StringTask(vocab="ABC", target="ABCA", reward="random:4")
    data = rlhf.PreferenceData.sampled(task, "boltzmann:2", 300, seed=0)
    exact = rlhf.align(task, data, method=method, beta=0.5, exact=True)
    assert exact.metrics["solver_converged"] == 1.0 and exact.metrics["solver_bounded"] == 1.0
    adam = rlhf.align(task, data, method=method, beta=0.5, steps=3000, lr=0.02)
    torch.testing.assert_close(adam.policy.double(), exact.policy, atol=2e-3, rtol=0)
    assert adam.metrics["loss"] == pytest.approx(exact.metrics["loss"], abs=1e-6)


def test_method_identities_on_the_population(rng):
    """cDPO at ε = 0 is DPO; CPL at λ = 1 with a uniform reference is DPO (the reference's per-step
    log-probability cancels between equally long trajectories); length-averaged IPO at β is IPO at β/T."""
    task = rlhf.StringTask(vocab="ABC", target="ABCA", reward="random:1")
    pop = rlhf.PreferenceData.population(task, "boltzmann:3")
    base = rlhf.align(task, pop, method="dpo", beta=0.4).policy
    torch.testing.assert_close(rlhf.align(task, pop, method="cdpo", beta=0.4, label_smoothing=0.0).policy, base)
    torch.testing.assert_close(rlhf.align(task, pop, method="cpl", beta=0.4).policy, base)
    averaged = rlhf.align(task, pop, method="ipo", beta=0.4, length_average=True).policy
    torch.testing.assert_close(averaged, rlhf.align(task, pop, method="ipo", beta=0.1).policy)


def test_population_solve_reports_its_tolerance():
    task = rlhf.StringTask(vocab="ABC", target="ABCABC")
    pop = rlhf.PreferenceData.population(task, "boltzmann:1")
    for method in ("dpo", "ipo", "cdpo", "cpl", "rlhf"):
        result = rlhf.align(task, pop, method=method, beta=0.5)
        assert result.metrics["solver_converged"] == 1.0 and result.metrics["solver_gradient"] <= 1e-10, method
    small = rlhf.StringTask(vocab="ABC", target="ABCA", reward="random:3")
    pop = rlhf.PreferenceData.population(small, "boltzmann:1")
    hinge = rlhf.align(small, pop, method="slic", beta=0.5)
    assert hinge.metrics["solver_converged"] == 1.0
    # within 1e-6·log 2 of the hinge's minimum: the optimiser, run long, does no better
    near = rlhf.align(small, pop, method="slic", beta=0.5, exact=False, steps=3000, lr=0.01)
    assert hinge.metrics["loss"] <= near.metrics["loss"] + 1e-6


def test_reference_policies(rng):
    task = rlhf.StringTask(vocab="ABC", target="ABCA")
    sft = rlhf.sft_policy(task, demonstrations=500, behaviour="boltzmann:3", seed=0, prior=0.0)
    assert sft.shape == (4, 3) and torch.allclose(sft.sum(-1), torch.ones(4, dtype=torch.float64))
    demos = rlhf.rollout(task.mdp, rlhf.core.planning.soft_optimal_policy(task.mdp, task.true_reward, 4,
                                                                         temperature=3.0),
                         500, 4, rlhf.Keys.from_seeds([0])[0].fold(5))
    counts = torch.zeros(4, 3, dtype=torch.float64)
    for s, a in zip(demos.states.reshape(-1).tolist(), demos.actions.reshape(-1).tolist(), strict=True):
        counts[s, a] += 1
    torch.testing.assert_close(sft, counts / counts.sum(-1, keepdim=True))
    assert bool((sft.argmax(-1) == task.target_tokens).all())
    result = rlhf.align(task, rlhf.PreferenceData.from_pairs(task, [("ABCA", "CCCC")]), reference="sft:200:optimal",
                        steps=5)
    torch.testing.assert_close(result.reference, rlhf.sft_policy(task, 200, "optimal"))
    table = torch.softmax(torch.randn(4, 3, generator=rng, dtype=torch.float64), -1)
    assert torch.equal(rlhf.align(task, rlhf.PreferenceData.from_pairs(task, [("ABCA", "CCCC")]), reference=table,
                                  steps=5).reference, table)
    with pytest.raises(ValueError, match="behaviour"):
        rlhf.sft_policy(task, 10, behaviour="expert")
    with pytest.raises(ValueError, match="reference"):
        rlhf.align(task, rlhf.PreferenceData.from_pairs(task, [("ABCA", "CCCC")]), reference="best")


def test_a_reference_without_support_for_the_data_is_refused():
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    reference = torch.tensor([[0.5, 0.5, 0.0]] * 3, dtype=torch.float64)
    data = rlhf.PreferenceData.from_pairs(task, [("ABC", "AAA")])
    with pytest.raises(ValueError, match="probability 0"):
        rlhf.align(task, data, reference=reference)
    assert rlhf.align(task, data, method="cpl", reference=reference, steps=5).metrics["kl"] < math.inf


def test_margin_loss_helper_is_a_function_of_the_margin():
    loss = margin_loss(lambda z, y: (z - y) ** 2, lambda z, y: 2 * (z - y), lambda z, y: 2 + 0 * z)
    h1, h2, y = torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([0.5])
    assert float(loss.loss(h1, h2, y)) == 2.25 and [float(g) for g in loss.gradient(h1, h2, y)] == [3.0, -3.0]
