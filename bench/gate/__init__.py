"""The convergence gate: compare a run with a committed baseline, and write baselines.

May import: :mod:`rlhf`, :mod:`bench.sweep`, :mod:`bench.report` (its statistics and run loading),
:mod:`bench`'s shared modules.
"""
