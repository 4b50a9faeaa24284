import pytest
import torch

# Deterministic single-threaded kernels: the suite compares results bit for bit.
torch.set_num_threads(1)


@pytest.fixture
def rng() -> torch.Generator:
    """A fixed torch Generator: tests never touch the global RNG."""
    return torch.Generator().manual_seed(1234)
