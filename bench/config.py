"""Sweep configs: TOML files expanded into cells, each a frozen, validated config with a stable hash.

A config has one table per task; each table's axes are crossed::

    [gridworld]
    sizes = [5, 10]          # grid side N        (strings: target length L)
    slips = [0.0, 0.1]
    budgets = [500, 2000]    # preference pairs asked
    teachers = ["boltzmann:1"]
    starts = ["corner", "uniform"]   # gridworld only
    seeds = 10               # a count (0..9) or a list
    [gridworld.train]        # fixed hyperparameters (TrainConfig / LearnerConfig fields)
    pairs_per_round = 100

An optional ``[check]`` table holds the convergence gate's tolerances.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import rlhf

from .errors import ConfigError

TASKS = ("gridworld", "strings")
STARTS = ("corner", "uniform")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_AXES = {"sizes", "slips", "budgets", "teachers", "seeds"}
_TASK_KEYS = {
    "gridworld": _AXES | {"starts", "horizon", "train"},
    "strings": _AXES | {"vocab_size", "train"},
}
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}
_TRAIN_KEYS = {"pairs_per_round": int, "segment_length": int, "sampler": str, "discount": float,
               "temperature": float, "heldout_pairs": int, "optimizer": str, "lr": float,
               "epochs": int, "batch_size": int}


@dataclass(frozen=True)
class CellConfig:
    """One run of the sweep: a task instance, a training setup and a seed."""

    task: str
    size: int
    """Grid side N (gridworld) or target length L (strings)."""
    slip: float
    budget: int
    teacher: str
    seed: int
    start: str = ""
    """Gridworld start mode: ``corner`` (0, 0) or ``uniform`` (every non-goal cell)."""
    vocab_size: int = 0
    horizon: int = 0
    sampler: str = "on-policy"
    pairs_per_round: int = 0
    segment_length: int = 0
    optimizer: str = "adam"
    lr: float = 1e-2
    epochs: int = 50
    batch_size: int = 0
    discount: float = 1.0
    temperature: float = 1.0
    heldout_pairs: int = 1000

    @property
    def key(self) -> str:
        """Stable content hash: canonical JSON of every field, key order irrelevant."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def group(self) -> tuple:
        """Everything but the seed: the configuration that seeds are replicates of."""
        return tuple(v for k, v in dataclasses.asdict(self).items() if k != "seed")

    def make_task(self) -> rlhf.Task:
        if self.task == "gridworld":
            n = self.size
            return rlhf.GridWorld(size=n, slip=self.slip, start=[(0, 0)] if self.start == "corner" else None,
                                  goal=[(n - 1, n - 1)], horizon=self.horizon)
        vocab = LETTERS[: self.vocab_size]
        target = "".join(vocab[i % len(vocab)] for i in range(self.size))
        return rlhf.StringTask(vocab=vocab, target=target, slip=self.slip)

    def train_config(self) -> rlhf.TrainConfig:
        learner = rlhf.LearnerConfig(self.optimizer, self.lr, self.epochs, self.batch_size)
        return rlhf.TrainConfig(
            budget=self.budget, teacher=self.teacher, pairs_per_round=self.pairs_per_round,
            segment_length=self.segment_length, sampler=self.sampler, learner=learner,
            discount=self.discount, temperature=self.temperature, heldout_pairs=self.heldout_pairs)


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
        raise ConfigError(path, None, None, f"names no task (expected a [{TASKS[0]}] or [{TASKS[1]}] table)")
    cells: list[CellConfig] = []
    for task in tasks:
        cells.extend(_expand(path, task, raw[task]))
    check = raw.get("check", {})
    if not isinstance(check, dict):
        raise ConfigError(path, "check", check, "must be a table")
    return SweepConfig(path, str(raw.get("name", path.stem)), tuple(cells), check)


def _expand(path: Path, task: str, table: object) -> list[CellConfig]:
    if not isinstance(table, dict):
        raise ConfigError(path, task, table, "must be a table")
    for key in table:
        if key not in _TASK_KEYS[task]:
            raise ConfigError(path, f"{task}.{key}", table[key], "unknown key")
    for key in ("sizes", "slips", "budgets", "teachers", "seeds"):
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

    sizes = axis("sizes", int, "an integer >= 2", lambda v: v >= 2)
    slips = axis("slips", float, "a number in [0, 1)", lambda v: 0 <= v < 1)
    budgets = axis("budgets", int, "an integer >= 1", lambda v: v >= 1)
    teachers = axis("teachers", str, "a teacher spec such as 'boltzmann:1' or 'oracle+mistake:0.1'",
                    _valid_teacher)
    starts = (axis("starts", str, f"one of {', '.join(STARTS)}", lambda v: v in STARTS, default=["corner"])
              if task == "gridworld" else [""])
    seeds = _seeds(path, task, table["seeds"])
    fixed = {"horizon": _scalar(path, task, table, "horizon", int, 30, "an integer >= 1", lambda v: v >= 1)
             if task == "gridworld" else 0,
             "vocab_size": _scalar(path, task, table, "vocab_size", int, 3, "an integer in [2, 26]",
                                   lambda v: 2 <= v <= 26) if task == "strings" else 0}
    fixed |= _train_fields(path, task, table.get("train", {}))
    cells = [CellConfig(task=task, size=n, slip=float(p), budget=b, teacher=str(rlhf.Teacher.parse(t)),
                        seed=s, start=st, **fixed)
             for n, p, b, t, st, s in itertools.product(sizes, slips, budgets, teachers, starts, seeds)]
    try:       # validate the training setup once per config, with the library's own checks
        cells[0].train_config()
    except ValueError as exc:
        raise ConfigError(path, f"{task}.train", None, str(exc)) from None
    return cells


def _train_fields(path: Path, task: str, train: object) -> dict:
    if not isinstance(train, dict):
        raise ConfigError(path, f"{task}.train", train, "must be a table")
    defaults = rlhf.GridWorld.defaults if task == "gridworld" else rlhf.StringTask.defaults
    out = {k: getattr(defaults, k) for k in ("pairs_per_round", "segment_length", "sampler", "discount",
                                            "temperature", "heldout_pairs")}
    out |= {k: getattr(defaults.learner, k) for k in ("optimizer", "lr", "epochs", "batch_size")}
    for key, value in train.items():
        if key not in _TRAIN_KEYS:
            raise ConfigError(path, f"{task}.train.{key}", value, "unknown key")
        if not _is(value, _TRAIN_KEYS[key]):
            raise ConfigError(path, f"{task}.train.{key}", value, f"must be {_KIND_NAMES[_TRAIN_KEYS[key]]}")
        out[key] = float(value) if _TRAIN_KEYS[key] is float else value
    return out


def _seeds(path: Path, task: str, seeds: object) -> list[int]:
    if _is(seeds, int) and seeds >= 1:
        return list(range(seeds))
    if isinstance(seeds, list) and seeds and all(_is(s, int) and s >= 0 for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise ConfigError(path, f"{task}.seeds", seeds, "has duplicates")
        return seeds
    raise ConfigError(path, f"{task}.seeds", seeds, "must be a count >= 1 or a non-empty list of integers >= 0")


def _scalar(path, task, table, key, kind, default, rule, check):
    value = table.get(key, default)
    if not _is(value, kind) or not check(value):
        raise ConfigError(path, f"{task}.{key}", value, f"must be {rule}")
    return value


def _is(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _valid_teacher(spec: str) -> bool:
    try:
        rlhf.Teacher.parse(spec)
    except ValueError:
        return False
    return True
