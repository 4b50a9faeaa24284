"""Sweeps: TOML configs expanded into hashed cells, groups of cells run by an executor
(serial, process pool, Dask), one SQLite store per run, and its ``cells.csv``.

May import: :mod:`rlhf`, :mod:`bench`'s shared modules (errors, kernels, provenance, outputs).
"""
