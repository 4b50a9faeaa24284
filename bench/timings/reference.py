"""The gridworld seed's algorithm written the seed's way: the timing references and
correctness oracles for the fast package (tested to agree in tests/bench/test_reference.py).

What makes them slow is kept on purpose: a per-state search to build the
transitions (O(S²)), a dense [A, S, S] einsum per backup, autograd with
``torch.optim.Adam`` on ``softmax`` + ``log(p + 1e-6)``, and ``torch.multinomial``
per rollout step. Randomness comes from explicit generators (never the global RNG).
"""

from __future__ import annotations

import numpy as np
import torch

_STEPS = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0), 4: (0, 0)}


def dense_transitions_by_search(size: int, slip: float) -> torch.Tensor:
    """``P[a, s, s']`` built as the seed does: each successor cell found by searching all cells."""
    cells = np.array([(x, y) for x in range(size) for y in range(size)])

    def find(cell) -> int:
        return int(np.where(np.all(cells == cell, axis=1))[0][0])

    S = size * size
    P = np.zeros((5, S, S))
    for a, (dx, dy) in _STEPS.items():
        for s, (x, y) in enumerate(cells):
            main = np.clip([x + dx, y + dy], 0, size - 1)
            if a == 4:
                slips = [np.array([x, y])] * 2
            elif dx == 0:       # up/down slip along x
                slips = [np.clip([x - 1, y], 0, size - 1), np.clip([x + 1, y], 0, size - 1)]
            else:               # right/left slip along y
                slips = [np.clip([x, y + 1], 0, size - 1), np.clip([x, y - 1], 0, size - 1)]
            P[a, s, find(main)] += 1 - slip
            for c in slips:
                P[a, s, find(c)] += slip / 2
    return torch.from_numpy(P).to(torch.float32)


def dense_soft_value_iteration(P: torch.Tensor, reward: torch.Tensor, horizon: int,
                               discount: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
    """The seed's planner: Q₀ = 0, then H dense backups ``r + γ·einsum(P, V)``; ``Q[s, a]``."""
    S, A = P.shape[-1], P.shape[0]
    r = reward.view(-1, 1) if reward.dim() == 1 else reward
    q = torch.zeros(S, A)
    for _ in range(horizon):
        v = torch.logsumexp(temperature * q, dim=-1) / temperature
        q = r + discount * torch.einsum("kij,j->ik", P, v)
    return q


class SeedAgent:
    """The seed's reward model and update: θ → log_softmax, softmax of summed rewards,
    ``-log(p + 1e-6)`` of the label, ``torch.optim.Adam`` for ``iterations`` steps."""

    def __init__(self, num_states: int, lr: float = 1e-2, iterations: int = 50) -> None:
        self.theta = torch.nn.Parameter(torch.zeros(num_states))
        self.optimizer = torch.optim.Adam([self.theta], lr=lr)
        self.iterations = iterations

    def reward(self) -> torch.Tensor:
        return torch.log_softmax(self.theta, dim=-1)

    def update(self, states_1: torch.Tensor, states_2: torch.Tensor, labels: torch.Tensor) -> float:
        """``labels[i]`` = index (0 or 1) of the preferred segment."""
        for _ in range(self.iterations):
            r = self.reward()
            pair = torch.stack([r[states_1].sum(-1), r[states_2].sum(-1)], dim=1)
            p = torch.softmax(pair, dim=-1)
            loss = -torch.log(p + 1e-6)[torch.arange(len(labels)), labels].mean()
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
        return float(loss.detach())


def seed_gridworld_run(seed: int = 0, rounds: int = 200, pairs: int = 100, length: int = 30,
                       size: int = 5) -> dict[str, list[float]]:
    """The whole seed run, the seed's way: dense transitions by search, dense planner,
    per-step ``torch.multinomial`` rollouts, Boltzmann teacher, autograd update."""
    g = torch.Generator().manual_seed(seed)
    P = dense_transitions_by_search(size, 0.0)
    S = size * size
    target = torch.zeros(S)
    target[S - 1] = 1.0
    true_reward = torch.log(target + 1e-6)
    agent = SeedAgent(S)
    history: dict[str, list[float]] = {"reward": [], "loss": [], "entropy": []}
    for _ in range(rounds):
        with torch.no_grad():
            policy = torch.softmax(dense_soft_value_iteration(P, agent.reward(), length), dim=-1)
        batches = []
        for _ in range(2):
            s = torch.zeros(pairs, dtype=torch.int64)                      # start (0, 0)
            states = []
            for _ in range(length):
                a = torch.multinomial(policy[s], 1, generator=g).flatten()
                states.append(s)
                s = torch.multinomial(P[a, s], 1, generator=g).flatten()
            batches.append(torch.stack(states, 1))
        returns = torch.stack([true_reward[b].sum(-1) for b in batches], dim=1)
        p = torch.softmax(returns, dim=-1)
        labels = torch.multinomial(p, 1, generator=g).flatten()
        history["entropy"].append(float(-(p * torch.log(p + 1e-6)).sum(-1).mean()))
        history["loss"].append(agent.update(batches[0], batches[1], labels))
        history["reward"].append(float(returns.mean()))
    history["learned_distribution"] = torch.softmax(agent.theta.detach(), -1).tolist()
    return history
