"""What is learned from preferences: reward models, the batched Bradley–Terry learner,
ensembles and the query rules that choose which pairs to ask.

May import: :mod:`rlhf.core`, :mod:`rlhf.metrics`, :mod:`rlhf.preferences`.
"""
