"""The preference-learning loop: its configuration (:class:`TrainConfig`), the task protocol it
runs on, the loop as explicit state and one function per phase (:mod:`.phases`: query → label →
update → plan → evaluate), its results (:mod:`.results`) and its entry points (:mod:`.loop`:
``train``, ``train_batch``, ``train_checkpoints``, ``session_pairs``).

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`, :mod:`rlhf.preferences`, :mod:`rlhf.learning`.
"""
