"""A person labelling pairs: the session (pairs, answers, the learned view) and its
terminal program (Textual).

May import: :mod:`rlhf`, :mod:`bench`'s shared modules.
"""
