"""The tasks behind the protocol: the gridworld, the string task, any tabular MDP
(:class:`TabularTask`), Knox et al.'s random worlds, Gymnasium and seals environments,
and the seeds' presets.

May import: every other :mod:`rlhf` package (tasks are the top layer: a task supplies its
seed :class:`~rlhf.training.config.TrainConfig`, and the presets run :func:`rlhf.train`).
"""
