"""The convergence gate: passes on the tree as it is, bites on planted regressions."""

import json

import pytest
import torch
from helpers import ROOT, run_cli

import rlhf
from bench.gate import check
from bench.sweep import config, engine

QUICK = ROOT / "bench" / "configs" / "quick.toml"
BASELINE = ROOT / "bench" / "baselines" / "quick.json"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The CI gate itself: the quick sweep through the CLI, checked against the committed baseline."""
    out = tmp_path_factory.mktemp("quick")
    result = run_cli("run", "--config", str(QUICK), "--out", str(out), "--executor", "process", "--no-progress")
    assert result.returncode == 0, result.stderr
    return out


def test_gate_passes_on_the_unchanged_tree(quick_run):
    result = run_cli("check", "--run", str(quick_run), "--baseline", str(BASELINE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "convergence gate: ok" in result.stdout


def test_tampered_baseline_fails_and_names_the_configuration(quick_run, tmp_path):
    body = json.loads(BASELINE.read_text())
    entry = next(e for e in body["configurations"] if e["fields"]["task"] == "strings" and e["fields"]["budget"] == 200)
    entry["epic"] += 0.2
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(body))
    result = run_cli("check", "--run", str(quick_run), "--baseline", str(tampered))
    assert result.returncode == 1
    assert "strings L=3 slip=0 budget=200 deterministic" in result.stdout or \
        "strings L=5 slip=0 budget=200 deterministic" in result.stdout
    assert "epic" in result.stdout


@pytest.mark.parametrize("mutate,needle", [
    (lambda b: b.__setitem__("configurations", b["configurations"][1:]), "not in the baseline"),
    (lambda b: b["configurations"][0]["fields"].__setitem__("size", 6), "missing from the run"),
    (lambda b: b.pop("tolerances"), "malformed"),
])
def test_mismatched_or_malformed_baseline_exits_2(quick_run, tmp_path, mutate, needle):
    body = json.loads(BASELINE.read_text())
    mutate(body)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(body))
    result = run_cli("check", "--run", str(quick_run), "--baseline", str(path))
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr


def test_missing_or_unreadable_baseline_exits_2(quick_run, tmp_path):
    assert run_cli("check", "--run", str(quick_run), "--baseline", str(tmp_path / "none.json")).returncode == 2
    (tmp_path / "bad.json").write_text("{not json")
    result = run_cli("check", "--run", str(quick_run), "--baseline", str(tmp_path / "bad.json"))
    assert result.returncode == 2 and "malformed" in result.stderr


# ---------------------------------------------------------------- planted regressions
# Each plant patches one documented injection point in-process, reruns the quick
# sweep serially and expects the gate to fail, naming at least one configuration.

def _flip_labels(monkeypatch):
    real = rlhf.Teacher.label

    def flipped(self, *args, **kwargs):
        labels = real(self, *args, **kwargs)
        return rlhf.Labels(1.0 - labels.prefer_first, labels.answered, labels.entropy)

    monkeypatch.setattr(rlhf.Teacher, "label", flipped)


def _zero_lr(monkeypatch):
    real = rlhf.train_checkpoints      # what every group of a sweep runs (bench.sweep.cell.run_group)

    def frozen(task, seeds, budgets, *, config, **kwargs):
        return real(task, seeds, budgets, config=config.replace(lr=0.0), **kwargs)

    monkeypatch.setattr(rlhf, "train_checkpoints", frozen)


def _wrong_temperature(monkeypatch):
    real = rlhf.core.planning.soft_value_iteration
    monkeypatch.setattr(rlhf.core.planning, "soft_value_iteration",
                        lambda mdp, r, h, discount=1.0, temperature=1.0: real(mdp, r, h, discount, temperature * 10))


def _broken_slip(monkeypatch):
    monkeypatch.setattr(rlhf.tasks.gridworld, "slip_move_probs", lambda slip: torch.eye(5))


@pytest.mark.parametrize("plant", [_flip_labels, _zero_lr, _wrong_temperature, _broken_slip],
                         ids=["labels-flipped", "lr-zero", "temperature", "slip-ignored"])
def test_gate_catches_planted_regressions(plant, monkeypatch, tmp_path, capsys):
    plant(monkeypatch)
    engine.run_sweep(config.load(QUICK), tmp_path / "run", progress=False)
    capsys.readouterr()
    assert check.run_check(tmp_path / "run", BASELINE) == 1
    printed = capsys.readouterr().out
    assert "regression" in printed and ("gridworld N=" in printed or "strings L=" in printed)


def test_without_a_check_table_the_baseline_uses_the_documented_defaults(tmp_path, tiny_config):
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    baseline = tmp_path / "base.json"
    check.write_baseline(run, tiny_config, baseline)
    tolerances = json.loads(baseline.read_text())["tolerances"]
    assert tolerances["tv"] == {"abs": 0.05, "rel": 0.1} and tolerances["epic"] == {"abs": 0.05, "rel": 0.1}
    assert tolerances["success_rate"] == check.EXACT and tolerances["pref_accuracy"]["abs"] == 0.05
    assert set(tolerances) <= set(check.DEFAULT_TOLERANCES)


def test_a_check_entry_naming_no_metric_of_the_run_is_refused(tmp_path, tiny_config):
    run = tmp_path / "run"
    run_cli("run", "--config", str(tiny_config), "--out", str(run), "--no-progress", check=True)
    cfg = tmp_path / "typo.toml"
    cfg.write_text(tiny_config.read_text() + "\n[check]\ntvv = { abs = 0.1 }\n")
    result = run_cli("baseline", "--run", str(run), "--config", str(cfg), "--out", str(tmp_path / "b.json"))
    assert result.returncode == 2 and "check.tvv" in result.stderr and not (tmp_path / "b.json").exists()
