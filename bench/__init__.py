"""rlhf-bench's harness: sweeps, store, executors, reports, gate, timings.

Importing it pins torch's and MKL's CPU kernels (see :mod:`bench.kernels`)
before anything here loads torch.
"""

from . import kernels

kernels.pin()
