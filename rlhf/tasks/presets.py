"""The two presets: the teaching examples' tasks and configurations, exactly as they set them.

Their names, ``seed-gridworld`` and ``seed-strings``, are the examples' (the "seed" programs the
suite started from), not random seeds; a run of a preset still takes a random ``seed``."""

from __future__ import annotations

from collections.abc import Callable

from ..training.loop import RunResult, train
from ..training.protocol import Task
from .gridworld import GridWorld
from .strings import StringTask

PRESETS: dict[str, Callable[[], Task]] = {
    # 5×5, start (0,0), goal (4,4), no slip, horizon 30; 200 rounds × 100 on-policy
    # pairs of length 30, Boltzmann β=1 teacher, Adam lr 1e-2 × 50 steps a round.
    "seed-gridworld": lambda: GridWorld(size=5, slip=0.0, start=[(0, 0)], goal=[(4, 4)], horizon=30),
    # Vocabulary ABC, target ABC; 10 uniform pairs, deterministic teacher (ties to
    # the second), table reward ~ N(0, 1), per-pair SGD lr 0.01 × 5 epochs.
    "seed-strings": lambda: StringTask(vocab="ABC", target="ABC", slip=0.0),
}


def preset_task(name: str) -> Task:
    """The task of a preset."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]()


def train_preset(name: str, seed: int = 0, **overrides) -> RunResult:
    """Run a preset (its task with its configuration) for one random ``seed``; ``overrides`` are
    :class:`rlhf.TrainConfig` fields."""
    return train(preset_task(name), seed=seed, **overrides)
