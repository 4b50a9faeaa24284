"""The results store: one SQLite row per finished cell, committed as it finishes.

A killed sweep loses at most the cells that were running; SQLite's journal
keeps the file consistent through ``kill -9``. Only the coordinating process
writes.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import rlhf

from .cell import CellResult
from .config import CellConfig
from .errors import BenchError

DB_NAME = "results.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key      TEXT PRIMARY KEY,
    config   TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    metrics  TEXT NOT NULL,
    history  TEXT NOT NULL,
    error    TEXT NOT NULL,
    wall_s   REAL NOT NULL,
    version  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def open_existing(cls, directory: str | Path) -> "Store":
        if not (Path(directory) / DB_NAME).is_file():
            raise BenchError(f"{directory}: no {DB_NAME} here (run 'python -m bench run --out {directory}' first)")
        return cls(directory)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def finished_keys(self, include_failed: bool = True) -> set[str]:
        query = "SELECT key FROM cells" + ("" if include_failed else " WHERE status = 'done'")
        return {row[0] for row in self._db.execute(query)}

    def put(self, cell: CellConfig, result: CellResult) -> None:
        with self._db:     # one transaction per cell
            self._db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (result.key, json.dumps(dataclasses.asdict(cell), sort_keys=True), result.status,
                 json.dumps(result.metrics, sort_keys=True), json.dumps(result.history),
                 result.error, result.wall_s, rlhf.__version__))

    def set_meta(self, **values: str) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    def rows(self) -> list[dict]:
        """Every stored cell: config fields, status, error, metrics, history, wall_s."""
        out = []
        for key, config, status, metrics, history, error, wall_s, version in self._db.execute(
                "SELECT key, config, status, metrics, history, error, wall_s, version FROM cells"):
            out.append({"key": key, "config": json.loads(config), "status": status,
                        "metrics": json.loads(metrics), "history": json.loads(history),
                        "error": error, "wall_s": wall_s, "version": version})
        return out
