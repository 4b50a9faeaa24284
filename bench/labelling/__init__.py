"""A person labelling pairs: the session (pairs, answers, the learned view) and its
terminal program (Textual), for any task registered with a ``render`` hook (:class:`rlhf.Render`).

May import: :mod:`rlhf`, :mod:`bench`'s shared modules.
"""

from .session import Session, SessionSpec

__all__ = ["Session", "SessionSpec"]
