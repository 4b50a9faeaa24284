import pytest
import torch

import rlhf


def test_sparse_transitions_and_start_must_agree_on_the_number_of_states():
    # [A=2, S=3, K=1] successors, all in range for a 4-state start: only the shapes disagree.
    next_states = torch.zeros(2, 3, 1, dtype=torch.long)
    probs = torch.ones(2, 3, 1)
    start = torch.full((4,), 0.25)
    with pytest.raises(ValueError, match=r"\(2, 3, 1\).*\(4,\)"):
        rlhf.TabularMDP.from_sparse(next_states, probs, start)
    rlhf.TabularMDP.from_sparse(next_states, probs, torch.full((3,), 1 / 3))     # agreeing shapes build
