"""The layering the package docstrings state, checked on the import graph.

A module may import its own package and the packages of lower layers, never a higher
one. Imports under ``if TYPE_CHECKING:`` are annotations only (never executed) and do
not count.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from helpers import ROOT

RLHF_LAYERS = ["rlhf.core", "rlhf.metrics", "rlhf.preferences", "rlhf.learning", "rlhf.training", "rlhf.policies",
               "rlhf.tasks", "rlhf"]
"""Lowest first: kernels and MDPs, metrics on them, where preferences come from, what learns from them,
the loop, policies from preferences (alignment methods), the tasks (each supplies the loop's defaults),
and the public re-exports."""
BENCH_LAYERS = ["bench.errors", "bench.kernels", "bench.provenance", "bench.outputs", "bench.sweep",
                "bench.labelling", "bench.report", "bench.timings", "bench.gate", "bench.cli", "bench.__main__",
                "bench"]
"""Lowest first: shared helpers, sweeps and their stores, then what reads runs (labelling, reports,
timings, the gate), then the command line. All of bench sits above all of rlhf."""


def _layer(module: str) -> tuple[int, int]:
    """(library 0 / harness 1, position in its layer list) of the longest listed prefix."""
    for side, layers in enumerate((RLHF_LAYERS, BENCH_LAYERS)):
        for name in sorted(layers, key=len, reverse=True):
            if module == name or module.startswith(name + "."):
                return side, layers.index(name)
    raise AssertionError(f"{module} is in no layer")


def _runtime_imports(path: Path, package: str) -> list[str]:
    """Absolute names of the rlhf/bench modules ``path`` imports at run time."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING") for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
                out += [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                out.append(str(node.module))
    return [m for m in out if m.split(".")[0] in ("rlhf", "bench")]


def _modules() -> list[tuple[str, Path, str]]:
    """(module, path, its package) of every module of rlhf and bench (not the benchmarks)."""
    out = []
    for top in ("rlhf", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "hotpaths" in parts:
                continue
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            package = module if parts[-1] == "__init__" else module.rpartition(".")[0]
            out.append((module, path, package))
    return out


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, path, package in _modules():
        mine = _layer(module)
        for target in _runtime_imports(path, package):
            theirs = _layer(target)
            if theirs > mine:
                upward.append(f"{module} imports {target}")
    assert not upward, "\n".join(upward)


def test_every_package_says_what_lives_there_and_what_it_may_import():
    packages = [m for m, path, _ in _modules() if path.name == "__init__.py" and m not in ("rlhf", "bench")]
    assert len(packages) >= 10, packages
    for name in packages:
        doc = importlib.import_module(name).__doc__ or ""
        assert "May import" in doc and len(doc.split()) > 15, f"{name}: {doc!r}"


@pytest.mark.parametrize("planted", ["from ..tasks.gridworld import GridWorld", "import bench.sweep"])
def test_the_check_sees_an_upward_import(tmp_path, planted):
    path = tmp_path / "planted.py"
    path.write_text(f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bench\n{planted}\n")
    targets = _runtime_imports(path, "rlhf.core")
    assert len(targets) == 1 and _layer(targets[0]) > _layer("rlhf.core.planted"), targets
