from pathlib import Path

import pytest
import torch
from helpers import TINY_CONFIG

import bench  # noqa: F401  (first: pins torch's CPU kernels before torch loads, as `python -m bench` does)
import rlhf

# Deterministic single-threaded kernels: the suite compares results bit for bit.
torch.set_num_threads(1)


@pytest.fixture
def rng() -> torch.Generator:
    """A fixed torch Generator: tests never touch the global RNG."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def keys() -> rlhf.Keys:
    """One fixed counter-based key (no batch dimension), for rollouts and teachers."""
    return rlhf.Keys.from_seeds([1234])[0]


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A two-task sweep of 14 cells that runs in about a second."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path
