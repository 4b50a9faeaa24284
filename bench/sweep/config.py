"""Sweep configs: TOML files expanded into cells, each a frozen, validated config with a stable hash.

A config has one table per task (any task of the registry, :func:`rlhf.register_task`); each
table's axes are crossed::

    imports = ["my_tasks"]   # optional: modules imported first (tasks registered there can be swept)

    [gridworld]
    sizes = [5, 10]          # the task's own axes (rlhf.task_spec(name).axes; here grid side N)
    slips = [0.0, 0.1]
    starts = ["corner", "uniform"]
    budgets = [500, 2000]    # preference pairs asked
    teachers = ["boltzmann:1"]
    seeds = 10               # a count (0..9) or a list
    queries = ["on-policy", "disagreement"]   # optional: query rules (default: the train table's)
    ensembles = [1, 5]       # optional: reward ensemble sizes (default: the train table's)
    learner_models = ["partial", "regret"]    # optional: learner models (rlhf.LEARNER_MODELS)
    fits = ["round", "all"]  # optional: fit each round's pairs, or every pair so far
    ranks = [2, 4]           # optional: segments a query ranks (2: pairs; rlhf.TrainConfig.rank)
    rank_learners = ["plackett-luce", "pair-split"]   # optional: how a ranking is fitted (rank 2: Bradley–Terry)
    ties = ["none", "davidson"]                # optional: the learner's tie models (TrainConfig.ties)
    tie_fits = ["fixed", "learned"]            # optional: its tie parameter fixed or fitted
    rank_costs = ["comparisons"]               # optional: what a ranking costs against the budget
    [gridworld.train]        # fixed hyperparameters (TrainConfig / LearnerConfig fields)
    pairs_per_round = 100

Alignment (:func:`rlhf.align`): a table with ``methods`` makes each cell a policy fitted to a
fixed set of preference pairs instead of a training run::

    [strings]
    sizes = [5]
    slips = [0.0]
    budgets = [10, 100]      # pairs in the dataset, rolled out from the reference policy
    teachers = ["oracle", "boltzmann:1"]
    methods = ["rlhf", "dpo", "ipo"]          # names in rlhf.ALIGNMENT_METHODS
    betas = [0.1, 1.0]       # optional: KL strengths β (default [0.1], TRL's)
    references = ["uniform", "sft:20"]        # optional: reference policies (default uniform)
    seeds = 10

(:mod:`bench.sweep.aligning` runs them). Over-optimisation (Gao et al., 2023): a table with ``proxies``
makes each cell one seed's proxy optimised along fixed paths away from the reference, every point
scored exactly::

    [strings]
    sizes = [6]
    slips = [0.0]
    vocab_size = 6
    budgets = [30, 300]      # pairs the proxy is learned from, rolled out from the reference
    teachers = ["boltzmann:1"]
    proxies = ["bt", "min:5", "dpo"]          # bt, mean:E, min:E or an alignment method
    golds = ["random:0"]     # optional, string task only: the true reward (default: the task's own)
    references = ["sft:100"] # optional (default uniform)
    seeds = 10

(:mod:`bench.sweep.overoptimising` runs them and says what each path is). ``queries``,
``ensembles``, ``learner_models``, ``fits``, the ranking axes and ``[task.train]`` do not apply to
such a table, ``betas`` means nothing without ``methods``, ``golds`` nothing without ``proxies``,
``references`` nothing without either. An
alignment cell has three more fields, :data:`ALIGNMENT_COLUMNS`, after the others (in its key and
in ``cells.csv``); a cell without a method has neither them nor their columns, so the keys and
tables of training sweeps do not change. An over-optimisation cell has
:data:`OVEROPTIMISATION_COLUMNS` instead, the same way.

The built-in tasks' axes are listed in :mod:`rlhf.tasks.builtins`. A rule that compares
ensemble members is not crossed with an ensemble of one (``disagreement`` and ``info-gain``
with ``ensembles = [1, 5]`` run at 5 only).

A task may also have several tables (``[[gridworld]]`` … ``[[gridworld]]``), each crossed on its
own: the cells are all of them. An optional ``[check]`` table holds the convergence gate's tolerances, one
``metric = { abs = A, rel = R }`` entry per metric (see :mod:`bench.check`).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import rlhf
from rlhf.learning.learner import FITS
from rlhf.policies.reference import reference_policy
from rlhf.preferences.kinds import resolve_teacher_spec
from rlhf.tasks.registry import CONFIG_KEYS, INSTANCE_FIELDS, SHARED_KEYS, Axis, TaskSpec
from rlhf.tasks.registry import instance_label as instance_label  # re-exported: reports and the gate label rows

from ..errors import ConfigError
from .modules import ModuleImportError, import_modules

T = TypeVar("T")

_KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}
TASK_FIELDS = ("task", *INSTANCE_FIELDS)
"""The fields that make the task instance (its name and :data:`rlhf.tasks.registry.INSTANCE_FIELDS`);
the rest of a configuration is :class:`rlhf.TrainConfig`'s."""
PUBLIC_COLUMNS = ("task", "size", "slip", "budget", "teacher", "seed")
"""The first columns of ``cells.csv``, in this order."""
SHOWN_COLUMNS = ("task", "size", "slip", "start", "teacher", "budget")
"""Configuration fields every report table and gate label shows; any other field appears when it varies."""
ALIGNMENT_COLUMNS = ("method", "beta", "reference")
"""An alignment cell's own fields (a name in :data:`rlhf.ALIGNMENT_METHODS`, the KL strength β, the
reference policy's spec), after :func:`config_columns` in its fields and in ``cells.csv``; absent
from every other cell."""
RANKING_COLUMNS = ("rank", "rank_learner", "rank_cost", "ties", "tie_param", "tie_fit")
"""Training fields of rankings and ties (#26): a cell's fields (key, ``cells.csv`` columns) hold them,
after :func:`config_columns`, only when one of them differs from its default, so the cells of pair
sweeps keep their keys and tables."""
RANKING_DEFAULTS = {name: getattr(rlhf.TrainConfig(budget=1), name) for name in RANKING_COLUMNS}
OVEROPTIMISATION_COLUMNS = ("proxy", "gold", "reference")
"""An over-optimisation cell's own fields (the proxy's spec, the string task's gold reward, the
reference policy's spec), as :data:`ALIGNMENT_COLUMNS` are an alignment cell's."""
OWN_COLUMNS = tuple(dict.fromkeys((*ALIGNMENT_COLUMNS, *OVEROPTIMISATION_COLUMNS)))
"""The fields only alignment or over-optimisation cells have, each once."""
ALIGNMENT_TEXT = ("method", "reference", "proxy", "gold")
"""The alignment and over-optimisation columns holding strings."""
KINDS = {"methods": "alignment cells", "proxies": "over-optimisation paths"}
"""The table keys that make a table's cells something other than training runs, and what they make."""
NEEDS = {"betas": ("methods",), "golds": ("proxies",), "references": ("methods", "proxies")}
"""Table keys that mean something only beside one of these."""
RANKING_AXES = {"ranks": ("rank", int), "rank_learners": ("rank_learner", str), "ties": ("ties", str),
                "tie_fits": ("tie_fit", str), "rank_costs": ("rank_cost", str)}
"""Sweep axes of the ranking fields (#26): table key -> (:class:`rlhf.TrainConfig` field, kind)."""
NOT_ALIGNMENT = ("queries", "ensembles", "learner_models", "fits", "train", *RANKING_AXES)
"""Table keys of the training loop that an alignment table refuses (its methods' own options are
:class:`rlhf.policies.align.AlignOptions`' defaults)."""
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
    """The instance's size, as its task defines it: grid side N (gridworld), target length L
    (strings), or states (a random world's or an environment's: set by the world or environment)."""
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
    """The Gymnasium or seals environment id (``rlhf.from_gymnasium(env, horizon)``); "" for other tasks.
    (The task fields are :data:`rlhf.tasks.registry.INSTANCE_FIELDS`, with its defaults; a task's
    registration says which it uses.)"""
    method: str = ""
    """The alignment method (a name in :data:`rlhf.ALIGNMENT_METHODS`); "" for a training cell. The
    alignment fields (:data:`ALIGNMENT_COLUMNS`) are part of the fields only when it is set; only
    ``budget`` (pairs) and ``teacher`` of ``train`` apply then (the rest keep the task's defaults)."""
    beta: float = 0.0
    """The KL strength β of an alignment cell (TRL's ``beta``)."""
    reference: str = ""
    """The reference policy of an alignment or over-optimisation cell (``uniform``, ``sft``,
    ``sft:N[:BEHAVIOUR]``): the policy kept close to, measured against, and the one the pairs are
    rolled out from."""
    proxy: str = ""
    """The proxy of an over-optimisation cell (``bt``, ``mean:E``, ``min:E`` or an alignment method:
    :func:`bench.sweep.overoptimising.parse_proxy`); "" for every other cell."""
    gold: str = ""
    """An over-optimisation cell's gold reward (a string task's ``reward=``); "" keeps the task's own."""

    def fields(self) -> dict[str, object]:
        """Every field by its flat name, public columns first (an alignment cell's own fields last)."""
        flat = self.train.flat()
        task = {name: getattr(self, name) for name in TASK_FIELDS}
        both = task | flat | {"seed": self.seed}
        out = {name: both[name] for name in config_columns()}
        if any(flat[name] != default for name, default in RANKING_DEFAULTS.items()):
            out |= {name: flat[name] for name in RANKING_COLUMNS}
        if self.method:
            out |= {name: getattr(self, name) for name in ALIGNMENT_COLUMNS}
        elif self.proxy:
            out |= {name: getattr(self, name) for name in OVEROPTIMISATION_COLUMNS}
        return out

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> CellConfig:
        """The inverse of :meth:`fields` (extra keys, e.g. metrics, are ignored; a ``method`` that is
        missing, empty or NaN is a training cell's, as is a ``proxy``)."""
        train = {k: values[k] for k in rlhf.TrainConfig.flat_fields() if k not in RANKING_COLUMNS}
        train |= {k: values[k] for k in RANKING_COLUMNS if k in values and _given(values[k])}
        config = rlhf.TrainConfig(budget=train.pop("budget"), teacher=train.pop("teacher")).replace(**train)
        method = values.get("method")
        align: dict[str, Any] = {}
        if isinstance(method, str) and method:
            align = {"method": method, "beta": float(values["beta"]), "reference": str(values["reference"])}
        elif isinstance(values.get("proxy"), str) and values["proxy"]:
            align = {name: str(values[name]) for name in OVEROPTIMISATION_COLUMNS}
        return cls(train=config, seed=values["seed"], **{k: values[k] for k in TASK_FIELDS}, **align)

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
        """The task instance, made by its registered factory (:func:`rlhf.task_spec`)."""
        return rlhf.task_spec(self.task).make({name: getattr(self, name) for name in INSTANCE_FIELDS})


def preset_cell(name: str, seed: int = 0, **train: object) -> CellConfig:
    """The cell of an ``rlhf`` preset (``train_preset(name, seed, **train)`` as a sweep cell)."""
    task = rlhf.preset_task(name)
    spec = rlhf.task_spec(task.name)
    return CellConfig(task=spec.name, seed=seed, train=task.defaults.replace(**train), **spec.instance_of(task))


def config_columns() -> list[str]:
    """Every configuration column in ``cells.csv`` order: the public ones, the other task
    fields, then the training fields (but :data:`RANKING_COLUMNS`, a cell's only when set)."""
    rest = [c for c in (*TASK_FIELDS, *rlhf.TrainConfig.flat_fields()) if c not in (*PUBLIC_COLUMNS, *RANKING_COLUMNS)]
    return [*PUBLIC_COLUMNS, *rest]


def _given(value: object) -> bool:
    """Whether a stored field holds a value (a table mixing cells with and without it has NaN)."""
    return not (isinstance(value, float) and math.isnan(value))


def group_columns() -> list[str]:
    """The configuration without the seed: the key stats, reports and the gate group by."""
    return [c for c in config_columns() if c != "seed"]


def grouping_columns(frame: Any) -> list[str]:
    """:func:`group_columns` and the ranking, alignment and over-optimisation columns ``frame`` (a table
    of cells) has."""
    return [*group_columns(), *(c for c in (*RANKING_COLUMNS, *OWN_COLUMNS) if c in frame)]


def text_columns() -> list[str]:
    """Configuration columns holding strings (read back as strings, never as numbers or NaN)."""
    types = typing.get_type_hints(CellConfig) | rlhf.TrainConfig.flat_fields()
    return [c for c in (*config_columns(), *RANKING_COLUMNS) if types.get(c) is str]


@dataclass(frozen=True)
class SweepConfig:
    path: Path
    name: str
    cells: tuple[CellConfig, ...]
    check: dict
    imports: tuple[str, ...] = ()
    """Modules imported before the tables were read (the config's ``imports``): every process that
    rebuilds a cell's task, and every reader of the run, imports them too."""


def load(path: str | Path) -> SweepConfig:
    """Read, validate and expand a sweep config, after importing the modules its ``imports``
    names (tasks registered there are known); raises :class:`ConfigError`."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(path, None, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, None, f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, None, f"malformed TOML: {exc}") from None
    imports = _imports(path, raw.get("imports", []))
    known = rlhf.registered_tasks()
    unknown = sorted(set(raw) - set(known) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(path, unknown[0], raw[unknown[0]], _unknown(
            unknown[0], (*known, *CONFIG_KEYS), f"task or key (tasks: {', '.join(known)})", listing=False))
    tasks = [t for t in raw if t in known]
    if not tasks:
        raise ConfigError(path, None, None, f"names no task (expected a table named after one of {', '.join(known)})")
    cells: list[CellConfig] = []
    for task in tasks:           # [task] is one table of axes, [[task]] several (their cells are joined)
        for table in raw[task] if isinstance(raw[task], list) else [raw[task]]:
            cells.extend(_expand(path, rlhf.task_spec(task), table))
    return SweepConfig(path, str(raw.get("name", path.stem)), tuple(cells), _check_table(path, raw.get("check", {})),
                       imports)


def _imports(path: Path, names: object) -> tuple[str, ...]:
    """The ``imports`` list, each module imported (one-line ConfigError naming the one that fails)."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(path, "imports", names, "must be a list of module names, e.g. [\"my_tasks\"]")
    try:
        import_modules(names)
    except ModuleImportError as exc:
        raise ConfigError(path, "imports", exc.module, exc.problem) from None
    return tuple(names)


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


def _expand(path: Path, spec: TaskSpec, table: object) -> list[CellConfig]:
    task = spec.name
    if not isinstance(table, dict):
        raise ConfigError(path, task, table, "must be a table")
    for key in table:
        if key not in SHARED_KEYS and key not in spec.keys:
            raise ConfigError(path, f"{task}.{key}", table[key], _unknown(key, (*spec.keys, *SHARED_KEYS)))
    for key in (*(a.key for a in spec.axes if a.required), "budgets", "teachers", "seeds"):
        if key not in table:
            raise ConfigError(path, f"{task}.{key}", None, "missing")
    if "methods" in table and "proxies" in table:
        raise ConfigError(path, f"{task}.proxies", table["proxies"], "cannot share a table with methods: put "
                          "alignment cells and over-optimisation paths in tables of their own ([[task]])")
    for key, needs in NEEDS.items():
        if key in table and not any(n in table for n in needs):
            raise ConfigError(path, f"{task}.{key}", table[key], f"applies only with {' or '.join(needs)} "
                              f"({' or '.join(KINDS[n] for n in needs)})")
    fixed = [n for n in KINDS if n in table]
    for key in NOT_ALIGNMENT if fixed else ():
        if key in table:
            raise ConfigError(path, f"{task}.{key}", table[key], f"does not apply to {KINDS[fixed[0]]} "
                              f"({fixed[0]}): they fit to a fixed set of pairs, with no training loop")

    def axis(key, kind, rule, check, default=None):
        values = table.get(key, default)
        if not isinstance(values, list) or not values:
            raise ConfigError(path, f"{task}.{key}", values, "must be a non-empty list")
        for v in values:
            if not _is(v, kind) or not check(v):
                raise ConfigError(path, f"{task}.{key}", v, f"must be {rule}")
        return values

    instances = _task_instances(path, spec, table, axis)
    budgets = axis("budgets", int, "an integer >= 1", lambda v: v >= 1)
    teachers = axis("teachers", str, "a teacher spec such as 'boltzmann:1', 'oracle+mistake:0.1' or "
                    "'recorded:DIR' (a labels store)", lambda v: True)
    teachers = [_teacher(path, f"{task}.teachers", t) for t in teachers]
    seeds = _seeds(path, f"{task}.seeds", table["seeds"])
    defaults = spec.defaults
    train = _train_fields(path, task, table.get("train", {}))
    for key, field in (("queries", "query"), ("ensembles", "ensemble"), ("learner_models", "learner_model"),
                       ("fits", "fit"), *((k, f) for k, (f, _) in RANKING_AXES.items())):
        if key in table and field in train:
            raise ConfigError(path, f"{task}.train.{field}", train[field], f"conflicts with the {key} axis")
    queries = axis("queries", str, f"one of {', '.join(rlhf.QUERIES)}", lambda v: v in rlhf.QUERIES,
                   default=[train.get("query", defaults.query)])
    ensembles = axis("ensembles", int, "an integer >= 1", lambda v: v >= 1,
                     default=[train.get("ensemble", defaults.ensemble)])
    learners = axis("learner_models", str, f"one of {', '.join(rlhf.LEARNER_MODELS)}",
                    lambda v: v in rlhf.LEARNER_MODELS,
                    default=[train.get("learner_model", defaults.learner_model)])
    fits = axis("fits", str, f"one of {', '.join(FITS)}", lambda v: v in FITS, default=[train.get("fit", defaults.fit)])
    methods = [(q, e, m, f) for q in queries for e in ensembles for m in learners for f in fits
               if e > 1 or q not in rlhf.ENSEMBLE_QUERIES]
    if not methods:
        raise ConfigError(path, f"{task}.ensembles", ensembles, f"must include one >= 2 for {', '.join(queries)}")
    rankings = _ranking_axes(path, task, table, axis, train, defaults)
    methods = [(*m, *r) for m in methods for r in rankings]
    try:       # validate the training setup with the library's own checks
        base = defaults.replace(**train)
        trains = {(b, t, *method): base.replace(budget=b, teacher=t, query=method[0], ensemble=method[1],
                                                learner_model=method[2], fit=method[3],
                                                **dict(zip((f for f, _ in RANKING_AXES.values()), method[4:],
                                                           strict=True)))
                  for b in budgets for t in teachers for method in methods}
    except ValueError as exc:
        raise ConfigError(path, f"{task}.train", None, str(exc)) from None
    alignments = (_alignments(path, spec, table, axis, instances) if "methods" in table
                  else _paths(path, spec, table, axis, instances, seeds) if "proxies" in table else [{}])
    return [CellConfig(task=task, train=trains[b, t, *method], seed=s, **instance, **align)
            for instance, b, t, method, align, s in
            itertools.product(instances, budgets, teachers, methods, alignments, seeds)]


def _ranking_axes(path: Path, task: str, table: dict, axis: Callable, train: dict,
                  defaults: rlhf.TrainConfig) -> list[tuple]:
    """Every combination of the ranking axes (:data:`RANKING_AXES`, each defaulting to the train table's
    value or the task's), in their order; ``rank_learners`` is not crossed with ``rank = 2`` (both
    learners are Bradley–Terry there: the cell keeps the default learner), nor ``tie_fits`` with
    ``ties = "none"`` (nothing to fit: the default)."""
    values = {}
    for key, (field, kind) in RANKING_AXES.items():
        default = [train.get(field, getattr(defaults, field))]
        if kind is int:
            values[key] = axis(key, int, "an integer >= 2", lambda v: v >= 2, default=default)
        else:
            known = _choices(field)
            values[key] = axis(key, str, f"one of {', '.join(known)}", lambda v, k=known: v in k, default=default)
    out: list[tuple] = []
    for rank, learner, ties, tie_fit, cost in itertools.product(*values.values()):
        combo = (rank, learner if rank > 2 else defaults.rank_learner, ties,
                 tie_fit if ties != "none" else defaults.tie_fit, cost)
        if combo not in out:
            out.append(combo)
    return out


def _choices(field: str) -> tuple[str, ...]:
    """The values :class:`rlhf.TrainConfig` accepts for a ranking field."""
    from rlhf.preferences.ties import TIE_MODELS
    from rlhf.training.config import RANK_COSTS, RANK_LEARNERS, TIE_FITS
    return {"rank_learner": RANK_LEARNERS, "ties": TIE_MODELS, "tie_fit": TIE_FITS, "rank_cost": RANK_COSTS}[field]


def _alignments(path: Path, spec: TaskSpec, table: dict, axis: Callable,
                instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alignment fields of every (method, β, reference) a table crosses."""
    names = rlhf.ALIGNMENT_METHODS.names()
    methods = axis("methods", str, f"one of {', '.join(names)}", lambda v: v in names)
    betas = axis("betas", float, "a number > 0 (the KL strength β)", lambda v: 0 < v < math.inf, default=[0.1])
    references = _references(path, spec, axis, instances)
    return [{"method": m, "beta": float(b), "reference": r} for m in methods for b in betas for r in references]


def _references(path: Path, spec: TaskSpec, axis: Callable, instances: list[dict[str, Any]]) -> list[str]:
    """The table's ``references``, each made once per task instance by the library (its reason, as a
    ConfigError, for one it refuses)."""
    references = axis("references", str, "a reference policy: uniform, sft, sft:N or sft:N:BEHAVIOUR",
                      lambda v: bool(v), default=["uniform"])
    for instance in instances:
        made = spec.make(instance)
        for reference in references:
            try:
                reference_policy(made, reference)
            except ValueError as exc:
                raise ConfigError(path, f"{spec.name}.references", reference, str(exc)) from None
    return references


def _paths(path: Path, spec: TaskSpec, table: dict, axis: Callable, instances: list[dict[str, Any]],
           seeds: list[int]) -> list[dict[str, Any]]:
    """The over-optimisation fields of every (proxy, gold, reference) a table crosses, each checked on
    every task instance by :func:`bench.sweep.overoptimising.check_cell` (its reason, as a ConfigError)."""
    from .overoptimising import check_cell, parse_proxy

    task = spec.name
    proxies = axis("proxies", str, "a proxy: bt, mean:E, min:E or an alignment method", lambda v: True)
    for proxy in proxies:
        try:
            parse_proxy(proxy)
        except ValueError as exc:
            raise ConfigError(path, f"{task}.proxies", proxy, str(exc)) from None
    golds = axis("golds", str, "a string task's reward: match or random:K", lambda v: True, default=[""])
    references = _references(path, spec, axis, instances)
    probe = next((p for p in proxies if parse_proxy(p)[0] == "reward"), proxies[0])   # the most demanding
    for instance, gold in itertools.product(instances, golds):
        try:
            check_cell(CellConfig(task=task, train=spec.defaults, seed=seeds[0], **instance, proxy=probe, gold=gold))
        except ValueError as exc:
            raise ConfigError(path, f"{task}.golds" if gold else task, gold or None, str(exc)) from None
    return [{"proxy": p, "gold": g, "reference": r} for p in proxies for g in golds for r in references]


def _task_instances(path: Path, spec: TaskSpec, table: dict, axis: Callable) -> list[dict[str, Any]]:
    """The instance fields of every task instance a table crosses: the task's axes (in their order;
    list and count axes crossed, scalar ones shared) completed by its registration
    (:meth:`rlhf.TaskSpec.instance`)."""
    values = {a.key: _axis_values(path, spec.name, table, a, axis) for a in spec.axes}
    crossed = [a for a in spec.axes if a.crossed]
    shared = {a.field: values[a.key][0] for a in spec.axes if not a.crossed}
    out = []
    for combination in itertools.product(*(values[a.key] for a in crossed)):
        given = shared | {a.field: v for a, v in zip(crossed, combination, strict=True)}
        try:
            out.append(spec.instance(given))
        except (ValueError, ImportError) as exc:       # e.g. an unknown environment id
            first = spec.axes[0] if spec.axes else None
            raise ConfigError(path, f"{spec.name}.{first.key}" if first else spec.name,
                              given[first.field] if first else None, str(exc)) from None
    return out


def _axis_values(path: Path, task: str, table: dict, spec: Axis, axis: Callable) -> list[Any]:
    """One axis's values (a scalar axis: its one value), validated by the axis's rule; an omitted
    key gets the axis's default as it is."""
    if spec.key not in table:
        default = spec.default
        values = ([default] if spec.form == "scalar" else list(range(default)) if isinstance(default, int)
                  else list(default))
    elif spec.form == "count":
        values = _seeds(path, f"{task}.{spec.key}", table[spec.key])
    elif spec.form == "scalar":
        values = [_scalar(path, task, table, spec.key, spec.kind, None, spec.rule, spec.check)]
    else:
        values = axis(spec.key, spec.kind, spec.rule, spec.check)
    return [float(v) for v in values] if spec.kind is float else values


def _train_fields(path: Path, task: str, train: object) -> dict:
    """The ``[task.train]`` table, type-checked key by key (values are checked by TrainConfig)."""
    if not isinstance(train, dict):
        raise ConfigError(path, f"{task}.train", train, "must be a table")
    out: dict[str, object] = {}
    for key, value in train.items():
        if key not in _TRAIN_KEYS:
            raise ConfigError(path, f"{task}.train.{key}", value, _unknown(key, tuple(_TRAIN_KEYS)))
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


def _teacher(path: Path, field: str, spec: str) -> str:
    """A spec the library takes (a simulated teacher, or ``recorded:DIR`` with a labels store there),
    resolved (recorded:DIR -> its path and digest); else ConfigError with the library's reason."""
    try:
        resolved = resolve_teacher_spec(spec)
        rlhf.TrainConfig(budget=1, teacher=resolved)
    except ValueError as exc:
        raise ConfigError(path, field, spec, str(exc)) from None
    return resolved


def _unknown(key: str, known: tuple[str, ...], what: str = "key", listing: bool = True) -> str:
    """"unknown key", with the nearest known key when one is close (a misspelling), else (``listing``)
    the known keys."""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown {what}; did you mean {close[0]!r}?"
    return f"unknown {what}" + (f" (known: {', '.join(known)})" if listing else "")
