"""The string-preference task of the second teaching example (the ``seed-strings`` preset), as a
position MDP.

State = position 0..L−1, action = token, every action moves position p to
p + 1 (the last position loops on itself; the horizon is L, so it is never
left). The true reward is 1 for the target token at each position, else 0, so
a sequence's true return is its number of positions matching the target.
``slip`` is the probability that an emitted token is replaced by a uniformly
random one; the reward follows the emitted token.

Graded rewards (``reward=``) beside that 0/1 match: ``"random:K"`` is a fixed ``[L, V]`` table of
uniform draws in [0, 1) (multiples of 2⁻²⁴) under the key ``Keys.from_seeds([K])[0].fold(11)``, and a
given ``[L, V]`` table is used as it is; ``target`` then only sets the length L (a table's own
shape does when no target is given) and ``task.target`` is the best string (each position's best
token, the first of ties). A length-1 task is a K-armed bandit (:meth:`StringTask.bandit`, the
setting of Azar et al.'s examples).
"""

from __future__ import annotations

import math

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

    def __init__(self, vocab: str = "ABC", target: str | None = None, slip: float = 0.0,
                 reward: str | torch.Tensor = "match") -> None:
        table = None if isinstance(reward, str) else torch.as_tensor(reward, dtype=torch.float32)
        if target is None:     # the seed's ABC, or (a graded reward) a length: the table's, else 3
            target = "ABC" if reward == "match" else str(vocab)[:1] * (table.shape[0] if table is not None
                                                                         and table.dim() == 2 else 3)
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
        self.reward_spec = reward if isinstance(reward, str) else "table"
        """``match`` (the seed's 0/1 reward), ``random:K`` or ``table``."""
        if reward == "match":
            self.target_tokens = torch.tensor([vocab.index(c) for c in target])
            self.true_reward = torch.zeros(L, V)
            self.true_reward[torch.arange(L), self.target_tokens] = 1.0
        else:
            self.true_reward = _checked_table(table, L, V) if table is not None else _graded_reward(str(reward), L, V)
            self.target_tokens = self.true_reward.argmax(-1)
            self.target = "".join(vocab[int(i)] for i in self.target_tokens)
        advance = (torch.arange(L) + 1).clamp_(max=L - 1).unsqueeze(0)    # one move: p -> p + 1
        start = torch.zeros(L)
        start[0] = 1.0
        self.mdp = TabularMDP.from_moves(advance, torch.ones(V, 1), start, action_noise=self.slip)
        self.truths = TaskTruths.of(self)

    def __repr__(self) -> str:
        graded = "" if self.reward_spec == "match" else f", reward={self.reward_spec!r}"
        return f"StringTask(vocab={self.vocab!r}, target={self.target!r}, slip={self.slip}{graded})"

    @classmethod
    def bandit(cls, rewards: list[float] | torch.Tensor, vocab: str | None = None) -> StringTask:
        """The K-armed bandit with these arm rewards: a length-1 string task (arms ``a``, ``b``, … unless
        ``vocab`` names them)."""
        values = torch.as_tensor(rewards, dtype=torch.float32).reshape(1, -1)
        arms = vocab or "abcdefghijklmnopqrstuvwxyz"[: values.shape[1]]
        return cls(vocab=arms, reward=values)

    # ------------------------------------------------------------ protocol
    def new_reward_model(self, keys: Keys) -> TableReward:
        return TableReward(len(self.target), len(self.vocab), keys)

    def reward_range(self) -> tuple[float, float]:
        if self.reward_spec == "match":
            return 0.0, 1.0
        return float(self.true_reward.min()), float(self.true_reward.max())

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


GRADED_PURPOSE = 11
"""The purpose (:meth:`rlhf.Keys.fold`) of a ``random:K`` reward table's draws."""


def _graded_reward(spec: str, length: int, vocab_size: int) -> torch.Tensor:
    """``[L, V]`` the table ``random:K`` names (see the module docstring)."""
    name, _, arg = spec.partition(":")
    try:
        key = int(arg)
    except ValueError:
        key = -1
    if name != "random" or key < 0:
        raise ValueError(f"reward must be 'match', 'random:K' (K an integer >= 0) or an [L, V] table, got {spec!r}")
    return Keys.from_seeds([key])[0].fold(GRADED_PURPOSE).uniform(length * vocab_size).view(length, vocab_size)


def _checked_table(table: torch.Tensor, length: int, vocab_size: int) -> torch.Tensor:
    if table.shape != (length, vocab_size):
        raise ValueError(f"a reward table must be [L, V] = [{length}, {vocab_size}], got {tuple(table.shape)}")
    if not all(math.isfinite(float(v)) for v in table.reshape(-1)):
        raise ValueError("a reward table must be finite")
    return table.clone()
