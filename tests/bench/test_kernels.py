"""One kernel set for every cell, whatever the outer environment asks torch for."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, run_cli

from bench import kernels
from bench.errors import BenchError

QUICK = ROOT / "bench" / "configs" / "quick.toml"


def _capabilities() -> list[str]:
    """The torch capabilities this CPU can run (ATEN_CPU_CAPABILITY values)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return ["default", "avx2"] + (["avx512"] if " avx512f " in flags.replace("\n", " ") else [])


@pytest.mark.skipif(not kernels.is_x86_64(), reason="the pin is for x86-64")
def test_quick_sweep_is_identical_whatever_kernels_the_outer_environment_asks_for(tmp_path):
    tables = {}
    for capability in _capabilities():
        out = tmp_path / capability
        result = run_cli("run", "--config", str(QUICK), "--out", str(out), "--executor", "process", "--workers", "2",
                         "--no-progress", env={"ATEN_CPU_CAPABILITY": capability, "MKL_CBWR": "AUTO"})
        assert result.returncode == 0, result.stderr
        tables[capability] = (out / "cells.csv").read_bytes()
        with sqlite3.connect(out / "results.sqlite") as db:
            recorded = {json.loads(p)["cpu_capability"] for (p,) in db.execute("SELECT provenance FROM cells")}
        assert recorded == {kernels.PINNED_CAPABILITY}, capability
    assert len(set(tables.values())) == 1, {c: len(t) for c, t in tables.items()}


def test_cells_are_refused_in_a_process_whose_torch_runs_other_kernels(monkeypatch):
    monkeypatch.delenv(kernels.OPT_OUT, raising=False)
    monkeypatch.setattr(kernels, "is_x86_64", lambda: True)
    monkeypatch.setattr(kernels, "capability", lambda: "AVX512")
    with pytest.raises(BenchError, match="AVX512.*bench before torch"):
        kernels.require_pinned("--executor serial")
    monkeypatch.setattr(kernels, "capability", lambda: kernels.PINNED_CAPABILITY)
    kernels.require_pinned("--executor serial")            # pinned: fine
    monkeypatch.setattr(kernels, "capability", lambda: "AVX512")
    monkeypatch.setenv(kernels.OPT_OUT, "native")
    kernels.require_pinned("--executor serial")            # opted out: the provenance records AVX512 instead


@pytest.mark.skipif(not kernels.is_x86_64(), reason="the pin is for x86-64")
def test_mkl_runs_its_pinned_branch_on_any_vendors_cpu():
    """MKL ignores MKL_CBWR=AVX2 on CPUs it does not take for Intel's (AMD: it ran AUTO and the quick
    sweep drifted from the Intel baseline); after ``import bench`` it must run the pinned branch."""
    probe = ("import bench, torch; from bench import kernels; a = torch.ones(4, 4); a @ a; "
             "print(kernels.mkl_branch(), kernels.capability())")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={k: v for k, v in os.environ.items() if k != kernels.OPT_OUT})
    assert result.stdout.split() == [kernels.PINNED_MKL_BRANCH, kernels.PINNED_CAPABILITY], result.stdout
