"""The preference-learning loop: its configuration (:class:`TrainConfig`), the task
protocol it runs on, and the loop itself (query → label → update → plan → evaluate).

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`, :mod:`rlhf.preferences`, :mod:`rlhf.learning`.
"""
