"""Output directories that know what they own: ``report`` and ``timings`` write only there.

A directory they write carries ``manifest.json``: every file in it and which
command wrote it. Before anything is written the directory must be new, empty,
or hold nothing but files of its manifest — so ``--to .`` in a project, or a
folder of someone's notes, is refused with one line and left untouched. A
writer renders into a private staging folder first and publishes at the end:
its files replace their predecessors one rename each, its files from the last
time that it no longer makes are removed, and the manifest is rewritten last.
A failure while rendering writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BenchError

MANIFEST = "manifest.json"
GENERATOR = "rlhf-bench"


def owned(directory: Path) -> dict[str, str]:
    """``{file name: writer}`` from the directory's manifest ({} for a new or empty directory);
    raises :class:`BenchError` if the directory holds anything its manifest does not list."""
    if not directory.exists():
        return {}
    if not directory.is_dir():
        raise BenchError(f"--to {directory}: not a directory")
    # ".NAME.tmp" files are this module's own, left by an interrupted publish: replaced next time.
    entries = {p.name for p in directory.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))}
    files: dict[str, str] = {}
    if MANIFEST in entries:
        try:
            body = json.loads((directory / MANIFEST).read_text())
            if body.get("generator") != GENERATOR:
                raise ValueError("not written by rlhf-bench")
            files = {str(k): str(v) for k, v in body["files"].items()}
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise BenchError(f"--to {directory}: {MANIFEST} is not rlhf-bench's ({exc}); choose another directory") \
                from None
    foreign = sorted(entries - files.keys() - {MANIFEST})
    if foreign:
        raise BenchError(f"--to {directory}: holds files rlhf-bench did not write ({shown(foreign)}); "
                         "choose a new or empty directory")
    return files


def shown(names: list[str]) -> str:
    """The first three names, and how many more."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


@contextmanager
def publishing(directory: Path, writer: str) -> Iterator[Path]:
    """``with publishing(to, "report") as stage:`` write files into ``stage``; on success they
    replace ``writer``'s files in ``directory``. Checks ownership before the block runs."""
    before = owned(directory)
    stage = Path(tempfile.mkdtemp(prefix=f"rlhf-bench-{writer}-"))
    try:
        yield stage
        made = sorted(p.name for p in stage.iterdir())
        taken = [name for name in made if before.get(name, writer) != writer or name == MANIFEST]
        if taken:
            raise BenchError(f"--to {directory}: {taken[0]} belongs to 'bench {before.get(taken[0], '?')}'")
        directory.mkdir(parents=True, exist_ok=True)
        for name in made:
            tmp = directory / f".{name}.tmp"
            shutil.copyfile(stage / name, tmp)
            os.replace(tmp, directory / name)
        for name, owner in before.items():
            if owner == writer and name not in made:
                (directory / name).unlink(missing_ok=True)
        files = {n: o for n, o in before.items() if o != writer} | {name: writer for name in made}
        tmp = directory / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps({"generator": GENERATOR, "files": dict(sorted(files.items()))}, indent=1) + "\n")
        os.replace(tmp, directory / MANIFEST)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
