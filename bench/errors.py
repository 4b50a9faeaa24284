"""User-facing errors: the CLI prints them as one line and exits 2."""

from __future__ import annotations

from pathlib import Path


class BenchError(Exception):
    """A problem with the user's input (config, run directory, baseline)."""


class ConfigError(BenchError):
    """A bad sweep config: names the file, the key and the offending value."""

    def __init__(self, path: Path, key: str | None, value: object, problem: str) -> None:
        where = f"{path}"
        if key is not None:
            where += f": {key}"
            if value is not None:
                where += f" = {value!r}"
        super().__init__(f"{where}: {problem}")
