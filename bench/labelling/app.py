"""``python -m bench label``: label preference pairs yourself, in the terminal (Textual).

Textual because it is maintained, draws in any 80×24 terminal, and its ``App.run_test`` pilot
lets the tests press the keys. Keys: ``1`` / ``2`` prefer, ``=`` equal, ``s`` skip, ``u`` undo
the last answer, ``q`` quit. Every answer is committed to the store before the next pair shows
(:class:`bench.labelling.Session`); rerunning the same command resumes.
"""

from __future__ import annotations

import math
import time

import torch
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.events import Key
from textual.widgets import Static

import rlhf

from .session import Session

KEYS = "1/2 prefer · = equal · s skip · u undo · q quit"
_SHADES = "░▒▓█"


def render_strings(task: rlhf.StringTask, first: rlhf.Trajectories, second: rlhf.Trajectories) -> str:
    """The two strings one above the other, aligned by position."""
    width = max(len(str(len(task.target))), 1) + 1

    def row(traj: rlhf.Trajectories) -> str:
        return "".join(task.vocab[int(a)].rjust(width) for a in traj.actions)

    header = "".join(str(i + 1).rjust(width) for i in range(len(first.actions)))
    return f"position {header}\n   [1]   {row(first)}\n   [2]   {row(second)}"


def render_grid(task: rlhf.GridWorld, first: rlhf.Trajectories, second: rlhf.Trajectories) -> str:
    """The two trajectories on the grid, side by side: ``S`` start, ``1``…``9`` the later steps
    (a cell shows its last visit; the start always shows ``S``), ``G`` the goal, ``·`` other
    cells; y grows upwards."""
    grids = [_grid_cells(task, traj) for traj in (first, second)]
    n = task.size
    lines = ["[1]".ljust(2 * n + 1) + "[2]"]
    for y in range(n - 1, -1, -1):
        lines.append("  ".join(" ".join(grid[x][y] for x in range(n)) for grid in grids))
    return "\n".join(lines)


def _grid_cells(task: rlhf.GridWorld, traj: rlhf.Trajectories) -> list[list[str]]:
    n = task.size
    cells = [["·"] * n for _ in range(n)]
    for s in task.goal_states.tolist():
        cells[s // n][s % n] = "G"
    states = traj.states.tolist()
    for t, s in enumerate(states[1:], start=1):
        cells[s // n][s % n] = str(min(t, 9))
    cells[states[0] // n][states[0] % n] = "S"             # the start stays visible when revisited
    return cells


def render_heatmap(task: rlhf.GridWorld, reward: torch.Tensor) -> str:
    """A learned state reward as shades (darkest = lowest), top row y = N − 1."""
    grid = task.as_grid(reward.reshape(-1)[: task.size ** 2].float())
    low, high = float(grid.min()), float(grid.max())
    scale = (len(_SHADES) - 1) / (high - low) if high > low else 0.0
    rows = []
    for y in range(task.size - 1, -1, -1):
        rows.append("".join(_SHADES[round((float(v) - low) * scale)] * 2 for v in grid[y]))
    return "\n".join(rows)


def learned_view(session: Session, reward: torch.Tensor) -> str:
    task = session.task
    if isinstance(task, rlhf.StringTask):
        return f"learned string:\n{task.decode(reward)}   (target {task.target})"
    assert isinstance(task, rlhf.GridWorld)
    return "learned reward (dark = low):\n" + render_heatmap(task, reward)


class LabelApp(App):
    """One pair at a time; a status line with progress and the learned reward's agreement."""

    # the learned view beside the pair, not below it: a 10 x 10 grid's pair and heatmap then fit 80 x 24
    CSS = ("#main { height: 1fr; } #pair { width: auto; padding: 1 2; } #learned { width: 1fr; padding: 1 2; } "
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
            pair.update("Every pair is answered. Thank you!  (q quits; u undoes the last answer)")
        else:
            first, second = session.current()
            task = session.task
            drawn = (render_strings(task, first, second) if isinstance(task, rlhf.StringTask)
                     else render_grid(task, first, second))
            pair.update(f"Which do you prefer?\n\n{drawn}")
        self.query_one("#learned", Static).update(self.learned_text)
        agreement = "—" if math.isnan(self.agreement) else f"{self.agreement:.0%}"
        self.query_one("#status", Static).update(
            f"answered {session.answered}/{len(session.pairs)} · agreement {agreement} · {KEYS}")
        self.shown_at = time.monotonic()
