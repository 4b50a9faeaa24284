"""Shared test helpers (importable: pytest's ``pythonpath`` includes tests/_support)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TINY_CONFIG = """
name = "tiny"
[gridworld]
sizes = [3, 4]
slips = [0.0, 0.1]
budgets = [100]
teachers = ["boltzmann:1"]
starts = ["uniform"]
seeds = 2
horizon = 6
[gridworld.train]
pairs_per_round = 50
epochs = 10
heldout_pairs = 50
[strings]
sizes = [3]
slips = [0.0]
budgets = [20, 60]
teachers = ["deterministic"]
seeds = 3
[strings.train]
heldout_pairs = 50
"""


BAD_CONFIGS = [  # (case, TOML text, what the error must name)
    ("unknown task", "[atari]\nsizes = [5]", "atari"),
    ("unknown key", "[gridworld]\nsizes=[5]\nslips=[0.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=1\ncolour='red'",
     "gridworld.colour"),
    ("wrong type", "[gridworld]\nsizes=['five']\nslips=[0.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=1",
     "gridworld.sizes = 'five'"),
    ("size < 2", "[gridworld]\nsizes=[1]\nslips=[0.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=1", "gridworld.sizes = 1"),
    ("slip", "[strings]\nsizes=[3]\nslips=[1.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=1", "strings.slips = 1.0"),
    ("empty seeds", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=[]",
     "strings.seeds = []"),
    ("budget", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[0]\nteachers=['oracle']\nseeds=1", "strings.budgets = 0"),
    ("teacher", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['wise']\nseeds=1", "strings.teachers = 'wise'"),
    ("train key", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n[strings.train]\nlr='fast'",
     "strings.train.lr = 'fast'"),
    ("malformed", "[gridworld\nsizes = [5]", "malformed TOML"),
    ("check entry not a table", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "[check]\ntv = 0.05", "check.tv = 0.05"),
    ("check tolerance negative", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "[check]\ntv = { abs = -1 }", "check.tv.abs = -1"),
    ("check tolerance unknown part", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "[check]\ntv = { absolute = 0.1 }", "check.tv"),
    ("unknown query rule", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "queries=['greedy']", "strings.queries = 'greedy'"),
    ("ensemble of 0", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\nensembles=[0]",
     "strings.ensembles = 0"),
    ("only member-comparing rules, one member", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\n"
     "teachers=['oracle']\nseeds=1\nqueries=['disagreement']\nensembles=[1]", "strings.ensembles = [1]"),
    ("query twice", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "queries=['uniform']\n[strings.train]\nquery='uniform'", "strings.train.query = 'uniform'"),
    ("unknown learner model", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "learner_models=['contrarian']", "strings.learner_models = 'contrarian'"),
    ("unknown import", "imports = ['no_such_module_xyz']\n[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\n"
     "teachers=['oracle']\nseeds=1", "imports = 'no_such_module_xyz': no such module"),
    ("imports not a list", "imports = 'my_tasks'\n[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\n"
     "teachers=['oracle']\nseeds=1", "imports = 'my_tasks': must be a list of module names"),
    ("random worlds missing", "[random-gridworld]\nbudgets=[5]\nteachers=['oracle']\nseeds=1",
     "random-gridworld.worlds"),
    ("random worlds negative", "[random-gridworld]\nworlds=[-1]\nbudgets=[5]\nteachers=['oracle']\nseeds=1",
     "random-gridworld.worlds = [-1]"),
    ("sizes of a random world", "[random-gridworld]\nworlds=2\nsizes=[5]\nbudgets=[5]\nteachers=['oracle']\n"
     "seeds=1", "random-gridworld.sizes = [5]: unknown key"),
    # the library's own reason, after the field and the value
    ("teacher's reason", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['boltzmann:-1']\nseeds=1",
     "strings.teachers = 'boltzmann:-1': teacher beta must be > 0, got -1.0"),
    ("recorded teacher without a store", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\n"
     "teachers=['recorded:/no/such/labels']\nseeds=1",
     "strings.teachers = 'recorded:/no/such/labels': teacher 'recorded:/no/such/labels': no labels store"),
    # a misspelt key: the nearest known one
    ("misspelt key", "[gridworld]\nsize=[5]\nslips=[0.0]\nbudgets=[10]\nteachers=['oracle']\nseeds=1",
     "gridworld.size = [5]: unknown key; did you mean 'sizes'?"),
    ("misspelt top-level key", "nmae = 'x'\n[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\n"
     "seeds=1", "nmae = 'x': unknown task or key"),
    ("misspelt train key", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "[strings.train]\nepoch=5", "strings.train.epoch = 5: unknown key; did you mean 'epochs'?"),
    ("unknown train key", "[strings]\nsizes=[3]\nslips=[0.0]\nbudgets=[5]\nteachers=['oracle']\nseeds=1\n"
     "[strings.train]\nlearning_rate=0.1", "strings.train.learning_rate = 0.1: unknown key (known: "),
]
ENV_BAD_CONFIGS = [
    ("unknown env id", "[gymnasium]\nenvs=['FrozenPond-v9']\nbudgets=[5]\nteachers=['oracle']\nseeds=1",
     "gymnasium.envs = 'FrozenPond-v9': unknown environment id"),
    ("env without a horizon", "[gymnasium]\nenvs=['CliffWalking-v1']\nbudgets=[5]\nteachers=['oracle']\nseeds=1",
     "gymnasium.envs = 'CliffWalking-v1': CliffWalking-v1 registers no max_episode_steps: pass horizon="),
    ("not a seals env", "[seals]\nenvs=['CartPole-v1']\nbudgets=[5]\nteachers=['oracle']\nseeds=1",
     "is not a tabular seals environment"),
]
if importlib.util.find_spec("gymnasium") and importlib.util.find_spec("seals"):    # the envs extra
    BAD_CONFIGS += ENV_BAD_CONFIGS


def run_cli(*args: str, check: bool = False, env: dict[str, str] | None = None,
            root: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a subprocess, from the repository root (or a copy of its
    sources at ``root``), with ``env`` added to the environment."""
    full_env = dict(os.environ, PYTHONPATH=str(root)) | (env or {})
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=root, env=full_env, capture_output=True,
                          text=True, check=check, timeout=600)


def run_and_report(tmp_path: Path, config_text: str) -> tuple[Path, Path]:
    """Write ``config_text`` as a sweep config, run it and report it (both must succeed):
    ``(run directory, report directory)``."""
    config = tmp_path / "sweep.toml"
    config.write_text(config_text)
    run, to = tmp_path / "run", tmp_path / "report"
    run_cli("run", "--config", str(config), "--out", str(run), "--no-progress", check=True)
    run_cli("report", "--run", str(run), "--to", str(to), check=True)
    return run, to


def _guilty(group):
    """The group holding cell (strings, seed 0, budget 20)."""
    return any(c.task == "strings" and c.seed == 0 and c.budget == 20 for c in group.cells)


def kill_worker_once(group, marker_dir):
    """Fault injection: the first attempt at the group of cell (strings, seed 0, budget 20) kills its worker."""
    from bench.sweep.cell import run_group
    marker = Path(marker_dir) / f"{group.key}.attempted"
    if _guilty(group) and not marker.exists():
        marker.touch()
        os._exit(1)
    return run_group(group)


def kill_worker_always(group):
    """Fault injection: the group of cell (strings, seed 0, budget 20) kills every worker that tries it."""
    from bench.sweep.cell import run_group
    if _guilty(group):
        os._exit(1)
    return run_group(group)


def sleepy_group(group, marker_dir, seconds=60.0):
    """Fault injection for the Ctrl-C tests: a group with a slipping cell leaves a marker that it
    started, then sleeps (a long group, interruptible) before it runs; other groups run at once."""
    import time

    from bench.sweep.cell import run_group
    if any(c.slip > 0 for c in group.cells):
        (Path(marker_dir) / f"started-{group.key}-{os.getpid()}-{time.monotonic_ns()}").touch()
        time.sleep(seconds)
    return run_group(group)


def keys_from(rng):
    """A fresh counter-based key drawn from a torch Generator (each call a new stream)."""
    import torch

    import rlhf
    return rlhf.Keys.from_seeds([int(torch.randint(2**62, (1,), generator=rng))])[0]


def dense_hard_max_q(mdp, reward, horizon: int, discount: float = 1.0):
    """An independent float64 dynamic program: Q_{i+1}(s, a) = r̄(s, a) + γ Σ_s' P(s'|s, a) max_a' Q_i(s', a'),
    P the dense transitions of the chosen action and r̄ its expected reward over the executed
    action (action noise included), loops written out."""
    import torch
    P = mdp.dense_transitions().double()                       # [A, S, S]
    A, S = P.shape[0], P.shape[1]
    r = reward.double().reshape(S, -1).expand(S, A) @ mdp.executed_action_probs().double().T
    q = torch.zeros(S, A, dtype=torch.float64)
    for _ in range(horizon):
        v = q.max(-1).values
        q = torch.stack([torch.stack([r[s, a] + discount * (P[a, s] * v).sum() for a in range(A)])
                         for s in range(S)])
    return q


def default_sigint() -> None:
    """``preexec_fn`` for a child a test interrupts: SIGINT back to its default. A shell without job
    control starts background commands (``cmd &``, as a CI runner may) with SIGINT ignored, and a
    child inherits that, so a Python child would never see the KeyboardInterrupt the test sends."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
