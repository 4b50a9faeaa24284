"""What is learned from preferences: reward models, learner models (how a learner fits and acts:
partial, Knox et al.'s 2024 advantage and 2022 regret learners; a registry), the batched
Bradley–Terry learner and the regret learner's fitter, the ranking and tie learner (Plackett–Luce,
pair split, Rao–Kupper, Davidson: :mod:`.rankings`), ensembles and the query rules that choose
which pairs to ask.

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`, :mod:`rlhf.preferences`.
"""
