"""``python -m bench label``: label preference pairs yourself, in the terminal (Textual).

Textual because it is maintained, draws in any 80×24 terminal, and its ``App.run_test`` pilot
lets the tests press the keys. Keys: ``1`` / ``2`` prefer, ``=`` equal, ``s`` skip, ``u`` undo
the last answer, ``q`` quit. Every answer is committed to the store before the next pair shows
(:class:`bench.labelling.Session`); rerunning the same command resumes. The pictures (the pair,
the learned reward) are the task's own, from its registration's ``render`` hook (:class:`rlhf.Render`).
A pair of two identical segments is not shown: the session answers it ``=`` (the status line
counts them).
"""

from __future__ import annotations

import math
import time

import torch
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.events import Key
from textual.widgets import Static

from .session import Session

KEYS = "1/2 prefer · = equal · s skip · u undo · q quit"
CLOSING = "Every pair is answered.\nThank you!\n\nq quits, u undoes\nyour last answer."
"""Shown in the pair's place at the end, in short lines: the learned view beside it keeps its width."""
LEARNED_MIN_WIDTH = 24


def learned_view(session: Session, reward: torch.Tensor) -> str:
    """What the reward learned so far means, as the task's ``render`` hook draws it."""
    return session.spec.render.learned(session.task, reward)


class LabelApp(App):
    """One pair at a time; a status line with progress and the learned reward's agreement."""

    # the learned view beside the pair, not below it: a 10 x 10 grid's pair and heatmap then fit 80 x 24;
    # the learned view keeps the width of a 10 x 10 heatmap (20) whatever the pair panel shows
    CSS = ("#main { height: 1fr; } #pair { width: auto; padding: 1 2; } "
           f"#learned {{ width: 1fr; min-width: {LEARNED_MIN_WIDTH}; padding: 1 2; }} "
           "#status { dock: bottom; background: $panel; }")

    def __init__(self, session: Session, train_every: int = 0) -> None:
        super().__init__()
        self.session, self.train_every = session, train_every
        self.agreement = math.nan
        self.learned_text = ""
        self.shown_at = math.inf
        """When the pair on screen was drawn (``time.monotonic``, Textual's event clock)."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield Static(id="pair")
            yield Static(id="learned")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.session.answer_identical()         # identical pairs before the first one shown
        self._after_answer(retrain=self.session.answered > 0)

    def on_key(self, event: Key) -> None:
        key = event.character
        if key == "q":
            self.exit()
        elif event.time < self.shown_at:
            return          # typed before this pair was on screen: it would answer a pair nobody saw
        elif key == "u":
            if self.session.undo():
                self._after_answer(retrain=True)
        elif key in ("1", "2", "=", "s") and not self.session.done:
            self.session.answer(key)
            self._after_answer(retrain=True)

    def _after_answer(self, retrain: bool) -> None:
        session = self.session
        if retrain:
            result = session.learned()
            self.agreement = session.agreement(result)
            if self.train_every and (session.done or session.answered % self.train_every == 0):
                self.learned_text = learned_view(session, result.reward)
        pair = self.query_one("#pair", Static)
        if session.done:
            pair.update(CLOSING)
        else:
            drawn = session.spec.render.pair(session.task, *session.current())
            pair.update(f"Which do you prefer?\n\n{drawn}")
        self.query_one("#learned", Static).update(self.learned_text)
        agreement = "—" if math.isnan(self.agreement) else f"{self.agreement:.0%}"
        identical = session.identical_answered
        equal = f" ({identical} identical pair{'s' * (identical > 1)} answered = for you)" if identical else ""
        self.query_one("#status", Static).update(
            f"answered {session.answered}/{len(session.pairs)}{equal} · agreement {agreement}\n{KEYS}")
        self.shown_at = time.monotonic()
