import pytest
import torch
from helpers import keys_from

import rlhf
from rlhf.learning.learner import LearnerConfig, RewardLearner, bradley_terry_loss
from rlhf.preferences.models import score_margins


def preference_logits(reward, first, second):
    """``[B]`` R₁ − R₂ of each pair under ``reward`` ([S] or [S, A]): the loop's margin of a learned table."""
    return score_margins(reward.reshape(-1), rlhf.core.rollout.step_features(reward, first),
                         rlhf.core.rollout.step_features(reward, second))


def pairs(task, rng, n=40):
    return rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 2 * n, task.horizon, keys_from(rng)).split()


def part(traj, sl):
    """The pairs ``sl`` of a batch of segments."""
    return rlhf.Trajectories(traj.states[sl], traj.actions[sl])


def autograd_round(opt, reward_of, first, second, y, cfg):
    """One round of the reference fit: autograd + ``opt`` (torch.optim) over the pairs in
    minibatches of ``cfg.batch_size`` (0: all), ``cfg.epochs`` times."""
    n = len(first)
    size = cfg.batch_size or n
    for _ in range(cfg.epochs):
        for lo in range(0, n, size):
            sl = slice(lo, lo + size)
            loss = bradley_terry_loss(preference_logits(reward_of(), part(first, sl), part(second, sl)), y[sl])
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.mark.parametrize("make", [lambda: rlhf.GridWorld(size=4, horizon=6),
                                  lambda: rlhf.StringTask("ABCD", "DCB")])
def test_closed_form_update_equals_autograd_with_torch_optim(make, rng):
    """The learner's written-out gradient and Adam/SGD equal autograd + torch.optim."""
    task = make()
    first, second = pairs(task, rng)
    y = torch.rand(len(first), generator=rng)
    for cfg in (LearnerConfig("adam", 0.05, epochs=4, batch_size=0), LearnerConfig("sgd", 0.1, epochs=2, batch_size=7)):
        model = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
        theta = model.theta.clone().requires_grad_()
        opt = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD)([theta], lr=cfg.lr)
        to_reward = (lambda t: torch.log_softmax(t, -1)) if task.true_reward.dim() == 1 else (
            lambda t: t.view(task.mdp.num_states, -1))
        learner = RewardLearner(model, cfg)
        for _ in range(2):            # two rounds: the optimiser state carries over
            autograd_round(opt, lambda: to_reward(theta), first, second, y, cfg)
            learner.update(first, second, y)
        torch.testing.assert_close(model.theta, theta.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_skipped_pairs_are_dropped_and_the_rest_fitted_as_autograd_would(optimizer, rng):
    """may_skip: each seed fits only its answered pairs, rebatched in collection order, with its
    own Adam step count (seed 1 answers nothing in the second round: it must not move)."""
    task = rlhf.StringTask("ABCD", "DCB")
    cfg = LearnerConfig(optimizer, 0.05, epochs=3, batch_size=4)
    rounds = [(*pairs(task, rng, n=20), torch.rand(20, generator=rng)) for _ in range(2)]
    answered = [torch.rand(2, 20, generator=rng) < 0.6, torch.rand(2, 20, generator=rng) < 0.6]
    answered[1][1] = False
    model = task.new_reward_model(rlhf.Keys.from_seeds([0, 1]))
    learner = RewardLearner(model, cfg, may_skip=True)
    thetas = [model.theta[k].clone().requires_grad_() for k in range(2)]
    opts = [(torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([t], lr=cfg.lr) for t in thetas]
    for (first, second, y), mask in zip(rounds, answered, strict=True):
        for k in range(2):
            keep = mask[k]
            if keep.any():
                autograd_round(opts[k], lambda k=k: thetas[k].view(task.mdp.num_states, -1),
                               part(first, keep), part(second, keep), y[keep], cfg)
        batch = rlhf.Trajectories(first.states.expand(2, -1, -1), first.actions.expand(2, -1, -1))
        other = rlhf.Trajectories(second.states.expand(2, -1, -1), second.actions.expand(2, -1, -1))
        loss = learner.update(batch, other, y.expand(2, -1), mask)
    assert torch.isnan(loss[1]) and not torch.isnan(loss[0])
    for k in range(2):
        torch.testing.assert_close(model.theta[k], thetas[k].detach(), rtol=1e-4, atol=1e-5)


def test_reported_loss_is_the_bradley_terry_loss(rng):
    task = rlhf.GridWorld(size=3, horizon=5)
    first, second = pairs(task, rng)
    y = (torch.rand(len(first), generator=rng) < 0.5).float()
    model = task.new_reward_model(rlhf.Keys.from_seeds([0])[0])
    before = float(bradley_terry_loss(preference_logits(model.reward(), first, second), y))
    loss = RewardLearner(model, LearnerConfig("adam", 0.01, epochs=1)).update(first, second, y)
    assert loss == pytest.approx(before, rel=1e-5)


def test_bradley_terry_loss_is_stable_for_huge_logits():
    loss = bradley_terry_loss(torch.tensor([1e4, -1e4]), torch.tensor([1.0, 0.0]))
    assert torch.isfinite(loss) and float(loss) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kwargs,needle", [({"optimizer": "rmsprop"}, "optimizer"), ({"lr": -1.0}, "lr"),
                                           ({"epochs": 0}, "epochs"), ({"batch_size": -2}, "batch_size")])
def test_bad_learner_config(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        LearnerConfig(**kwargs)


def test_written_out_adam_matches_torch_when_the_fused_kernel_is_missing(monkeypatch):
    from rlhf.learning import learner
    monkeypatch.setattr(learner, "_FUSED_ADAM", False)
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(6, generator=g) for _ in range(5)]
    theta, buffer, m, v = torch.zeros(6), torch.zeros(6), torch.zeros(6), torch.zeros(6)
    adam = learner._adam(theta, buffer, m, v, 0.05)
    p = torch.zeros(6, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.05)
    for step, grad in enumerate(grads, start=1):
        buffer.copy_(grad)
        adam([torch.tensor(float(step))])
        p.grad = grad.clone()
        opt.step()
    torch.testing.assert_close(theta, p.detach())


@pytest.mark.parametrize("cfg,fused", [(LearnerConfig("adam", 0.05, epochs=3, batch_size=0), True),
                                       (LearnerConfig("adam", 0.05, epochs=3, batch_size=0), False),
                                       (LearnerConfig("sgd", 0.1, epochs=2, batch_size=7), True)])
def test_large_model_support_path_equals_autograd_with_torch_optim(cfg, fused, rng, monkeypatch):
    """Above _ALL_FEATURES_MAX features the learner works on the features a round uses
    (gather, then scatter into the optimiser): still autograd + torch.optim, round after round."""
    from rlhf.learning import learner as module
    from rlhf.learning.learner import _ALL_FEATURES_MAX, count_differences
    monkeypatch.setattr(module, "_FUSED_ADAM", module._FUSED_ADAM and fused)
    S, A, T, n = 70, 64, 70, 30                    # 4480 features; each round touches a different subset

    def round_pairs():
        states = torch.arange(T).expand(2 * n, T)
        actions = torch.randint(0, A, (2 * n, T), generator=rng)
        first, second = rlhf.Trajectories(states[:n], actions[:n]), rlhf.Trajectories(states[n:], actions[n:])
        return first, second, torch.rand(n, generator=rng)

    model = rlhf.TableReward(S, A, rlhf.Keys.from_seeds([0])[0])
    assert model.theta.numel() > _ALL_FEATURES_MAX
    rounds = [round_pairs() for _ in range(2)]
    support, _ = count_differences(model.features(rounds[0][0]), model.features(rounds[0][1]), model.theta.numel())
    assert support is not None and support.numel() < model.theta.numel()    # the large path, a strict subset
    theta = model.theta.clone().requires_grad_()
    opt = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD)([theta], lr=cfg.lr)
    learner = RewardLearner(model, cfg)
    for first, second, y in rounds:                # two rounds: the optimiser state carries over
        autograd_round(opt, lambda: theta.view(S, A), first, second, y, cfg)
        learner.update(first, second, y)
        torch.testing.assert_close(model.theta, theta.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("version,release", [("2.3.1", (2, 3)), ("2.4.0a0+git34f7a3c", (2, 4)),
                                             ("2.13.0+cpu", (2, 13)), ("10.0", (10, 0))])
def test_torch_release_is_parsed_from_the_base_version(version, release):
    """The fused CPU Adam kernel is used from torch 2.4 on (2.1–2.3 have no CPU kernel)."""
    from rlhf.learning.learner import _release
    assert _release(version) == release


@pytest.mark.parametrize("seeds,sizes", [(1, [100]), (3, [40, 40, 20])])
def test_scripted_adam_epochs_equal_the_python_function_bit_for_bit(seeds, sizes):
    """The learner's TorchScript loop (when every seed steps) makes the Python function's calls."""
    from rlhf.learning import learner
    if not learner._FUSED_ADAM:
        pytest.skip("no fused Adam kernel in this torch")
    scripted = learner._adam_epochs_compiled()
    assert scripted is not learner._adam_epochs            # TorchScript is there in the pinned torch
    g = torch.Generator().manual_seed(seeds)
    F, P = 25, 32
    batches = [(torch.randn(seeds, F, n, generator=g), torch.randn(seeds, n, F, generator=g) / n,
                torch.randn(seeds, 1, F, generator=g), torch.ones(seeds, 1, n)) for n in sizes]
    out = []
    # TorchScript profiles its first calls and runs an optimised graph after: the last run is that one
    for run in (scripted, scripted, scripted, learner._adam_epochs):
        padded, grad, m, v = (torch.zeros(seeds, P) for _ in range(4))
        numbers = list(torch.arange(1, 3 * len(sizes) + 1, dtype=torch.float32).unbind(0))
        with torch.inference_mode():
            logits = run(padded[:, :F].unsqueeze(1), grad[:, :F].unsqueeze(1), *(list(b) for b in zip(*batches)),
                         [padded], [grad], [m], [v], numbers, 3, 0.05, 0.9, 0.999, 1e-8)
        out.append((padded.clone(), m.clone(), v.clone(), torch.cat(logits, -1)))
    assert all(torch.equal(a, b) for a, b in zip(out[-2], out[-1]))
    assert out[0][0].abs().sum() > 0 and out[0][3].shape == (seeds, sum(sizes))
