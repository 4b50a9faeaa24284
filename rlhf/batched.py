"""Kernels whose result for one seed does not depend on the batch around it.

torch's CPU kernels run a SIMD loop over most elements and a scalar loop over
the rest; where the two compute a function differently (``torch.sigmoid`` and
``softplus`` do, ``exp`` and ``log`` do not: measured), an element's last bit
depends on where it falls, i.e. on how many seeds share the batch. Likewise
``bmm`` sends a batch of one matrix to another BLAS routine than a batch of
two or more, which sums in another order. These replacements are built from
operations that are exact or position-independent;
``tests/rlhf/test_batched.py`` checks each against its batch.
"""

from __future__ import annotations

import torch


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(−x))`` (0 where exp overflows, as it should)."""
    return torch.exp(-x).add_(1.0).reciprocal_()


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x)) = −log σ(−x)``, stable for large |x|."""
    return torch.nn.functional.logsigmoid(-x).neg_()


def bmv(matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``[B, m]`` products of ``matrices[B, m, n]`` and ``vectors[B, n]`` (B >= 1).

    A batch of one runs as a batch of two (the matrix twice), so it takes the
    batched BLAS path every other batch size takes.
    """
    if matrices.shape[0] == 1:
        return torch.bmm(matrices.expand(2, -1, -1), vectors.expand(2, -1).unsqueeze(-1))[:1, :, 0]
    return torch.bmm(matrices, vectors.unsqueeze(-1)).squeeze(-1)
