"""The results store: one SQLite row per finished cell, committed as it finishes.

A killed sweep loses at most the cells that were running; SQLite's journal
keeps the file consistent through ``kill -9``. Only the coordinating process
writes. Each row carries the cell's full configuration and its
:class:`~bench.provenance.Provenance` (code fingerprint, versions, CPU kernels).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..errors import BenchError
from ..provenance import Provenance
from .cell import CellResult
from .config import CellConfig

DB_NAME = "results.sqlite"
SCHEMA_VERSION = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key        TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    metrics    TEXT NOT NULL,
    history    TEXT NOT NULL,
    error      TEXT NOT NULL,
    wall_s     REAL NOT NULL,
    provenance TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """A run directory's ``results.sqlite``; a context manager that closes it."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(cells)")}
        self.legacy = bool(columns) and "provenance" not in columns
        """Written by rlhf-bench before provenance was recorded: its cells cannot be trusted or reused."""
        if not self.legacy:
            self._create()

    def _create(self) -> None:
        self._db.executescript(_SCHEMA)
        self.set_meta(schema=SCHEMA_VERSION)

    @classmethod
    def open_existing(cls, directory: str | Path) -> Store:
        """A store that must exist and carry provenance (for report and check)."""
        if not (Path(directory) / DB_NAME).is_file():
            raise BenchError(f"{directory}: no {DB_NAME} here (run 'python -m bench run --out {directory}' first)")
        store = cls(directory)
        if store.legacy:
            store.close()
            raise BenchError(f"{directory}: its results come from an older rlhf-bench that recorded no provenance; "
                             "rerun the sweep into a fresh --out")
        return store

    def reset(self) -> None:
        """Drop every stored cell and the metadata (a legacy store's results are stale)."""
        with self._db:
            self._db.executescript("DROP TABLE IF EXISTS cells; DROP TABLE IF EXISTS meta;")
        self.legacy = False
        self._create()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stored(self) -> dict[str, tuple[str, Provenance]]:
        """``{key: (status, provenance)}`` of every stored cell."""
        return {key: (status, Provenance.from_json(json.loads(prov)))
                for key, status, prov in self._db.execute("SELECT key, status, provenance FROM cells")}

    def put(self, cell: CellConfig, result: CellResult, provenance: Provenance) -> None:
        with self._db:     # one transaction per cell
            self._db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (result.key, json.dumps(cell.fields(), sort_keys=True), result.status,
                 json.dumps(result.metrics, sort_keys=True), json.dumps(result.history),
                 result.error, result.wall_s, json.dumps(provenance.to_json(), sort_keys=True)))

    def delete(self, keys: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM cells WHERE key = ?", [(k,) for k in keys])

    def set_meta(self, **values: str) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    def rows(self) -> list[dict]:
        """Every stored cell: config fields, status, error, metrics, history, wall_s, provenance."""
        out = []
        for key, config, status, metrics, history, error, wall_s, prov in self._db.execute(
                "SELECT key, config, status, metrics, history, error, wall_s, provenance FROM cells"):
            out.append({"key": key, "config": json.loads(config), "status": status,
                        "metrics": json.loads(metrics), "history": json.loads(history),
                        "error": error, "wall_s": wall_s, "provenance": Provenance.from_json(json.loads(prov))})
        return out
