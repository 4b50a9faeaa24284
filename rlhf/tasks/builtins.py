"""The five built-in tasks, registered (:func:`rlhf.register_task`) as a user's task would be.

All five in one module, as Gymnasium registers its environments in ``gymnasium/envs/__init__.py``:
a registration is about how the harness sweeps, labels and names a task (its sweep-table keys,
its instance fields, its report label), not about the task itself, so the task modules stay
free of it and the five tables of axes can be read side by side here.

Sweep tables (besides the shared budgets, teachers, seeds, queries, ensembles, learner_models, fits
and ``[task.train]``):

- ``[gridworld]``: ``sizes`` (side N), ``slips``, ``starts`` (``corner`` (0, 0) or ``uniform``,
  every non-goal cell; default uniform, as ``rlhf.GridWorld()``), ``horizon`` (default 30);
  the goal is the far corner (N − 1, N − 1).
- ``[strings]``: ``sizes`` (target length L), ``slips``, ``vocab_size`` (the first letters of
  the alphabet, default 3); the target cycles through the vocabulary (ABCAB…).
- ``[random-gridworld]``: ``worlds``, a count or a list of Knox et al.'s random worlds
  (``rlhf.RandomGridWorld(world)``; a world fixes its size and has no slip).
- ``[gymnasium]`` and ``[seals]``: ``envs`` (environment ids) and ``horizon`` (default: each
  environment's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..learning.learner import LearnerConfig
from ..training.protocol import Task
from . import render
from .ecosystem import from_gymnasium, from_seals
from .gridworld import GridWorld
from .random_gridworld import RandomGridWorld
from .registry import Axis, Render, register_task
from .strings import StringTask
from .tabular import DEFAULTS as TABULAR_DEFAULTS
from .tabular import TabularTask

STARTS = ("corner", "uniform")
"""Gridworld start modes: the corner (0, 0), or every non-goal cell (``rlhf.GridWorld()``'s default)."""
DEFAULT_START = "uniform"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_LABEL_GRID = 10
"""The largest grid the labelling program draws: two 10 x 10 grids and the learned heatmap fit 80 x 24."""
GRID_SEGMENT = 8
"""Steps of a gridworld segment a person compares (a 30-step trajectory is too long to judge)."""
LABEL_LEARNER = LearnerConfig(optimizer="adam", lr=0.1, epochs=100, batch_size=0)
"""How a labelling session of the string task fits a person's answers (the sweeps and the
``seed-strings`` preset keep the seed's SGD at lr 0.01, 5 epochs, a pair at a time). From the
N(0, 1) initialisation the seed's learner moves the table's largest entry change by 0.02 after one
answer and 0.3 after 30 (medians over seeds), so the learned string is mostly the initialisation's:
after 30 perfect answers (``--vocab ABC --target ABC --pairs 30``) it is ABC in 9% of 1000 seeds.
Adam's steps are about ``lr`` per entry whatever the gradient's scale: 100 full-batch steps at
0.1 change an entry by 1.6 after one answer (median), as much as the initialisation's spread, and
full batch makes the fit independent of the order of the answers. Measured over 1000 seeds with
the answers of the oracle (``=`` on ties) / the deterministic teacher (ties to the second): ABC
after 10 pairs in 97% / 70%, after 20 in 100% / 96%, after 30 in 100% / 99.2%."""


def _positive(v: int) -> bool:
    return v >= 1


SIZES = Axis("sizes", "size", int, "an integer >= 2", lambda v: v >= 2)
SLIPS = Axis("slips", "slip", float, "a number in [0, 1)", lambda v: 0 <= v < 1)
ENVS = Axis("envs", "env", str, "an environment id")
ENV_HORIZON = Axis("horizon", "horizon", int, "an integer >= 1", _positive, form="scalar", default=0)


# ---------------------------------------------------------------- gridworld
def _gridworld(fields: Mapping[str, Any]) -> GridWorld:
    n = fields["size"]
    return GridWorld(size=n, slip=fields["slip"], start=[(0, 0)] if fields["start"] == "corner" else None,
                     goal=[(n - 1, n - 1)], horizon=fields["horizon"])


def _gridworld_fields(task: Task) -> dict[str, Any]:
    """A gridworld with the goal in the far corner and a start mode of :data:`STARTS`."""
    if not isinstance(task, GridWorld):
        raise ValueError(f"not a GridWorld: {task!r}")
    fields = {"size": task.size, "slip": task.slip, "horizon": task.horizon}
    for start in STARTS:
        made = _gridworld(fields | {"start": start})
        if torch.equal(made.goal_states, task.goal_states) and torch.equal(made.mdp.start, task.mdp.start):
            return fields | {"start": start}
    raise ValueError(f"{task!r}: its goal or start cells are not a sweep's (goal in the far corner, start "
                     f"{' or '.join(STARTS)})")


def _gridworld_to_label(options: Mapping[str, Any]) -> GridWorld:
    if not 2 <= options["size"] <= MAX_LABEL_GRID:
        raise ValueError(f"--size must be in [2, {MAX_LABEL_GRID}] to draw two grids in an 80x24 terminal, "
                         f"got {options['size']}")
    return GridWorld(size=options["size"], slip=options["slip"])


register_task(
    "gridworld", factory=_gridworld, defaults=GridWorld.defaults,
    axes=(SIZES, SLIPS,
          Axis("starts", "start", str, f"one of {', '.join(STARTS)}", lambda v: v in STARTS, default=[DEFAULT_START]),
          Axis("horizon", "horizon", int, "an integer >= 1", _positive, form="scalar", default=30)),
    label=lambda fields: f"N={fields['size']}", fields_of=_gridworld_fields,
    render=Render(make=_gridworld_to_label, options=("size", "slip"), pair=render.grid_pair,
                  learned=render.grid_learned, segment_length=GRID_SEGMENT),
)


# ---------------------------------------------------------------- strings
def _strings(fields: Mapping[str, Any]) -> StringTask:
    vocab = LETTERS[: fields["vocab_size"]]
    target = "".join(vocab[i % len(vocab)] for i in range(fields["size"]))
    return StringTask(vocab=vocab, target=target, slip=fields["slip"])


def _strings_fields(task: Task) -> dict[str, Any]:
    """A string task whose vocabulary is the alphabet's first letters and whose target cycles through it."""
    if not isinstance(task, StringTask):
        raise ValueError(f"not a StringTask: {task!r}")
    fields = {"size": len(task.target), "slip": task.slip, "vocab_size": len(task.vocab)}
    made = _strings(fields)
    if (made.vocab, made.target) != (task.vocab, task.target):
        raise ValueError(f"{task!r}: a sweep's string task has vocabulary {made.vocab!r} and target {made.target!r}")
    return fields


register_task(
    "strings", factory=_strings, defaults=StringTask.defaults,
    axes=(SIZES, SLIPS, Axis("vocab_size", "vocab_size", int, "an integer in [2, 26]", lambda v: 2 <= v <= 26,
                             form="scalar", default=3)),
    label=lambda fields: f"L={fields['size']}", fields_of=_strings_fields,
    render=Render(make=lambda o: StringTask(vocab=o["vocab"], target=o["target"], slip=o["slip"]),
                  options=("vocab", "target", "slip"), pair=render.strings_pair, learned=render.strings_learned,
                  learner=LABEL_LEARNER),
)


# ---------------------------------------------------------------- random worlds
def _world_size(fields: Mapping[str, Any]) -> dict[str, Any]:
    world = RandomGridWorld(fields["world"])
    return {"size": world.height * world.width}


register_task(
    "random-gridworld", factory=lambda fields: RandomGridWorld(fields["world"]), defaults=RandomGridWorld.defaults,
    axes=(Axis("worlds", "world", int, form="count"),), derive=_world_size,
    label=lambda fields: f"world={fields['world']}", tags=("random-worlds",),
)


# ---------------------------------------------------------------- Gymnasium and seals environments
def _environment(load: Any) -> tuple[Any, Any]:
    """The factory and the ``derive`` hook of an environment importer: ``horizon`` 0 is the
    environment's own, which ``derive`` records (with the number of states as ``size``)."""
    def factory(fields: Mapping[str, Any]) -> TabularTask:
        task: TabularTask = load(fields["env"], horizon=fields["horizon"] or None)
        return task

    def derive(fields: Mapping[str, Any]) -> dict[str, Any]:
        task = factory(fields)
        return {"size": task.mdp.num_states, "horizon": task.horizon}
    return factory, derive


for _name, _load in (("gymnasium", from_gymnasium), ("seals", from_seals)):
    _factory, _derive = _environment(_load)
    register_task(_name, factory=_factory, defaults=TABULAR_DEFAULTS, axes=(ENVS, ENV_HORIZON), derive=_derive,
                  label=lambda fields: str(fields["env"]), tags=("environment",))
