"""The task registry: every task a sweep, a report, the gate and the labelling program can name.

In the spirit of ``gymnasium.register(id, entry_point=...)``, one call declares a task::

    rlhf.register_task(
        "chain",
        factory=lambda fields: make_chain(fields["size"]),      # instance fields -> a Task
        axes=(rlhf.Axis("sizes", "size", int, "an integer >= 2", lambda v: v >= 2),),
        defaults=rlhf.TrainConfig(budget=300),                   # its training configuration
        label=lambda fields: f"S={fields['size']}",              # how reports name an instance
    )

and a sweep config may then have a ``[chain]`` table with ``sizes = [4, 6]`` next to the
shared axes (budgets, teachers, seeds, ...). The harness never spells a task's name: it asks
the registry for the spec.

A task instance is described by the *instance fields* (:data:`INSTANCE_FIELDS`), the task
columns of a sweep's ``cells.csv``: a task uses the ones it needs (its axes set them, its
``derive`` hook computes others) and the rest keep their defaults, so the content hash of a
sweep cell, and the columns, are the same for every task. The built-in tasks are registered
in :mod:`rlhf.tasks.builtins`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.registry import Registry
from ..core.rollout import Trajectories
from ..learning.learner import LearnerConfig
from ..training.config import TrainConfig
from ..training.protocol import Task

INSTANCE_FIELDS: dict[str, Any] = {"size": 0, "slip": 0.0, "start": "", "vocab_size": 0, "horizon": 0,
                                   "world": 0, "env": ""}
"""Every field that describes a task instance, in ``cells.csv`` order, with the value a task that
does not use it gets. A task's axes and ``derive`` hook set some of them; its factory reads them."""
SHARED_KEYS = ("budgets", "teachers", "seeds", "queries", "ensembles", "learner_models", "fits", "train",
               "ranks", "rank_learners", "ties", "tie_fits", "rank_costs",
               "methods", "betas", "references", "proxies", "golds")
"""Keys every task's sweep table has (the training axes, the ``[task.train]`` table, the alignment
axes, which make a table's cells :func:`rlhf.align` runs, and the over-optimisation axes, which make
them optimisation paths): no task axis may reuse one."""
CONFIG_KEYS = ("name", "check", "imports")
"""A sweep config's own top-level keys: no task may be named after one (task names are table names)."""
LABEL_OPTIONS = ("vocab", "target", "size", "slip")
"""The options of the labelling program (``python -m bench label --vocab/--target/--size/--slip``)."""
FORMS = ("list", "scalar", "count")


class _Required:
    """The default of an axis the table must give."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _anything(value: object) -> bool:
    return True


def _size_label(fields: Mapping[str, Any]) -> str:
    return f"size={fields['size']}"


@dataclass(frozen=True)
class Axis:
    """One key of a task's sweep table and the instance field its values set."""

    key: str
    """The table's key, e.g. ``"sizes"``."""
    field: str
    """The instance field (a key of :data:`INSTANCE_FIELDS`) each value sets, e.g. ``"size"``."""
    kind: type = int
    """The type of a value: ``int``, ``float`` (integers accepted, stored as floats) or ``str``;
    the field's own type."""
    rule: str = ""
    """A valid value in words, for errors ("must be {rule}"); default: the kind's name."""
    check: Callable[[Any], bool] = _anything
    """Whether a value (of ``kind``) is valid."""
    form: str = "list"
    """``"list"``: a non-empty list of values, crossed with the table's other list and count axes;
    ``"scalar"``: one value for every instance of the table; ``"count"``: a count n (values 0 … n − 1)
    or a list of distinct integers >= 0, like ``seeds``."""
    default: Any = REQUIRED
    """What an omitted key means (a list for a list axis, taken as given, unchecked);
    :data:`REQUIRED` (the default): the table must give the key."""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or self.key in SHARED_KEYS:
            raise ValueError(f"key must be a non-empty string other than {', '.join(SHARED_KEYS)}, got {self.key!r}")
        if self.field not in INSTANCE_FIELDS:
            raise ValueError(f"field must be one of {', '.join(INSTANCE_FIELDS)}, got {self.field!r}")
        if self.kind is not type(INSTANCE_FIELDS[self.field]):
            raise ValueError(f"kind of field {self.field!r} must be {type(INSTANCE_FIELDS[self.field]).__name__}, "
                             f"got {getattr(self.kind, '__name__', self.kind)!r}")
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {self.form!r}")
        if self.form == "count" and self.kind is not int:
            raise ValueError(f"a count axis sets an integer field, got field {self.field!r}")
        if self.form == "list" and not self.required and (not isinstance(self.default, list) or not self.default):
            raise ValueError(f"default of list axis {self.key!r} must be a non-empty list, got {self.default!r}")
        if not callable(self.check):
            raise ValueError(f"check must be callable, got {self.check!r}")
        if not self.rule:
            object.__setattr__(self, "rule", {int: "an integer", float: "a number", str: "a string"}[self.kind])

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def crossed(self) -> bool:
        """Whether the axis's values multiply the instances (list and count axes)."""
        return self.form != "scalar"


@dataclass(frozen=True, kw_only=True)
class Render:
    """How the labelling program (``python -m bench label``) shows a task to a person, as text
    that fits an 80 x 24 terminal beside the learned reward."""

    make: Callable[[Mapping[str, Any]], Task]
    """The task a session labels, from the program's options (:data:`LABEL_OPTIONS`, by name);
    a ValueError is the program's one-line error."""
    options: tuple[str, ...]
    """The options that make the instance: recorded in the labels store and checked on resume."""
    pair: Callable[[Any, Trajectories, Trajectories], str]
    """The two segments of a pair ``[T]`` each, as a person compares them."""
    learned: Callable[[Any, torch.Tensor], str]
    """What the reward learned from the answers so far means (the learned ``[S]`` or ``[S, A]`` reward)."""
    segment_length: int = 0
    """Steps of a segment a person compares; 0: the task's horizon."""
    learner: LearnerConfig | None = None
    """How a session fits the person's answers so far, to show what they teach (refitted from the
    start after every answer); None: the learner of the task's defaults. A session's pairs do not
    depend on it, so its store replays under any learner (``rlhf.RecordedTeacher``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if self.learner is not None and not isinstance(self.learner, LearnerConfig):
            raise ValueError(f"learner must be an rlhf.LearnerConfig or None, got {self.learner!r}")
        unknown = sorted(set(self.options) - set(LABEL_OPTIONS))
        if unknown:
            raise ValueError(f"options must be among {', '.join(LABEL_OPTIONS)}, got {unknown[0]!r}")
        for name in ("make", "pair", "learned"):
            if not callable(getattr(self, name)):
                raise ValueError(f"{name} must be callable, got {getattr(self, name)!r}")
        if isinstance(self.segment_length, bool) or not isinstance(self.segment_length, int) \
                or self.segment_length < 0:
            raise ValueError(f"segment_length must be an integer >= 0, got {self.segment_length!r}")


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A registered task: its name and everything the harness needs to know about it."""

    name: str
    """The task's name: a sweep config's table, the ``task`` column of ``cells.csv``."""
    factory: Callable[[Mapping[str, Any]], Task]
    """The task instance from its instance fields (every key of :data:`INSTANCE_FIELDS`)."""
    axes: tuple[Axis, ...]
    """The keys of its sweep table besides the shared ones (:data:`SHARED_KEYS`), in the order
    they are validated and crossed."""
    defaults: TrainConfig
    """The training configuration a sweep table starts from (its ``[task.train]`` overrides it)."""
    label: Callable[[Mapping[str, Any]], str] = _size_label
    """An instance's short name in report tables, figures and gate lines (``N=5``), from its
    fields; default ``size=…``."""
    derive: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    """Instance fields that follow from the axes' values (a random world's number of states, an
    environment's horizon), computed once when a sweep is expanded. A ValueError or ImportError
    is a bad value of the instance's first axis."""
    fields_of: Callable[[Task], Mapping[str, Any]] | None = None
    """A task object back into instance fields, such that ``factory`` makes the same task (how a
    preset becomes a sweep cell); raises ValueError for an object the factory does not make."""
    render: Render | None = None
    """How the labelling program draws the task; None: it cannot be labelled by a person."""
    tags: frozenset[str] = field(default_factory=frozenset)
    """What report sections select tasks by, e.g. ``"environment"`` (an imported Gymnasium or
    seals environment)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip() \
                or self.name in CONFIG_KEYS:
            raise ValueError(f"name must be a non-empty string without surrounding spaces, not one of "
                             f"{', '.join(CONFIG_KEYS)}, got {self.name!r}")
        if not callable(self.factory):
            raise ValueError(f"task {self.name!r}: factory must be callable, got {self.factory!r}")
        object.__setattr__(self, "axes", tuple(self.axes))
        for axis in self.axes:
            if not isinstance(axis, Axis):
                raise ValueError(f"task {self.name!r}: axes must be rlhf.Axis objects, got {axis!r}")
        for what in ("key", "field"):
            names = [getattr(a, what) for a in self.axes]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"task {self.name!r}: two axes have the {what} {twice[0]!r}")
        if not isinstance(self.defaults, TrainConfig):
            raise ValueError(f"task {self.name!r}: defaults must be an rlhf.TrainConfig, got {self.defaults!r}")
        for name in ("label", "derive", "fields_of"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ValueError(f"task {self.name!r}: {name} must be callable, got {hook!r}")
        if self.render is not None and not isinstance(self.render, Render):
            raise ValueError(f"task {self.name!r}: render must be an rlhf.Render, got {self.render!r}")
        tags = frozenset(self.tags)
        if not all(isinstance(t, str) for t in tags):
            raise ValueError(f"task {self.name!r}: tags must be strings, got {sorted(map(repr, tags))}")
        object.__setattr__(self, "tags", tags)

    @property
    def keys(self) -> tuple[str, ...]:
        """Its own keys of a sweep table (the shared ones aside)."""
        return tuple(a.key for a in self.axes)

    def instance(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every instance field: the defaults, the axes' values ``given`` (by field), then what
        ``derive`` computes from them."""
        fields = INSTANCE_FIELDS | _known(given, "given")
        if self.derive is not None:
            fields |= _known(self.derive(fields), f"task {self.name!r}: derive returned")
        return fields

    def make(self, fields: Mapping[str, Any]) -> Task:
        """The task instance of ``fields`` (instance fields; others, e.g. ``task``, are ignored)."""
        return self.factory({k: fields.get(k, default) for k, default in INSTANCE_FIELDS.items()})

    def instance_of(self, task: Task) -> dict[str, Any]:
        """A task object's instance fields (see ``fields_of``)."""
        if self.fields_of is None:
            raise ValueError(f"task {self.name!r} cannot read an instance back into fields (no fields_of)")
        return INSTANCE_FIELDS | _known(self.fields_of(task), f"task {self.name!r}: fields_of returned")


def _known(fields: Mapping[str, Any], what: str) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(INSTANCE_FIELDS))
    if unknown:
        raise ValueError(f"{what} {unknown[0]!r}, not an instance field ({', '.join(INSTANCE_FIELDS)})")
    return dict(fields)


_REGISTRY: Registry[TaskSpec] = Registry("task")


def register_task(name: str, *, factory: Callable[[Mapping[str, Any]], Task], axes: Iterable[Axis],
                  defaults: TrainConfig, label: Callable[[Mapping[str, Any]], str] = _size_label,
                  derive: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
                  fields_of: Callable[[Task], Mapping[str, Any]] | None = None, render: Render | None = None,
                  tags: Iterable[str] = ()) -> TaskSpec:
    """Register a task under ``name`` (see :class:`TaskSpec` for each argument); returns its spec.
    A name registered before raises ValueError: a task is defined once."""
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered (by {_REGISTRY[name].factory.__module__})")
    spec = TaskSpec(name=name, factory=factory, axes=tuple(axes), defaults=defaults, label=label, derive=derive,
                    fields_of=fields_of, render=render, tags=frozenset(tags))
    return _REGISTRY.register(name, spec)


def task_spec(name: str) -> TaskSpec:
    """The spec registered under ``name``; ValueError naming the registered tasks when none is."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r} (registered: {', '.join(_REGISTRY)}; a task registered "
                         "in a module of your own is known once that module is imported)") from None


def registered_tasks(*, tag: str | None = None, render: bool = False) -> tuple[str, ...]:
    """The registered task names in registration order; only those with ``tag``, or (``render``)
    those the labelling program can draw, when asked."""
    return _REGISTRY.names(lambda spec: (tag is None or tag in spec.tags) and (not render or spec.render is not None))


def instance_label(fields: Mapping[Any, Any]) -> str:
    """A task instance's short name (``N=5``), by its task's ``label``: ``fields`` holds ``task``
    and the instance fields (a ``cells.csv`` row will do)."""
    return task_spec(str(fields["task"])).label(fields)
