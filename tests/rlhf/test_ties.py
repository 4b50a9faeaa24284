"""Ties (#26): the Rao–Kupper and Davidson models against the papers' definitions, the teacher that
draws from them, and the tie-aware learners' losses, gradients and fitted tie parameters."""

import math

import pytest
import torch
from helpers import keys_from

import rlhf
from rlhf import Teacher
from rlhf.learning.rankings import RankingLearner, tie_loss
from rlhf.preferences import ties

N = 60_000
RANGE = (0.0, 1.0)


def tol(p, n=N):
    return 5 * math.sqrt(max(p * (1 - p), 1e-4) / n)


def rao_kupper_by_strengths(r_i, r_j, theta):
    """Rao and Kupper (1967) in strengths π = e^r: (π_i/(π_i + θπ_j), π_j/(θπ_i + π_j), the rest)."""
    p_i, p_j = math.exp(r_i), math.exp(r_j)
    win, lose = p_i / (p_i + theta * p_j), p_j / (theta * p_i + p_j)
    tie = (theta ** 2 - 1) * p_i * p_j / ((p_i + theta * p_j) * (theta * p_i + p_j))
    return win, lose, tie


def davidson_by_strengths(r_i, r_j, nu):
    """Davidson (1970): π_i, π_j and ν√(π_i π_j), each over their sum."""
    p_i, p_j = math.exp(r_i), math.exp(r_j)
    tie = nu * math.sqrt(p_i * p_j)
    total = p_i + p_j + tie
    return p_i / total, p_j / total, tie / total


def probabilities_by_strengths(model, z, log_param):
    """Both models as above, in autograd-friendly torch: a = π_i/π_j = e^z and the parameter e^{log}."""
    a, c = torch.exp(z), torch.exp(torch.as_tensor(log_param, dtype=z.dtype))
    if model == "rao-kupper":
        return a / (a + c), 1 / (c * a + 1), (c ** 2 - 1) * a / ((a + c) * (c * a + 1))
    total = a + 1 + c * a.sqrt()
    return a / total, 1 / total, c * a.sqrt() / total


MARGINS = [(0.0, 0.0), (1.0, 0.0), (-0.7, 1.5), (4.0, -3.0), (0.2, 0.1)]


@pytest.mark.parametrize("r_i,r_j", MARGINS)
@pytest.mark.parametrize("theta", [1.0001, 2.0, 5.0])
def test_rao_kupper_is_the_papers_model_and_sums_to_one(r_i, r_j, theta):
    z = torch.tensor(r_i - r_j, dtype=torch.float64)
    got = [float(p) for p in ties.rao_kupper(z, math.log(theta))]
    want = rao_kupper_by_strengths(r_i, r_j, theta)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert sum(got) == pytest.approx(1.0, rel=1e-12)
    assert got[0] == pytest.approx(1 / (1 + math.exp(-(r_i - r_j - math.log(theta)))), rel=1e-12)   # σ(z − log θ)


@pytest.mark.parametrize("r_i,r_j", MARGINS)
@pytest.mark.parametrize("nu", [0.01, 1.0, 4.0])
def test_davidson_is_the_papers_model_and_sums_to_one(r_i, r_j, nu):
    z = torch.tensor(r_i - r_j, dtype=torch.float64)
    got = [float(p) for p in ties.davidson(z, math.log(nu))]
    want = davidson_by_strengths(r_i, r_j, nu)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert sum(got) == pytest.approx(1.0, rel=1e-12)


def test_the_defaults_tie_equal_segments_with_probability_one_third():
    zero = torch.zeros((), dtype=torch.float64)
    assert float(ties.rao_kupper(zero, math.log(ties.DEFAULT_TIE_PARAMS["rao-kupper"]))[2]) == pytest.approx(1 / 3)
    assert float(ties.davidson(zero, math.log(ties.DEFAULT_TIE_PARAMS["davidson"]))[2]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("model,param", [("rao-kupper", 2.5), ("davidson", 0.7)])
def test_the_tie_losses_gradients_are_autograds(model, param, rng):
    z = (torch.randn(40, generator=rng, dtype=torch.float64) * 3).requires_grad_()
    log_param = torch.tensor(math.log(param), dtype=torch.float64, requires_grad=True)
    outcome = torch.randint(3, (40,), generator=rng)
    soft = torch.rand(40, generator=rng, dtype=torch.float64)
    win = torch.where(outcome == 0, soft, 0.0)          # a soft pair label weighs both wins
    lose = torch.where(outcome == 0, 1 - soft, (outcome == 1).double())
    tie = (outcome == 2).double()
    p_win, p_lose, p_tie = probabilities_by_strengths(model, z, log_param)
    want = -(win * p_win.log() + lose * p_lose.log() + tie * p_tie.log())
    want.sum().backward()
    loss, g_z, g_log = tie_loss(model, z.detach(), log_param.detach(), win, lose, tie)
    torch.testing.assert_close(loss, want.detach())
    torch.testing.assert_close(g_z, z.grad)
    torch.testing.assert_close(g_log.sum(), log_param.grad)


@pytest.mark.parametrize("spec,model,param,r1,r2", [("boltzmann:1+rao-kupper:2", "rao-kupper", 2.0, 1.0, 0.5),
                                                    ("boltzmann:2+davidson:1.5", "davidson", 1.5, 0.2, 0.6)])
def test_a_tie_model_teacher_answers_first_equal_or_second_with_the_models_probabilities(spec, model, param, r1, r2,
                                                                                          rng):
    teacher = Teacher.parse(spec)
    T = 4
    labels = teacher.label(torch.full((N, T), r1 / T), torch.full((N, T), r2 / T), RANGE, keys_from(rng))
    reference = rao_kupper_by_strengths if model == "rao-kupper" else davidson_by_strengths
    win, lose, tie = reference(teacher.beta * r1, teacher.beta * r2, param)
    y = labels.prefer_first
    for got, want in ((float((y == 1).float().mean()), win), (float((y == 0.5).float().mean()), tie),
                      (float((y == 0).float().mean()), lose)):
        assert abs(got - want) < tol(want)
    assert float(labels.entropy) == pytest.approx(-sum(p * math.log(p) for p in (win, lose, tie)), rel=1e-5)


def test_a_flip_leaves_an_equal_answer_equal(rng):
    teacher = Teacher.parse("boltzmann:1+davidson:1+mistake:1")
    zero = torch.zeros(N, 3)
    labels = teacher.label(zero, zero, RANGE, keys_from(rng))
    plain = Teacher.parse("boltzmann:1+davidson:1").label(zero, zero, RANGE, labels_keys := keys_from(rng))
    again = teacher.label(zero, zero, RANGE, labels_keys)
    assert torch.equal(again.prefer_first, 1 - plain.prefer_first)          # 0.5 stays 0.5
    assert (labels.prefer_first == 0.5).any()


@pytest.mark.parametrize("spec", ["boltzmann:1+rao-kupper:2",
                                  "skip:0.1+equal:0.05+boltzmann:2+davidson:0.5+mistake:0.1"])
def test_tie_specs_round_trip(spec):
    assert str(Teacher.parse(spec)) == spec
    assert Teacher.parse(str(Teacher.parse(spec))) == Teacher.parse(spec)


@pytest.mark.parametrize("spec,needle", [("oracle+rao-kupper:2", "finite beta"), ("rao-kupper:1", "> 1"),
                                         ("davidson:0", "> 0"), ("boltzmann:1+davidson:1+rao-kupper:2", "two tie"),
                                         ("davidson", "cannot read")])
def test_bad_tie_specs(spec, needle):
    with pytest.raises(ValueError, match=needle):
        Teacher.parse(spec)


# ------------------------------------------------------------------ the learners
def pairs_of(task, rng, n, K=2):
    traj = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), n * K, task.horizon, keys_from(rng))
    return rlhf.Trajectories(traj.states.view(n, K, -1), traj.actions.view(n, K, -1))


@pytest.mark.parametrize("model", ["rao-kupper", "davidson"])
@pytest.mark.parametrize("learned", [False, True])
def test_the_tie_learner_equals_autograd_with_torch_adam(model, learned, rng):
    """K = 2: pair labels 1, 0, 0.5 (a tie) and a soft 0.7; the reward (and the tie parameter when
    learned: φ with η = softplus(φ), or λ = φ) fitted by autograd of the model's mean −log P and Adam."""
    task = rlhf.StringTask("ABCD", "DCB")
    n = 30
    cfg = rlhf.LearnerConfig("adam", 0.05, epochs=4, batch_size=0)
    net = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
    theta = net.theta.clone().requires_grad_()
    start = math.log(3.0)
    phi = torch.tensor(math.log(math.expm1(start)) if model == "rao-kupper" else start, requires_grad=True)
    opt = torch.optim.Adam([theta, phi] if learned else [theta], lr=cfg.lr)
    learner = RankingLearner(net, cfg, rank=2, rule="pair-split", ties=model, tie_param=3.0,
                             tie_fit="learned" if learned else "fixed")
    for _ in range(2):
        segments = pairs_of(task, rng, n)
        y = torch.tensor([1.0, 0.0, 0.5, 0.7, 0.3])[torch.randint(5, (n,), generator=rng)]
        features = net.features(segments)
        for _ in range(cfg.epochs):
            x = theta[features].sum(-1)
            z = x[:, 0] - x[:, 1]
            log_param = (torch.nn.functional.softplus(phi) if model == "rao-kupper" else phi) if learned else start
            p_win, p_lose, p_tie = probabilities_by_strengths(model, z, log_param)
            is_tie = y == 0.5
            nll = -torch.where(is_tie, p_tie.log(), y * p_win.log() + (1 - y) * p_lose.log())
            opt.zero_grad()
            nll.mean().backward()
            opt.step()
        learner.update_ranked(segments, prefer_first=y)
    torch.testing.assert_close(net.theta, theta.detach(), rtol=1e-4, atol=1e-5)
    want = math.exp((torch.nn.functional.softplus(phi) if model == "rao-kupper" else phi).item()) if learned else 3.0
    assert float(learner.tie_parameter()) == pytest.approx(want, rel=1e-4)


def test_pair_split_with_ties_is_the_mean_of_its_pairs_tie_losses(rng):
    """K = 3, positions 1 and 2 tied: pairs (0, 1) and (0, 2) are wins of position 0, (1, 2) a tie."""
    x = torch.randn(3, generator=rng, dtype=torch.float64)
    order = torch.tensor([2, 0, 1])
    task = rlhf.StringTask("AB", "AB")
    learner = RankingLearner(task.new_reward_model(rlhf.Keys.from_seeds([0])[0]), rlhf.LearnerConfig(),
                             rank=3, rule="pair-split", ties="davidson", tie_param=0.8)
    ranked = x[order].float().view(1, 1, 3)
    batch = {"win": torch.tensor([[[1.0, 1.0, 0.0]]]) / 3, "lose": torch.zeros(1, 1, 3),
             "tie": torch.tensor([[[0.0, 0.0, 1.0]]]) / 3}
    loss, _, _ = learner._loss(ranked, batch)
    nu = 0.8
    want = -(math.log(davidson_by_strengths(x[2], x[0], nu)[0]) + math.log(davidson_by_strengths(x[2], x[1], nu)[0])
             + math.log(davidson_by_strengths(x[0], x[1], nu)[2])) / 3
    assert float(loss) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("model,spec,param", [("rao-kupper", "boltzmann:1+rao-kupper:3", 3.0),
                                              ("davidson", "boltzmann:1+davidson:0.5", 0.5)])
def test_a_learned_tie_parameter_finds_the_teachers(model, spec, param):
    """The reward class holds the truth, so the joint maximum likelihood is consistent: on 8,000 pairs the
    fitted θ or ν is near the teacher's, started from the other model's default."""
    g = torch.Generator().manual_seed(4)
    truth = torch.randn(3, 4, generator=g)
    task = rlhf.TabularTask(rlhf.StringTask("ABCD", "DAB").mdp, truth, horizon=3)
    result = rlhf.train(task, teacher=spec, budget=8000, pairs_per_round=0, ties=model, tie_fit="learned",
                        query="uniform", lr=0.05, epochs=400, heldout_pairs=50)
    assert result.metrics["fitted_tie_param"] == pytest.approx(param, rel=0.15)


def test_ties_at_rank_two_keep_the_rest_of_the_loop():
    """ties="davidson" at K = 2 asks today's pairs (the same rollouts and labels as a run without ties)."""
    task = rlhf.StringTask("ABC", "CAB")
    seen_plain, seen_ties = [], []
    rlhf.train(task, teacher="boltzmann:1+davidson:1", budget=20, pairs_per_round=20, on_round=seen_plain.append,
               heldout_pairs=20)
    result = rlhf.train(task, teacher="boltzmann:1+davidson:1", budget=20, pairs_per_round=20, ties="davidson",
                        on_round=seen_ties.append, heldout_pairs=20)
    assert torch.equal(seen_plain[0].first.states, seen_ties[0].first.states)
    assert torch.equal(seen_plain[0].labels.prefer_first, seen_ties[0].labels.prefer_first)
    assert result.metrics["fitted_tie_param"] == 1.0
