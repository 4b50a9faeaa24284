"""The regret learner (#29): Knox et al. (2022), a reward fitted by Bradley–Terry on segments' summed
optimal advantages under the learned reward (planning inside the loss), then planned on."""

import math
import types

import pytest
import torch

import rlhf
from rlhf.core import compiled
from rlhf.learning import regret as regret_module
from rlhf.learning.learner import LearnerConfig, RewardLearner
from rlhf.learning.regret import RegretRewardLearner


def pairs(task, n, length, keys, teacher="regret+oracle"):
    """n uniform pairs of ``length`` steps and a teacher's labels."""
    first, second = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, length, keys.fold(0)).split()
    scores = rlhf.optimal_advantages(task.mdp, task.true_reward, task.horizon)
    margin = rlhf.step_rewards(scores, first).double().sum(-1) - rlhf.step_rewards(scores, second).double().sum(-1)
    return first, second, (margin > 0).float() + 0.5 * (margin == 0).float()


def exact_loss(mdp, reward, horizon, first, second, y, discount=1.0):
    """The regret learner's loss at κ = ∞ in float64 from an independent dense dynamic program."""
    P = mdp.executed_transitions.double()
    eta = mdp.action_noise
    r = reward.double().reshape(mdp.num_states, -1).expand(mdp.num_states, mdp.num_actions)
    q = torch.zeros_like(r)
    for _ in range(horizon):
        q = r + discount * torch.einsum("ast,t->sa", P, q.amax(-1))
        q = (1 - eta) * q + eta * q.mean(-1, keepdim=True)
    advantages = q - q.amax(-1, keepdim=True)
    z = rlhf.step_rewards(advantages, first).sum(-1) - rlhf.step_rewards(advantages, second).sum(-1)
    return float((torch.nn.functional.softplus(z) - y.double() * z).mean())


@pytest.mark.parametrize("path", ["compiled", "torch"])
def test_at_kappa_infinity_the_loss_is_bradley_terry_on_rlhf_optimal_advantages_of_the_learned_reward(
        monkeypatch, keys, path):
    task = rlhf.RandomGridWorld(3)
    first, second, y = pairs(task, 40, 3, keys)
    model = task.new_reward_model(rlhf.Keys.from_seeds([5]))           # one seed, batched: theta [1, F]
    seen = []
    if path == "torch":
        real = regret_module.soft_advantages
        monkeypatch.setattr(regret_module, "soft_advantages", lambda *a: seen.append(real(*a)[0]) or real(*a))
    else:                              # record what the compiled forward pass hands the pairs' logits
        kernels = compiled.regret_kernels()

        def recorded(reward, successor, advantages, *rest):
            kernels.advantages_and_logits(reward, successor, advantages, *rest)
            seen.append(torch.from_numpy(advantages.copy()))

        monkeypatch.setattr(compiled, "regret_kernels", lambda: types.SimpleNamespace(
            sparse_pairs=kernels.sparse_pairs, regret_gradient=kernels.regret_gradient,
            advantages_and_logits=recorded))
    learner = RegretRewardLearner(model, LearnerConfig("sgd", 0.0, 2, 0), task.mdp, task.horizon, warm_start=False)
    learner._compiled = path == "compiled"
    loss = learner.update(first.__class__(first.states[None], first.actions[None]),
                          second.__class__(second.states[None], second.actions[None]), y[None])
    optimal = rlhf.optimal_advantages(task.mdp, model.reward(), task.horizon)            # [1, S, A]
    assert len(seen) == 2 and all(torch.equal(a.transpose(-1, -2), optimal) for a in seen)
    expected = exact_loss(task.mdp, model.reward()[0], task.horizon, first, second, y)
    assert float(loss[0]) == pytest.approx(expected, rel=1e-5)
    planted = optimal.clone()
    planted[0, 0, 0] += 1.0                 # the check can fail: a different table gives another loss
    z = rlhf.step_rewards(planted[0], first).sum(-1) - rlhf.step_rewards(planted[0], second).sum(-1)
    assert float(rlhf.bradley_terry_loss(z, y)) != pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("make", "discount"), [
    (lambda: rlhf.RandomGridWorld(3), 1.0), (lambda: rlhf.StringTask("ABC", "CAB", slip=0.2), 0.9),
    (lambda: rlhf.GridWorld(size=3, slip=0.1, horizon=6), 1.0)], ids=["random-world", "strings-noise", "grid-state"])
def test_its_gradient_matches_finite_differences_where_the_max_is_unique(make, discount, keys, rng):
    """One SGD step of lr 1 moves θ by minus the learner's gradient; central differences of the exact
    float64 loss (an independent dynamic program) agree where every max is unique (a random θ)."""
    task = make()
    first, second, y = pairs(task, 60, 3, keys)
    y = torch.rand(y.shape, generator=rng)                              # soft labels: no flat directions
    model = task.new_reward_model(rlhf.Keys.from_seeds([3]))
    model.theta.copy_(torch.randn(model.theta.shape, generator=rng))
    theta = model.theta[0].clone().double()
    learner = RegretRewardLearner(model, LearnerConfig("sgd", 1.0, 1, 0), task.mdp, task.horizon, discount,
                                  warm_start=False)
    batch = first.__class__
    learner.update(batch(first.states[None], first.actions[None]), batch(second.states[None], second.actions[None]),
                   y[None])
    gradient = theta - model.theta[0].double()

    def loss(t):                    # the model's own parametrisation (a table, log_softmax), in float64
        view = task.new_reward_model(rlhf.Keys.from_seeds([0]))
        view.theta = t.unsqueeze(0)
        return exact_loss(task.mdp, view.reward()[0], task.horizon, first, second, y, discount)

    eps = 1e-4
    for f in torch.randperm(theta.numel(), generator=rng)[:12].tolist():
        step = torch.zeros_like(theta)
        step[f] = eps
        numeric = (loss(theta + step) - loss(theta - step)) / (2 * eps)
        assert gradient[f].item() == pytest.approx(numeric, abs=2e-5, rel=1e-3), f


def test_the_first_update_begins_with_the_partial_return_fit(monkeypatch, keys):
    task = rlhf.GridWorld(size=3, horizon=5)
    first, second, y = pairs(task, 30, 5, keys)
    config = LearnerConfig("adam", 0.05, 10, 0)
    partial = RewardLearner(task.new_reward_model(rlhf.Keys.from_seeds([0])), config)
    batch = first.__class__
    one_seed = (batch(first.states[None], first.actions[None]), batch(second.states[None], second.actions[None]),
                y[None])
    partial.update(*one_seed)
    monkeypatch.setattr(RegretRewardLearner, "_regret_steps", lambda self, c, y, w: torch.zeros(c.shape[0]))
    for warm, same in ((True, True), (False, False)):
        model = task.new_reward_model(rlhf.Keys.from_seeds([0]))
        RegretRewardLearner(model, config, task.mdp, task.horizon, warm_start=warm).update(*one_seed)
        assert torch.equal(model.theta, partial.model.theta) is same


def test_many_noiseless_regret_labels_recover_the_truth_s_optimal_advantages():
    """A small deterministic world, 3,000 noiseless pairs (10 rounds): the learned reward's A* is within
    EPIC 0.05 of the truth's (measured 0.013), and its greedy policy is optimal."""
    world = rlhf.RandomGridWorld(3)                                   # 6 x 5, goal 1, roadblocks
    result = rlhf.train(world, teacher="regret+oracle", budget=3000, learner_model="regret")
    learned = rlhf.optimal_advantages(world.mdp, result.reward, world.horizon)
    truth = rlhf.optimal_advantages(world.mdp, world.true_reward, world.horizon)
    assert rlhf.epic_distance(learned, truth) < 0.05
    assert rlhf.epic_distance(rlhf.optimal_advantages(world.mdp, result.reward.neg(), world.horizon), truth) > 0.5
    assert result.metrics["near_optimal"] == 1.0 and result.metrics["pref_accuracy"] > 0.99


def test_it_plans_on_its_reward_and_is_scored_as_a_reward():
    """The history's true return is that of planning on the learned reward (soft value iteration), the
    task's own metrics describe it, and pref_accuracy is agreement with the regret teacher on A*_r̂."""
    task = rlhf.GridWorld(size=4, horizon=8)
    rewards = []
    result = rlhf.train(task, budget=60, pairs_per_round=20, learner_model="regret", heldout_pairs=50,
                        teacher="regret+boltzmann:1",
                        on_round=lambda record: rewards.append(record.reward_model.reward().clone()))
    assert rewards[0].shape == (16,)                                     # the gridworld's log_softmax over states
    for reward, logged in zip(rewards, result.history["true_return"], strict=True):
        planned = rlhf.plan(task, reward, task.defaults)
        assert logged == float(rlhf.expected_returns(task.mdp, planned, task.true_reward, 8))
    assert set(result.metrics) >= {"goal_hit", "tv", "regret", "epic", "pref_accuracy"}
    first, second = task.truths.heldout_pairs(50, 8)
    truth, learned = (rlhf.optimal_advantages(task.mdp, r, 8) for r in (task.true_reward, result.reward))
    margins = [rlhf.step_rewards(a, first).double().sum(-1) - rlhf.step_rewards(a, second).double().sum(-1)
               for a in (truth, learned)]
    strict = margins[0] != 0
    expected = float(((margins[1] > 0) == (margins[0] > 0))[strict].double().mean())
    assert result.metrics["pref_accuracy"] == pytest.approx(expected, abs=0.021)      # one pair's rounding


def test_kappa_is_validated_and_a_soft_variant_is_one_subclass(request):
    with pytest.raises(ValueError, match="kappa must be > 0"):
        regret_module.RegretLearner(kappa=0.0)
    assert rlhf.LEARNER_MODELS["regret"].kappa == math.inf and rlhf.LEARNER_MODELS["regret"].warm_start
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class SoftRegret(regret_module.RegretLearner):
        name: ClassVar[str] = "regret-soft"
        kappa: float = 2.0

    request.addfinalizer(lambda: rlhf.LEARNER_MODELS._items.pop("regret-soft", None))
    rlhf.register_learner_model(SoftRegret())
    task = rlhf.RandomGridWorld(3)
    soft = rlhf.train(task, teacher="regret+oracle", budget=300, learner_model="regret-soft", heldout_pairs=50)
    hard = rlhf.train(task, teacher="regret+oracle", budget=300, learner_model="regret", heldout_pairs=50)
    assert not torch.equal(soft.reward, hard.reward)


def fit_minus_truth(learner_model, teacher, world, budget=3000):
    """Final loss of a fit="all" run on every pair it was asked, minus the true reward's loss on them."""
    records = []
    result = rlhf.train(world, teacher=teacher, budget=budget, learner_model=learner_model, fit="all",
                        heldout_pairs=20, on_round=records.append)
    scores = ((lambda r: r) if learner_model == "partial" else
              (lambda r: rlhf.optimal_advantages(world.mdp, r, world.horizon)))

    def loss(table):
        z = torch.cat([rlhf.step_rewards(table, rec.first).double().sum(-1) -
                       rlhf.step_rewards(table, rec.second).double().sum(-1) for rec in records])
        y = torch.cat([rec.labels.prefer_first for rec in records]).double()
        return float(torch.nn.functional.softplus(z).sub(y * z).mean())

    return loss(scores(result.reward)) - loss(scores(world.true_reward))


@pytest.mark.slow
def test_few_fits_end_above_the_true_reward_s_loss_on_well_specified_labels():
    """Non-convexity, measured: Boltzmann regret labels from the truth (the regret model, well
    specified), 3,000 pairs, fit="all". Over 30 worlds × 3 seeds 18/90 fits end above the truth's loss
    at the default 50 epochs a round (9/90 at 200); the convex partial learner on partial labels, 3/90.
    Here the first 10 worlds, seed 0."""
    worlds = [rlhf.RandomGridWorld(w) for w in range(10)]
    regret = sum(fit_minus_truth("regret", "regret+boltzmann:1", w) > 0 for w in worlds)
    partial = sum(fit_minus_truth("partial", "boltzmann:1", w) > 0 for w in worlds)
    assert regret <= 4 and partial <= 1, (regret, partial)


def last_fitted(records, k, fit):
    """Seed k's pairs that the last update fitted (fit="all": every round's; "round": the last round's)
    and their labels and answered flags, from a batch's round records."""
    rounds = [record[k] for record in (records if fit == "all" else records[-1:])]
    batch = rounds[0].first.__class__
    first, second = (batch(torch.cat([getattr(r, part).states for r in rounds]),
                           torch.cat([getattr(r, part).actions for r in rounds])) for part in ("first", "second"))
    return (first, second, torch.cat([r.labels.prefer_first for r in rounds]),
            torch.cat([r.labels.answered for r in rounds]))


@pytest.mark.parametrize("fit", ["all", "round"])
def test_loss_above_truth_is_1_exactly_where_the_fit_s_loss_on_its_last_pairs_exceeds_the_truth_s(fit):
    """A well-specified regret run (world 2, Boltzmann regret labels, two rounds): the metric against the
    loss of the learned reward and of the true one from the independent float64 dynamic program, on the
    pairs the last update fitted. With fit="all" seed 1's fit ends above the truth's loss, seeds 0 and 2
    below (measured: gaps −0.022, +0.068, −0.020), so both outcomes are checked. (That the metric is the
    same alone and in a batch: ``tests/rlhf/test_batch_invariance.py`` compares every metric.)"""
    world = rlhf.RandomGridWorld(2)
    run = dict(teacher="regret+boltzmann:1", budget=600, pairs_per_round=300, learner_model="regret", fit=fit,
               heldout_pairs=20)
    records = []
    batch = rlhf.train_batch(world, [0, 1, 2], on_round=records.append, **run)
    above = []
    for k, result in enumerate(batch):
        first, second, y, _ = last_fitted(records, k, fit)
        assert len(y) == (600 if fit == "all" else 300)
        gap = (exact_loss(world.mdp, result.reward, world.horizon, first, second, y)
               - exact_loss(world.mdp, world.true_reward, world.horizon, first, second, y))
        assert abs(gap) > 1e-4                                   # far from the float32 scores' rounding
        assert result.metrics["loss_gap"] == pytest.approx(gap, abs=1e-6)
        assert result.metrics["loss_above_truth"] == (1.0 if gap > 0 else 0.0)
        above.append(result.metrics["loss_above_truth"])
    if fit == "all":
        assert above == [0.0, 1.0, 0.0]


def test_the_partial_learner_s_loss_above_truth_skips_unanswered_pairs_and_only_reward_fits_have_it():
    """The partial learner against the true reward's summed reward, on the answered pairs alone (a skipping
    teacher); the advantage learner (a free Â) and an ensemble (members fit their own resamples) have no
    such metric."""
    world = rlhf.RandomGridWorld(0)
    records = []
    run = dict(teacher="skip:0.2+boltzmann:1", budget=200, pairs_per_round=100, learner_model="partial",
               heldout_pairs=20)
    results = rlhf.train_batch(world, [0, 1], on_round=records.append, **run)
    for k, result in enumerate(results):
        first, second, y, answered = last_fitted(records, k, "round")
        assert 0 < int(answered.sum()) < len(answered)
        losses = []
        for reward in (result.reward, world.true_reward):
            z = (rlhf.step_rewards(reward, first).double().sum(-1)
                 - rlhf.step_rewards(reward, second).double().sum(-1))[answered]
            losses.append(float(torch.nn.functional.softplus(z).sub(y[answered].double() * z).mean()))
        gap = losses[0] - losses[1]
        assert result.metrics["loss_gap"] == pytest.approx(gap, abs=1e-9)
        assert result.metrics["loss_above_truth"] == (1.0 if gap > 0 else 0.0)
    for other in (dict(learner_model="advantage"), dict(ensemble=2)):
        metrics = rlhf.train(world, **(run | other)).metrics
        assert "loss_gap" not in metrics and "loss_above_truth" not in metrics
