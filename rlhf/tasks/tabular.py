"""Any finite-horizon tabular MDP with a true reward, as a task of the one protocol.

The task for a user's own MDP ("bring your own task") and for environments imported from
Gymnasium and seals (:mod:`rlhf.ecosystem`). The learned reward is a free table
``r̂[S, A]`` (:class:`~rlhf.TableReward`) and success is Knox et al.'s scale-free one: the
greedy policy for the learned reward is near-optimal under the true reward.
"""

from __future__ import annotations

import torch

from ..core.keys import Keys
from ..core.mdp import TabularMDP
from ..core.planning import policy_return
from ..core.truths import TaskTruths
from ..learning.learner import LearnerConfig
from ..learning.rewards import TableReward
from ..metrics import epic_distance, greedy_policy, near_optimal
from ..training.config import TrainConfig

DEFAULTS = TrainConfig(
    budget=1000, teacher="boltzmann:1", pairs_per_round=100, query="on-policy",
    learner=LearnerConfig(optimizer="adam", lr=0.05, epochs=50, batch_size=0),
)
"""A starting point, not a preset's setting: the gridworld preset's loop with the random worlds' learning rate."""


class TabularTask:
    """A task from a :class:`TabularMDP`, its true reward ``[S]`` or ``[S, A]`` and a horizon.

    ``name`` is what a sweep's ``task`` column shows; ``label`` tells instances apart (an
    environment id). Rewards are expected rewards of (state, action): a reward that depends
    on the successor is reduced to its expectation, which leaves every policy's expected
    return, and so the optimum, unchanged."""

    def __init__(self, mdp: TabularMDP, true_reward: torch.Tensor, horizon: int, *, name: str = "tabular",
                 label: str = "", defaults: TrainConfig = DEFAULTS, reward_threshold: float | None = None) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
        reward = torch.as_tensor(true_reward, dtype=torch.float32)
        S, A = mdp.num_states, mdp.num_actions
        if reward.shape not in {(S,), (S, A)}:
            raise ValueError(f"true_reward must be [S] or [S, A] with S={S}, A={A}, got {tuple(reward.shape)}")
        if not bool(torch.isfinite(reward).all()):
            raise ValueError("true_reward must be finite")
        self.mdp, self.horizon, self.name, self.label, self.defaults = mdp, horizon, name, label or name, defaults
        self.reward_threshold = reward_threshold
        """The return an environment counts as solved (Gymnasium's registered ``reward_threshold``), or None."""
        self.true_reward = reward if reward.dim() == 2 else reward.unsqueeze(-1).expand(S, A).contiguous()
        self.truths = TaskTruths.of(self)

    def __repr__(self) -> str:
        return (f"TabularTask({self.label}: {self.mdp.num_states} states, {self.mdp.num_actions} actions, "
                f"horizon {self.horizon})")

    # ------------------------------------------------------------ protocol
    def new_reward_model(self, keys: Keys) -> TableReward:
        return TableReward(self.mdp.num_states, self.mdp.num_actions, keys)

    def reward_range(self) -> tuple[float, float]:
        return float(self.true_reward.min()), float(self.true_reward.max())

    def convergence_metrics(self, reward_model: TableReward, config: TrainConfig) -> dict[str, float]:
        """``converged`` = ``near_optimal`` (a task where no policy beats random counts as
        near-optimal: there is nothing to learn; its scaled return is reported as 1);
        ``greedy_return`` and ``optimal_return``, the expected true return in ``horizon`` steps of
        the learned reward's greedy policy and of the optimum (an environment's own scale, for
        its ``reward_threshold``)."""
        with torch.no_grad():
            learned = reward_model.reward()
            greedy = greedy_policy(self.mdp, learned, self.horizon, config.discount)
            j_greedy = policy_return(self.mdp, greedy, self.true_reward, self.horizon)
            scaled, near = near_optimal(self.truths.scaled(j_greedy))
            metrics = {"converged": near, "near_optimal": near, "scaled_return": scaled, "greedy_return": j_greedy,
                       "optimal_return": self.truths.optimal_return,
                       "epic": epic_distance(learned, self.true_reward)}
            if self.reward_threshold is not None:      # a column of its own: the report needs no environment
                metrics["reward_threshold"] = float(self.reward_threshold)
            return metrics
