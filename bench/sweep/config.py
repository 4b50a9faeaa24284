"""Sweep configs: TOML files expanded into cells, each a frozen, validated config with a stable hash.

A config has one table per task; each table's axes are crossed::

    [gridworld]
    sizes = [5, 10]          # grid side N        (strings: target length L)
    slips = [0.0, 0.1]
    budgets = [500, 2000]    # preference pairs asked
    teachers = ["boltzmann:1"]
    starts = ["corner", "uniform"]   # gridworld only; default ["uniform"], as rlhf.GridWorld()
    seeds = 10               # a count (0..9) or a list
    queries = ["on-policy", "disagreement"]   # optional: query rules (default: the train table's)
    ensembles = [1, 5]       # optional: reward ensemble sizes (default: the train table's)
    learner_models = ["partial", "regret"]    # optional: the learner's preference model
    [gridworld.train]        # fixed hyperparameters (TrainConfig / LearnerConfig fields)
    pairs_per_round = 100

    [random-gridworld]       # Knox et al.'s random feature gridworlds: rlhf.RandomGridWorld(world)
    worlds = 30              # a count (0..29) or a list; no sizes or slips (a world fixes both)
    budgets = [300, 3000]
    teachers = ["boltzmann:1", "regret+boltzmann:1"]
    seeds = 1

A rule that compares ensemble members is not crossed with an ensemble of one
(``disagreement`` and ``info-gain`` with ``ensembles = [1, 5]`` run at 5 only).

A task may also have several tables (``[[gridworld]]`` … ``[[gridworld]]``), each crossed on its
own: the cells are all of them. An optional ``[check]`` table holds the convergence gate's tolerances, one
``metric = { abs = A, rel = R }`` entry per metric (see :mod:`bench.check`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import rlhf
from rlhf.tasks.tabular import DEFAULTS as TABULAR_DEFAULTS

from ..errors import ConfigError

T = TypeVar("T")

TASKS = ("gridworld", "strings", "random-gridworld", "gymnasium", "seals")
STARTS = ("corner", "uniform")
DEFAULT_START = "uniform"
"""Gridworld start when a config names none: every non-goal cell, as ``rlhf.GridWorld()`` (the seed's default)."""
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_AXES = {"budgets", "teachers", "seeds", "queries", "ensembles", "learner_models", "train"}
_TASK_KEYS = {
    "gridworld": _AXES | {"sizes", "slips", "starts", "horizon"},
    "strings": _AXES | {"sizes", "slips", "vocab_size"},
    "random-gridworld": _AXES | {"worlds"},
    "gymnasium": _AXES | {"envs", "horizon"},
    "seals": _AXES | {"envs", "horizon"},
}
_REQUIRED = {"gridworld": ("sizes", "slips"), "strings": ("sizes", "slips"), "random-gridworld": ("worlds",),
             "gymnasium": ("envs",), "seals": ("envs",)}
_TASK_DEFAULTS = {"gridworld": rlhf.GridWorld.defaults, "strings": rlhf.StringTask.defaults,
                  "random-gridworld": rlhf.RandomGridWorld.defaults, "gymnasium": TABULAR_DEFAULTS,
                  "seals": TABULAR_DEFAULTS}
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}
TASK_FIELDS = ("task", "size", "slip", "start", "vocab_size", "horizon", "world", "env")
"""The fields that make the task instance; the rest of a configuration is :class:`rlhf.TrainConfig`'s."""
PUBLIC_COLUMNS = ("task", "size", "slip", "budget", "teacher", "seed")
"""The first columns of ``cells.csv``, in this order."""
SHOWN_COLUMNS = ("task", "size", "slip", "start", "teacher", "budget")
"""Configuration fields every report table and gate label shows; any other field appears when it varies."""
_TRAIN_KEYS = {k: t for k, t in rlhf.TrainConfig.flat_fields().items() if k not in ("budget", "teacher")}
"""Keys of a ``[task.train]`` table: the flat training fields that are not sweep axes."""


@dataclass(frozen=True)
class CellConfig:
    """One run of the sweep: a task instance, a training setup and a seed.

    Its flat :meth:`fields` (task fields, then every flat :class:`rlhf.TrainConfig`
    field, then the seed) are the configuration everywhere: the content hash, the
    columns of ``cells.csv``, and — all but the seed — the grouping of seeds in
    stats, reports and the gate.
    """

    task: str
    size: int
    """Grid side N (gridworld), target length L (strings), or states (random-gridworld, gymnasium,
    seals: set by the world or environment)."""
    slip: float
    seed: int
    train: rlhf.TrainConfig
    start: str = ""
    """Gridworld start mode: ``corner`` (0, 0) or ``uniform`` (every non-goal cell)."""
    vocab_size: int = 0
    horizon: int = 0
    world: int = 0
    """The random gridworld's generator seed (``rlhf.RandomGridWorld(world)``); 0 for other tasks."""
    env: str = ""
    """The Gymnasium or seals environment id (``rlhf.from_gymnasium(env, horizon)``); "" for other tasks."""

    def fields(self) -> dict[str, object]:
        """Every field by its flat name, public columns first."""
        flat = self.train.flat()
        task = {name: getattr(self, name) for name in TASK_FIELDS}
        both = task | flat | {"seed": self.seed}
        return {name: both[name] for name in config_columns()}

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> CellConfig:
        """The inverse of :meth:`fields` (extra keys, e.g. metrics, are ignored)."""
        train = {k: values[k] for k in rlhf.TrainConfig.flat_fields()}
        config = rlhf.TrainConfig(budget=train.pop("budget"), teacher=train.pop("teacher")).replace(**train)
        return cls(train=config, seed=values["seed"], **{k: values[k] for k in TASK_FIELDS})

    @property
    def key(self) -> str:
        """Stable content hash: canonical JSON of every field, key order irrelevant."""
        text = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def budget(self) -> int:
        return self.train.budget

    @property
    def teacher(self) -> str:
        return str(self.train.teacher)

    def configuration(self) -> dict[str, object]:
        """Every field but the seed: what seeds are replicates of."""
        return {k: v for k, v in self.fields().items() if k != "seed"}

    def make_task(self) -> rlhf.Task:
        if self.task == "random-gridworld":
            return rlhf.RandomGridWorld(self.world)
        if self.task in ("gymnasium", "seals"):
            return _import_env(self.task, self.env, self.horizon)
        if self.task == "gridworld":
            n = self.size
            return rlhf.GridWorld(size=n, slip=self.slip, start=[(0, 0)] if self.start == "corner" else None,
                                  goal=[(n - 1, n - 1)], horizon=self.horizon)
        vocab = LETTERS[: self.vocab_size]
        target = "".join(vocab[i % len(vocab)] for i in range(self.size))
        return rlhf.StringTask(vocab=vocab, target=target, slip=self.slip)

    def train_config(self) -> rlhf.TrainConfig:
        return self.train


def preset_cell(name: str, seed: int = 0, **train: object) -> CellConfig:
    """The cell of an ``rlhf`` preset (``train_preset(name, seed, **train)`` as a sweep cell)."""
    task = rlhf.preset_task(name)
    config = task.defaults.replace(**train)
    if isinstance(task, rlhf.GridWorld):
        return CellConfig(task="gridworld", size=task.size, slip=task.slip, seed=seed, train=config, start="corner",
                          horizon=task.horizon)
    assert isinstance(task, rlhf.StringTask)
    return CellConfig(task="strings", size=len(task.target), slip=task.slip, seed=seed, train=config,
                      vocab_size=len(task.vocab))


def instance_label(fields: Mapping[Any, Any]) -> str:
    """A task instance's short name: ``N=5`` (a grid's side), ``L=3`` (a string's length), ``world=7``."""
    if fields["task"] == "random-gridworld":
        return f"world={fields['world']}"
    if fields["task"] in ("gymnasium", "seals"):
        return str(fields["env"])
    return f"{'N' if fields['task'] == 'gridworld' else 'L'}={fields['size']}"


def config_columns() -> list[str]:
    """Every configuration column in ``cells.csv`` order: the public ones, the other task
    fields, then the training fields."""
    rest = [c for c in (*TASK_FIELDS, *rlhf.TrainConfig.flat_fields()) if c not in PUBLIC_COLUMNS]
    return [*PUBLIC_COLUMNS, *rest]


def group_columns() -> list[str]:
    """The configuration without the seed: the key stats, reports and the gate group by."""
    return [c for c in config_columns() if c != "seed"]


def text_columns() -> list[str]:
    """Configuration columns holding strings (read back as strings, never as numbers or NaN)."""
    types = typing.get_type_hints(CellConfig) | rlhf.TrainConfig.flat_fields()
    return [c for c in config_columns() if types.get(c) is str]


@dataclass(frozen=True)
class SweepConfig:
    path: Path
    name: str
    cells: tuple[CellConfig, ...]
    check: dict


def load(path: str | Path) -> SweepConfig:
    """Read, validate and expand a sweep config; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(path, None, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, None, f"malformed TOML: {exc}") from None
    unknown = sorted(set(raw) - set(TASKS) - {"name", "check"})
    if unknown:
        raise ConfigError(path, unknown[0], raw[unknown[0]], f"unknown task or key (tasks: {', '.join(TASKS)})")
    tasks = [t for t in raw if t in TASKS]
    if not tasks:
        raise ConfigError(path, None, None, f"names no task (expected a table named after one of {', '.join(TASKS)})")
    cells: list[CellConfig] = []
    for task in tasks:           # [task] is one table of axes, [[task]] several (their cells are joined)
        for table in raw[task] if isinstance(raw[task], list) else [raw[task]]:
            cells.extend(_expand(path, task, table))
    return SweepConfig(path, str(raw.get("name", path.stem)), tuple(cells), _check_table(path, raw.get("check", {})))


def _check_table(path: Path, check: object) -> dict[str, dict[str, float]]:
    """``{metric: {"abs": a, "rel": r}}`` from the ``[check]`` table, every entry validated."""
    if not isinstance(check, dict):
        raise ConfigError(path, "check", check, "must be a table")
    out = {}
    for metric, entry in check.items():
        if not isinstance(entry, dict) or not entry or set(entry) - {"abs", "rel"}:
            raise ConfigError(path, f"check.{metric}", entry, "must be a table like { abs = 0.05, rel = 0.1 }")
        for part, value in entry.items():
            if not _is(value, float) or not value >= 0:
                raise ConfigError(path, f"check.{metric}.{part}", value, "must be a number >= 0")
        out[metric] = {"abs": float(entry.get("abs", 0.0)), "rel": float(entry.get("rel", 0.0))}
    return out


def _expand(path: Path, task: str, table: object) -> list[CellConfig]:
    if not isinstance(table, dict):
        raise ConfigError(path, task, table, "must be a table")
    for key in table:
        if key not in _TASK_KEYS[task]:
            raise ConfigError(path, f"{task}.{key}", table[key], "unknown key")
    for key in (*_REQUIRED[task], "budgets", "teachers", "seeds"):
        if key not in table:
            raise ConfigError(path, f"{task}.{key}", None, "missing")

    def axis(key, kind, rule, check, default=None):
        values = table.get(key, default)
        if not isinstance(values, list) or not values:
            raise ConfigError(path, f"{task}.{key}", values, "must be a non-empty list")
        for v in values:
            if not _is(v, kind) or not check(v):
                raise ConfigError(path, f"{task}.{key}", v, f"must be {rule}")
        return values

    instances = _task_instances(path, task, table, axis)
    budgets = axis("budgets", int, "an integer >= 1", lambda v: v >= 1)
    teachers = axis("teachers", str, "a teacher spec such as 'boltzmann:1', 'oracle+mistake:0.1' or "
                    "'recorded:DIR' (a labels store)",
                    _valid_teacher)
    seeds = _seeds(path, f"{task}.seeds", table["seeds"])
    defaults = _TASK_DEFAULTS[task]
    train = _train_fields(path, task, table.get("train", {}))
    for key, field in (("queries", "query"), ("ensembles", "ensemble"), ("learner_models", "learner_model")):
        if key in table and field in train:
            raise ConfigError(path, f"{task}.train.{field}", train[field], f"conflicts with the {key} axis")
    queries = axis("queries", str, f"one of {', '.join(rlhf.QUERIES)}", lambda v: v in rlhf.QUERIES,
                   default=[train.get("query", defaults.query)])
    ensembles = axis("ensembles", int, "an integer >= 1", lambda v: v >= 1,
                     default=[train.get("ensemble", defaults.ensemble)])
    learners = axis("learner_models", str, f"one of {', '.join(rlhf.PREFERENCE_MODELS)}",
                    lambda v: v in rlhf.PREFERENCE_MODELS,
                    default=[train.get("learner_model", defaults.learner_model)])
    methods = [(q, e, m) for q in queries for e in ensembles for m in learners
               if e > 1 or q not in rlhf.ENSEMBLE_QUERIES]
    if not methods:
        raise ConfigError(path, f"{task}.ensembles", ensembles, f"must include one >= 2 for {', '.join(queries)}")
    try:       # validate the training setup with the library's own checks
        base = defaults.replace(**train)
        trains = {(b, t, *method): base.replace(budget=b, teacher=t, query=method[0], ensemble=method[1],
                                                learner_model=method[2])
                  for b in budgets for t in teachers for method in methods}
    except ValueError as exc:
        raise ConfigError(path, f"{task}.train", None, str(exc)) from None
    return [CellConfig(task=task, train=trains[b, t, *method], seed=s, **instance)
            for instance, b, t, method, s in itertools.product(instances, budgets, teachers, methods, seeds)]


def _task_instances(path: Path, task: str, table: dict, axis: Callable) -> list[dict[str, Any]]:
    """The task fields of every task instance a table crosses (everything :meth:`CellConfig.make_task` reads)."""
    if task == "random-gridworld":
        worlds = _seeds(path, f"{task}.worlds", table["worlds"])
        return [{"size": w.height * w.width, "slip": 0.0, "world": w.seed}
                for w in map(rlhf.RandomGridWorld, worlds)]
    if task in ("gymnasium", "seals"):
        envs = axis("envs", str, "an environment id", lambda v: True)
        given = _scalar(path, task, table, "horizon", int, 0, "an integer >= 1", lambda v: v >= 1) \
            if "horizon" in table else 0
        out = []
        for env in envs:
            try:
                imported = _import_env(task, env, given)
            except (ValueError, ImportError) as exc:
                raise ConfigError(path, f"{task}.envs", env, str(exc)) from None
            out.append({"size": imported.mdp.num_states, "slip": 0.0, "env": env, "horizon": imported.horizon})
        return out
    sizes = axis("sizes", int, "an integer >= 2", lambda v: v >= 2)
    slips = axis("slips", float, "a number in [0, 1)", lambda v: 0 <= v < 1)
    if task == "strings":
        vocab = _scalar(path, task, table, "vocab_size", int, 3, "an integer in [2, 26]", lambda v: 2 <= v <= 26)
        return [{"size": n, "slip": float(p), "vocab_size": vocab} for n, p in itertools.product(sizes, slips)]
    starts = axis("starts", str, f"one of {', '.join(STARTS)}", lambda v: v in STARTS, default=[DEFAULT_START])
    horizon = _scalar(path, task, table, "horizon", int, 30, "an integer >= 1", lambda v: v >= 1)
    return [{"size": n, "slip": float(p), "start": st, "horizon": horizon}
            for n, p, st in itertools.product(sizes, slips, starts)]


def _import_env(task: str, env: str, horizon: int) -> rlhf.TabularTask:
    """The environment as a task (``horizon`` 0: the environment's own)."""
    load = rlhf.from_gymnasium if task == "gymnasium" else rlhf.from_seals
    return load(env, horizon=horizon or None)


def _train_fields(path: Path, task: str, train: object) -> dict:
    """The ``[task.train]`` table, type-checked key by key (values are checked by TrainConfig)."""
    if not isinstance(train, dict):
        raise ConfigError(path, f"{task}.train", train, "must be a table")
    out: dict[str, object] = {}
    for key, value in train.items():
        if key not in _TRAIN_KEYS:
            raise ConfigError(path, f"{task}.train.{key}", value, "unknown key")
        if not _is(value, _TRAIN_KEYS[key]):
            raise ConfigError(path, f"{task}.train.{key}", value, f"must be {_KIND_NAMES[_TRAIN_KEYS[key]]}")
        out[key] = float(value) if _TRAIN_KEYS[key] is float else value
    return out


def _seeds(path: Path, field: str, seeds: object) -> list[int]:
    """A count ``n`` (0 … n − 1) or a list of distinct integers >= 0: seeds, or random worlds."""
    if _is(seeds, int) and seeds >= 1:
        return list(range(seeds))
    if isinstance(seeds, list) and seeds and all(_is(s, int) and s >= 0 for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise ConfigError(path, field, seeds, "has duplicates")
        return seeds
    raise ConfigError(path, field, seeds, "must be a count >= 1 or a non-empty list of integers >= 0")


def _scalar(path, task, table, key, kind, default, rule, check):
    value = table.get(key, default)
    if not _is(value, kind) or not check(value):
        raise ConfigError(path, f"{task}.{key}", value, f"must be {rule}")
    return value


def _is(value: object, kind: type[T]) -> TypeGuard[T]:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _valid_teacher(spec: str) -> bool:
    """A spec the library takes: a simulated teacher, or ``recorded:DIR`` with a labels store there."""
    try:
        rlhf.TrainConfig(budget=1, teacher=spec)
    except ValueError:
        return False
    return True
