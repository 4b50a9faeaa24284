"""The results store: one SQLite row per finished cell, committed as it finishes.

A killed sweep loses at most the cells that were running; SQLite's journal
keeps the file consistent through ``kill -9``. Only the coordinating process
writes (in WAL mode from its first write, so that progress can be read meanwhile;
a store at rest is in rollback-journal mode). Readers (report, check) open a store
read-only (:func:`connect_read_only`), and a sweep that refuses to resume into a
store writes nothing: its bytes do not change. Each row carries the cell's full configuration and its
:class:`~bench.provenance.Provenance` (code fingerprint, versions, CPU kernels).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing, suppress
from pathlib import Path

from ..errors import BenchError
from ..provenance import Provenance
from .cell import CellResult
from .config import CellConfig

DB_NAME = "results.sqlite"
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
SIDE_FILES = tuple(f"{DB_NAME}{suffix}" for suffix in _SIDE_SUFFIXES)
"""SQLite's own files beside the store (a write-ahead log, its index, a rollback journal)."""
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


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite file ``path`` that cannot change it (SQLite's ``mode=ro``); also
    ``immutable`` when no WAL or journal file lies beside it (nothing un-checkpointed to read), so
    that reading a store left in WAL mode does not create those files either."""
    side = any(path.with_name(path.name + suffix).exists() for suffix in _SIDE_SUFFIXES)
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{'' if side else '&immutable=1'}", uri=True)


def _not_a_store(path: Path, why: str) -> BenchError:
    return BenchError(f"{path}: {why}, so not a results store of rlhf-bench: move it away, or choose another "
                      "directory for the run")


def check_database(path: Path) -> None:
    """Refuse (BenchError, one line naming the file and the fix) a ``results.sqlite`` that is not a
    store of rlhf-bench: not an SQLite database, or one with other tables. Changes nothing."""
    if not path.exists():
        return
    if not path.is_file():
        raise _not_a_store(path, "not a file")
    try:
        with closing(connect_read_only(path)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(path, f"not an SQLite database ({exc})") from None
    other = sorted(tables - {"cells", "meta"})
    if other:
        raise _not_a_store(path, f"an SQLite database with tables of another program ({', '.join(other)})")


class Store:
    """A run directory's ``results.sqlite``; a context manager that closes it. ``read_only``: for
    readers (the file must exist; nothing is created or written)."""

    def __init__(self, directory: str | Path, read_only: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self._wal = False
        check_database(self.path)        # before anything is created
        try:
            if read_only:
                self._db = connect_read_only(self.path)
            else:
                try:
                    self.directory.mkdir(parents=True, exist_ok=True)
                except OSError as exc:      # e.g. a file on the way
                    raise BenchError(f"{self.directory}: cannot create this directory ({exc.strerror})") from None
                self._db = sqlite3.connect(self.path)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(cells)")}
        except sqlite3.Error as exc:
            raise BenchError(f"{self.path}: cannot open the results store ({exc})") from None
        self.legacy = bool(columns) and "provenance" not in columns
        """Written by rlhf-bench before provenance was recorded: its cells cannot be trusted or reused."""
        self.empty = not columns
        """No table yet (a new store, or an empty file): a reader finds nothing in it."""
        if self.empty and not read_only:
            self._create()
            self.empty = False

    def _writing(self) -> None:
        """Before the first write: WAL mode, in which readers (e.g. a progress poll) do not wait."""
        if not self._wal:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._wal = True

    def _create(self) -> None:
        self._writing()
        self._db.executescript(_SCHEMA)
        self.set_meta(schema=SCHEMA_VERSION)

    @classmethod
    def open_existing(cls, directory: str | Path) -> Store:
        """A store that must exist and carry provenance (for report and check)."""
        if not (Path(directory) / DB_NAME).is_file():
            raise BenchError(f"{directory}: no {DB_NAME} here (run 'python -m bench run --out {directory}' first)")
        store = cls(directory, read_only=True)
        if store.empty:
            store.close()
            raise BenchError(f"{directory}: its {DB_NAME} holds no results (run 'python -m bench run --out "
                             f"{directory}' first)")
        if store.legacy:
            store.close()
            raise BenchError(f"{directory}: its results come from an older rlhf-bench that recorded no provenance; "
                             "rerun the sweep into a fresh --out")
        return store

    def reset(self) -> None:
        """Drop every stored cell and the metadata (a legacy store's results are stale)."""
        self._writing()
        with self._db:
            self._db.executescript("DROP TABLE IF EXISTS cells; DROP TABLE IF EXISTS meta;")
        self.legacy = False
        self._create()

    def close(self) -> None:
        if self._wal:      # at rest in rollback-journal mode: a read-only reader then creates no files
            with suppress(sqlite3.OperationalError):      # another connection is reading: it stays in WAL mode
                self._db.execute("PRAGMA journal_mode=DELETE")
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
        self._writing()
        with self._db:     # one transaction per cell
            self._db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (result.key, json.dumps(cell.fields(), sort_keys=True), result.status,
                 json.dumps(result.metrics, sort_keys=True), json.dumps(result.history),
                 result.error, result.wall_s, json.dumps(provenance.to_json(), sort_keys=True)))

    def delete(self, keys: Iterable[str]) -> None:
        self._writing()
        with self._db:
            self._db.executemany("DELETE FROM cells WHERE key = ?", [(k,) for k in keys])

    def set_meta(self, **values: str) -> None:
        self._writing()
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
