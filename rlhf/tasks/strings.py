"""The string-preference task of the second teaching example (the ``seed-strings`` preset), as a
position MDP.

State = position 0..L−1, action = token, every action moves position p to
p + 1 (the last position loops on itself; the horizon is L, so it is never
left). The true reward is 1 for the target token at each position, else 0, so
a sequence's true return is its number of positions matching the target.
``slip`` is the probability that an emitted token is replaced by a uniformly
random one; the reward follows the emitted token.
"""

from __future__ import annotations

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.truths import TaskTruths
from ..learning.learner import LearnerConfig
from ..learning.rewards import TableReward
from ..metrics import epic_distance, near_optimal, scaled_return_of_reward
from ..training.config import TrainConfig

PRESET_DEFAULTS = TrainConfig(
    budget=10, teacher="deterministic", pairs_per_round=0, query="uniform",
    learner=LearnerConfig(optimizer="sgd", lr=0.01, epochs=5, batch_size=1),
)


def _without_position_offsets(table: torch.Tensor) -> torch.Tensor:
    """``[L, V]`` table with each row (position) centred.

    Every sequence visits each position exactly once, at a fixed step, so a
    per-position shift cancels in every comparison of two sequences: an
    equivalence of this task only (not of a general MDP, where EPIC counts it).
    """
    return table - table.mean(-1, keepdim=True)


class StringTask:
    """Learn a per-(position, token) reward from pairs of sequences."""

    name = "strings"
    defaults = PRESET_DEFAULTS

    def __init__(self, vocab: str = "ABC", target: str = "ABC", slip: float = 0.0) -> None:
        vocab, target = str(vocab), str(target)
        if len(vocab) < 2 or len(set(vocab)) != len(vocab):
            raise ValueError(f"vocab must have at least 2 distinct tokens, got {vocab!r}")
        if len(target) < 1:
            raise ValueError(f"target must be non-empty, got {target!r}")
        outside = sorted(set(target) - set(vocab))
        if outside:
            raise ValueError(f"target {target!r} has tokens outside vocab {vocab!r}: {''.join(outside)!r}")
        if not 0.0 <= slip < 1.0:
            raise ValueError(f"slip must be in [0, 1), got {slip!r}")
        self.vocab, self.target, self.slip = vocab, target, float(slip)
        L, V = len(target), len(vocab)
        self.horizon = L
        self.target_tokens = torch.tensor([vocab.index(c) for c in target])
        self.true_reward = torch.zeros(L, V)
        self.true_reward[torch.arange(L), self.target_tokens] = 1.0
        advance = (torch.arange(L) + 1).clamp_(max=L - 1).unsqueeze(0)    # one move: p -> p + 1
        start = torch.zeros(L)
        start[0] = 1.0
        self.mdp = TabularMDP.from_moves(advance, torch.ones(V, 1), start, action_noise=self.slip)
        self.truths = TaskTruths.of(self)

    def __repr__(self) -> str:
        return f"StringTask(vocab={self.vocab!r}, target={self.target!r}, slip={self.slip})"

    # ------------------------------------------------------------ protocol
    def new_reward_model(self, keys: Keys) -> TableReward:
        return TableReward(len(self.target), len(self.vocab), keys)

    def reward_range(self) -> tuple[float, float]:
        return 0.0, 1.0

    def convergence_metrics(self, reward_model: TableReward, config: TrainConfig) -> dict[str, float]:
        with torch.no_grad():
            table = reward_model.reward()
            correct = table.argmax(-1) == self.target_tokens
            exact = bool(correct.all())
            scaled, near = near_optimal(scaled_return_of_reward(self.mdp, table, self.true_reward, self.horizon,
                                                                config.discount, truths=self.truths))
            return {
                "converged": float(exact),
                "exact_match": float(exact),
                "position_accuracy": float(correct.float().mean()),
                "epic": epic_distance(_without_position_offsets(table), _without_position_offsets(self.true_reward)),
                "scaled_return": scaled,
                "near_optimal": near,
            }

    # -------------------------------------------------------------- helpers
    def decode(self, table: torch.Tensor) -> str:
        """Greedy string: the argmax token at each position of an ``[L, V]`` table."""
        return "".join(self.vocab[int(i)] for i in table.argmax(-1))
