"""The numerical core: counter-based random keys, batched kernels, the tabular MDP,
planning (soft, hard and evaluation backups; the exact KL-regularised optimum, a policy's trajectory KL
and time-indexed policies: :mod:`.regularized`), rollouts, every trajectory of a small MDP
(:mod:`.enumeration`), and a task's truths (A*, V*, the
uniform policy's return, held-out pairs: :mod:`.truths`).

Pure functions over tensors with their index order in the docstrings (``Q[s, a]``,
``P[a, s, k]``). May import: torch only; nothing else in :mod:`rlhf`.
"""
