"""The tasks behind the protocol: the gridworld, the string task, any tabular MDP
(:class:`TabularTask`), Knox et al.'s random worlds, Gymnasium and seals environments,
the teaching examples' presets, and the task registry (:mod:`.registry`: :func:`rlhf.register_task`;
the built-ins are registered in :mod:`.builtins`, their text pictures for a person
labelling pairs are in :mod:`.render`).

May import: every other :mod:`rlhf` package (tasks are the top layer: a task supplies its
default :class:`~rlhf.training.config.TrainConfig`, and the presets run :func:`rlhf.train`).
"""
