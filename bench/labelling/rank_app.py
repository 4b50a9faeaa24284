"""``python -m bench label --rank K``: rank K segments at a time yourself, in the terminal (Textual).

The screen shows the query's K segments numbered 1…K (strings one above the other, grids side by
side: four 10 x 10 grids fit 80 x 24 beside the learned view), the ranking typed so far, and a status
line with progress and the learned reward's agreement with your rankings
(:meth:`bench.labelling.ranking.RankingSession.agreement`: the share of your rankings' untied pairs
it orders alike). Keys:

* ``1`` … ``K``: the items in order of preference, best first (an item already placed is ignored);
* ``=``: the next item pressed is tied with the previous one (``1 = 3`` ties 1 and 3);
* ``u``: undo the last key: the last item placed (a ``=`` before it is pending again) or a pending
  ``=``; with nothing typed, the last ranking given is taken back out of the store and shown as
  typed but for its last key;
* ``q``: quit (a ranking half typed is not stored; the same command resumes at its query).

A ranking is committed to the store the moment its K-th item is placed (no Enter), then the next
query shows. Keys typed before a new query was on screen are dropped (they were meant for the last).
"""

from __future__ import annotations

import math
import time

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.events import Key
from textual.widgets import Static

from .app import LEARNED_MIN_WIDTH
from .ranking import Entry, RankingSession, identical_items

CLOSING = "Every query is ranked.\nThank you!\n\nq quits, u undoes\nyour last key."
EQUALS = {"equals_sign": "="}


def keys_line(K: int) -> str:
    return f"1-{K} best first · = ties the next to the last · u undo · q quit"


class RankApp(App):
    """One query of K segments at a time; a status line with progress and the learned reward's agreement."""

    # the learned view beside the K segments: four 10 x 10 grids (46 columns, RANKING_WIDTH) and the
    # heatmap with its caption then fit 80 x 24
    CSS = ("#main { height: 1fr; } #items { width: auto; padding: 1 1; } "
           f"#learned {{ width: 1fr; min-width: {LEARNED_MIN_WIDTH}; padding: 1 2; }} "
           "#status { dock: bottom; background: $panel; }")

    def __init__(self, session: RankingSession, train_every: int = 0) -> None:
        super().__init__()
        self.session, self.train_every = session, train_every
        self.entry = Entry(session.K)
        self.agreement, self.agreement_pairs = math.nan, 0
        self.learned_text = ""
        self.shown_at = math.inf
        """When the query on screen was drawn (``time.monotonic``, Textual's event clock)."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield Static(id="items")
            yield Static(id="learned")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.session.answer_identical()
        self._after_change(retrain=self.session.answered > 0, new_query=True)

    def on_key(self, event: Key) -> None:
        key = event.character or ""
        key = EQUALS.get(event.key, key)
        if key == "q":
            self.exit()
        elif event.time < self.shown_at:
            return          # typed before this query was on screen: it was meant for another
        elif key == "u":
            if self.entry.undo():
                self._after_change(retrain=False, new_query=False)
            elif (ranking := self.session.undo()) is not None:
                self.entry = Entry.before_last_key(ranking)
                self._after_change(retrain=True, new_query=True)
        elif not self.session.done and self.entry.press(key):
            if self.entry.complete:
                self.session.commit(self.entry.order, self.entry.tied)
                self.entry = Entry(self.session.K)
                self._after_change(retrain=True, new_query=True)
            else:
                self._after_change(retrain=False, new_query=False)

    def _after_change(self, retrain: bool, new_query: bool) -> None:
        session = self.session
        if retrain:
            result = session.learned()
            self.agreement, self.agreement_pairs = session.agreement(result)
            if self.train_every and (session.done or session.answered % self.train_every == 0):
                self.learned_text = session.spec.render.learned(session.task, result.reward)
        items = self.query_one("#items", Static)
        if session.done:
            items.update(CLOSING)
        else:
            same = identical_items(session.current())
            note = ("\n(the same: " + ", ".join(f"{i} and {j}" for i, j in same) + ")") if same else ""
            items.update(f"Rank them, best first:\n\n{session.drawn()}{note}\n\nyour ranking: {self.entry.text()}")
        self.query_one("#learned", Static).update(self.learned_text)
        agreement = "—" if math.isnan(self.agreement) else f"{self.agreement:.0%} of {self.agreement_pairs} pairs"
        identical = session.identical_answered
        tied = f" ({identical} all-identical ranked tied for you)" if identical else ""
        self.query_one("#status", Static).update(
            f"ranked {session.answered}/{len(session.queries)}{tied} · agreement {agreement}\n{keys_line(session.K)}")
        if new_query:
            self.shown_at = time.monotonic()
