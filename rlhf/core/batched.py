"""Kernels whose result for one seed does not depend on the batch around it.

torch's CPU kernels run a SIMD loop over most elements and a scalar loop over
the rest; where the two compute a function differently (``torch.sigmoid`` and
``softplus`` do, ``exp`` and ``log`` do not: measured), an element's last bit
depends on where it falls, i.e. on how many seeds share the batch. Likewise
``bmm`` with a column vector sends a batch of one matrix to another BLAS
routine than a batch of two or more, which sums in another order; products
here are a row vector times a matrix (:func:`vecmat`), which does not at small
inner sizes, and a batch of one with a large inner size is computed as a batch
of two (:func:`bmm`). A sum's
order depends on its input's layout and batch: sums over a segment's steps are
added in step order (:func:`step_sums`). These
replacements are built from operations that are exact or position-independent;
``tests/rlhf/test_batch_invariance.py`` checks each against its batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import compiled


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(−x))`` (0 where exp overflows, as it should)."""
    return torch.exp(-x).add_(1.0).reciprocal_()


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x)) = −log σ(−x)``, stable for large |x|."""
    return torch.nn.functional.logsigmoid(-x).neg_()


SAME_PATH_INNER = 128
"""From this inner size on, :func:`bmm` computes a batch of one as a batch of two."""


def bmm(a: torch.Tensor, b: torch.Tensor, same_path_inner: int = SAME_PATH_INNER) -> torch.Tensor:
    """``torch.bmm(a[B, n, m], b[B, m, p])`` with the bits a batch gives, at every batch size.

    Under the pinned kernels (``MKL_CBWR=AVX2,STRICT``: :mod:`bench.kernels`) MKL runs a batch of one
    by another routine than a batch of two or more once the inner size m reaches 260 (512 for p = 1;
    measured, torch 2.13), which sums in another order: seed k trained alone then differs from seed k
    in a batch wherever a product is that long (a round of 300 pairs, every pair so far with
    ``fit="all"``, Taxi's 3006 features). So a batch of one with m >= :data:`SAME_PATH_INNER` is
    computed as a batch of two, the same matrices twice (stride-0 views, no copy), and the first
    result kept: a batch's bits. Below that the batch of one already takes the batch's routine, and
    costs nothing extra (``tests/rlhf/test_batch_invariance.py`` checks sizes on both sides)."""
    if a.size(0) == 1 and a.size(-1) >= same_path_inner:     # (an argument: TorchScript reads no globals)
        return torch.bmm(a.expand(2, -1, -1), b.expand(2, -1, -1))[:1]
    return torch.bmm(a, b)


def bmm_for(batch: int, inner: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The product :func:`bmm` computes for a ``batch`` of products of ``inner`` size: ``torch.bmm`` itself
    where no batch of one needs padding (a loop of many small products then skips the check per call)."""
    return bmm if batch == 1 and inner >= SAME_PATH_INNER else torch.bmm


def vecmat(vectors: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """``[B, n]`` row-vector products ``vectors[B, m] @ matrices[B, m, n]`` (B >= 1).

    A row vector times a matrix is one small GEMM per seed, which takes the same BLAS path
    at every batch size, 1 included (measured; ``tests/rlhf/test_batch_invariance.py``
    checks it), and is 3-7x faster than ``bmm`` with a column vector, whose batch of
    one goes to another routine and which MKL runs per matrix. (No ``out=``: ``bmm``
    into a non-contiguous ``out`` falls back to a loop over the batch, ~10x slower.)
    """
    return bmm(vectors.unsqueeze(1), matrices).squeeze(1)


def step_sums(values: torch.Tensor) -> torch.Tensor:
    """``[...]`` the sums over the last dimension (a segment's steps) of ``values[..., T]``, added
    in step order, one elementwise add a step.

    Not ``sum(-1)``: torch sums over the steps of a time-major ``[B, n, T]`` (a transposed view,
    as rollouts were before they came out contiguous) in SIMD lanes across the B·n segments (in
    step order) and in a scalar loop over the rest (in another order), so a segment's last bit
    depended on the batch (a margin of −82.89 was one ulp apart alone and in a batch of 32:
    measured); a contiguous copy's ``sum(-1)`` is batch-invariant but adds in yet another order,
    so equal returns of segments that visit the same states in another order can differ in the
    last bit. Elementwise adds are exact per element in any layout or batch (where exact ties
    matter, as for a noiseless teacher, sum float32 values in float64, where the sum is exact)."""
    if not values.requires_grad and compiled.available(values):      # the same adds in the same order, one call
        flat = values.reshape(-1, values.shape[-1])
        out = torch.empty(flat.shape[0], dtype=values.dtype)
        compiled.kernels().step_sums(flat.numpy(), out.numpy())
        return out.view(values.shape[:-1])
    total = values[..., 0].clone()
    for t in range(1, values.shape[-1]):
        total += values[..., t]
    return total
