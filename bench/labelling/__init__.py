"""A person labelling pairs, or ranking K segments at a time: the sessions (queries, answers, the
learned view) and their terminal programs (Textual), for any task registered with a ``render`` hook
(:class:`rlhf.Render`; rankings: the tasks :func:`rlhf.tasks.render.ranking_view` draws).

May import: :mod:`rlhf`, :mod:`bench`'s shared modules.
"""

from .ranking import RankingSession, RankSpec
from .session import Session, SessionSpec

__all__ = ["RankSpec", "RankingSession", "Session", "SessionSpec"]
