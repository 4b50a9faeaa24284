"""A user's task, written outside the package: the README's chain, registered for sweeps.

A sweep config names this module (``imports = ["chain_task"]``) and then sweeps ``[test-chain]``
tables like a built-in task's: ``sizes`` is the number of states, moving right to the end pays.
It has a ``render`` hook, so ``python -m bench label --import chain_task --task test-chain``
labels it too. The name is not the README's ``chain``: the README's blocks run in the test
process, and a task is registered once.
"""

from collections.abc import Mapping
from typing import Any

import torch

import rlhf

NAME = "test-chain"


def chain(states: int = 6) -> rlhf.TabularTask:
    """The README's chain with ``states`` states: action 0 steps left, 1 steps right; entering or
    staying at the right end pays 1."""
    S = states
    right = torch.arange(1, S + 1).clamp(max=S - 1)
    left = torch.arange(-1, S - 1).clamp(min=0)
    next_states = torch.stack([left, right]).unsqueeze(-1)            # [A, S, K = 1]
    start = torch.zeros(S)
    start[0] = 1.0
    mdp = rlhf.TabularMDP.from_sparse(next_states, torch.ones(2, S, 1), start)
    reward = torch.zeros(S, 2)
    reward[S - 2, 1] = reward[S - 1, 1] = 1.0
    return rlhf.TabularTask(mdp, reward, horizon=10, name=NAME, label=f"chain of {S}")


def _pair(task: rlhf.TabularTask, first: rlhf.Trajectories, second: rlhf.Trajectories) -> str:
    return "\n".join(f"[{i}] " + " ".join(map(str, t.states.tolist())) for i, t in ((1, first), (2, second)))


def _learned(task: rlhf.TabularTask, reward: torch.Tensor) -> str:
    return "learned: go " + ("right" if float(reward[0, 1]) >= float(reward[0, 0]) else "left")


def _make(fields: Mapping[str, Any]) -> rlhf.TabularTask:
    return chain(fields["size"])


SPEC = rlhf.register_task(
    NAME,
    factory=_make,
    axes=[rlhf.Axis("sizes", "size", int, "an integer >= 2", lambda v: v >= 2)],
    defaults=chain().defaults,
    label=lambda fields: f"S={fields['size']}",
    render=rlhf.Render(make=_make, options=("size",), pair=_pair, learned=_learned),
)
