import pytest
import torch
from helpers import keys_from

import rlhf


def test_true_return_counts_matching_positions(rng):
    task = rlhf.StringTask(vocab="ABC", target="ABC")
    traj = rlhf.rollout(task.mdp, rlhf.uniform_policy(task.mdp), 200, 3, keys_from(rng))
    matches = (traj.actions == task.target_tokens).sum(-1).float()
    torch.testing.assert_close(rlhf.step_rewards(task.true_reward, traj).sum(-1), matches)
    assert (traj.states == torch.arange(3)).all()            # positions advance 0, 1, 2


def test_slip_replaces_tokens_uniformly(rng):
    task = rlhf.StringTask(vocab="ABCD", target="AAAA", slip=0.4)
    always_a = torch.zeros(4, 4)
    always_a[:, 0] = 1.0
    traj = rlhf.rollout(task.mdp, always_a, 5000, 4, keys_from(rng))
    p_other = float((traj.actions != 0).float().mean())
    assert p_other == pytest.approx(0.4 * 3 / 4, abs=4 * (0.3 * 0.7 / 20000) ** 0.5)


def test_decode_is_greedy():
    task = rlhf.StringTask(vocab="XYZ", target="ZZY")
    assert task.decode(task.true_reward) == "ZZY"


@pytest.mark.parametrize("kwargs,needle", [
    ({"target": "ABD"}, "outside vocab"), ({"vocab": "A"}, "vocab"), ({"vocab": "AAB"}, "vocab"),
    ({"target": ""}, "target"), ({"slip": 1.0}, "slip"),
])
def test_bad_arguments_name_the_argument_and_value(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        rlhf.StringTask(**({"vocab": "ABC", "target": "ABC"} | kwargs))
