"""A sweep's ``imports``: the user's modules (tasks registered there) every process of a run imports.

A config's top-level ``imports = ["my_tasks"]`` names modules to import before its tables are
read, so that a task registered there (:func:`rlhf.register_task`) is known. The tables are
not the only place that needs it: every worker process rebuilds its cells' tasks
(:func:`bench.sweep.cell.run_group` imports the group's modules first), and ``bench report``
and ``bench check`` read a run whose rows name the task, so the run's store records the list
(:func:`recorded_imports`). Modules are found on ``sys.path``: the working directory of
``python -m bench`` and ``PYTHONPATH`` (spawned workers inherit the coordinator's path; a remote
Dask worker needs the module installed).
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

META_KEY = "imports"
"""The run store's meta key holding the JSON list of modules."""


class ModuleImportError(ImportError):
    """A module of ``imports`` that cannot be imported: names it and says why, in one line."""

    def __init__(self, module: str, problem: str) -> None:
        super().__init__(f"{module}: {problem}")
        self.module, self.problem = module, problem


def import_modules(names: Iterable[str]) -> None:
    """Import each module in order (one already imported is not imported again: its tasks stay
    registered once); raises :class:`ModuleImportError` for the first that fails."""
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):   # it, or its package
                raise ModuleImportError(name, "no such module (searched the working directory and "
                                              "PYTHONPATH)") from None
            raise ModuleImportError(name, f"importing it failed: {type(exc).__name__}: {exc}") from None
        except Exception as exc:      # the user's module raised: one line, not a traceback
            raise ModuleImportError(name, f"importing it failed: {type(exc).__name__}: {exc}") from None


def recorded_imports(run_dir: Path, db_name: str) -> list[str]:
    """The modules a run's store records (``[]`` for a run without a store or without imports);
    read only, so a directory holding just ``cells.csv`` stays as it is."""
    from .store import connect_read_only
    path = Path(run_dir) / db_name
    if not path.is_file():
        return []
    try:
        with closing(connect_read_only(path)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    except sqlite3.Error:     # not a store of this program, or one before meta: the readers say so themselves
        return []
    return list(json.loads(row[0])) if row else []
