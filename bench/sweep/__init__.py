"""Sweeps: TOML configs expanded into hashed cells (each task's axes from the task registry,
:func:`rlhf.register_task`; a config's ``imports`` load a user's tasks, :mod:`.modules`),
groups of cells run by an executor (serial, process pool, Dask), one SQLite store per run,
and its ``cells.csv``.

May import: :mod:`rlhf`, :mod:`bench`'s shared modules (errors, kernels, provenance, outputs).
"""
