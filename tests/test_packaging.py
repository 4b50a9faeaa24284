"""What a user installs: the declared dependency ranges must admit only versions the code runs on."""

import tomllib

from helpers import ROOT
from packaging.requirements import Requirement


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {r.name: r for r in map(Requirement, project["dependencies"])}


def test_torch_range_starts_where_the_cpu_fused_adam_kernel_exists():
    torch = _requirements()["torch"]
    assert not torch.specifier.contains("2.3.1") and torch.specifier.contains("2.13.0")


def test_the_pinned_versions_satisfy_the_declared_ranges():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    for name, requirement in _requirements().items():
        assert requirement.specifier.contains(pins[name.lower()]), name
