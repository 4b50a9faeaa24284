"""Azar et al. (2023), §5.3–5.4, reproduced exactly: IPO reaches its own optimum at every τ, DPO goes greedy.

Two offline datasets on a bandit (a length-1 string task, :meth:`rlhf.StringTask.bandit`, uniform
reference): one certain preference {a ≻ b}, and the three pairs {a ≻ b, b ≻ c, a ≻ c}. At each τ (the
methods' β) each method's loss over the dataset is minimised exactly by the library
(``rlhf.align(..., exact=True)``: damped Newton until ``max |∇L| <= 1e-10``; for a loss with no finite
minimiser the solver reports ``solver_bounded = 0`` and the policy is the limit along the direction
in which the loss keeps falling). Nothing here is sampled.

Beside each solve, the closed form it should reach, derived here from the papers' definitions (not
by the library). With ``x = log π/π_ref`` (uniform reference: π = softmax(x)):

* IPO's loss is ``Σ_pairs (x_w − x_l − 1/(2τ))²``. One pair: ``x_a − x_b = 1/(2τ)``, so
  ``π(a) = σ(1/(2τ))``. Three pairs: with ``u = x_a − x_b``, ``v = x_b − x_c`` the loss is
  ``(u − k)² + (v − k)² + (u + v − k)²`` (k = 1/(2τ)); setting both derivatives to 0 gives
  ``2u + v = 2k = u + 2v``, so ``u = v = 2k/3 = 1/(3τ)`` and ``π ∝ (e^{2/(3τ)}, e^{1/(3τ)}, 1)``.
* DPO's loss ``Σ −log σ(τ·(x_w − x_l))`` falls as every margin grows and has no finite minimiser;
  its infimum is approached by the greedy policy π(a) → 1, whatever τ.
"""

from __future__ import annotations

import math

import pandas as pd

import rlhf

TAUS = (0.1, 0.3, 1.0, 3.0)
"""The regularisation strengths of the table (τ, the methods' β)."""
DATASETS: dict[str, list[tuple[str, str]]] = {
    "{a ≻ b}": [("a", "b")],
    "{a ≻ b, b ≻ c, a ≻ c}": [("a", "b"), ("b", "c"), ("a", "c")],
}
"""The two offline datasets of Azar et al.'s examples (preferred arm first)."""
ARMS = "abc"


def ipo_optimum(arms: int, tau: float) -> list[float]:
    """IPO's optimum in closed form (see the module docstring): two arms, one pair; three arms, three pairs."""
    if arms == 2:
        p = 1 / (1 + math.exp(-1 / (2 * tau)))
        return [p, 1 - p]
    weights = [math.exp(2 / (3 * tau)), math.exp(1 / (3 * tau)), 1.0]
    return [w / sum(weights) for w in weights]


def greedy(arms: int) -> list[float]:
    """DPO's infimum: every probability on arm a."""
    return [1.0] + [0.0] * (arms - 1)


def toy_table() -> pd.DataFrame:
    """One row per (dataset, τ, method): the exact solve's ``pi_a, pi_b, pi_c`` (NaN where the bandit has
    two arms), the closed form's ``optimum_a, …``, ``gap`` = max |π − closed form|, and
    ``finite_minimiser`` (the solver's ``solver_bounded``)."""
    rows = []
    for name, pairs in DATASETS.items():
        arms = len({arm for pair in pairs for arm in pair})
        task = rlhf.StringTask.bandit([1.0 - i / (arms - 1) for i in range(arms)])    # rewards: a > b > c
        data = rlhf.PreferenceData.from_pairs(task, pairs)
        for tau in TAUS:
            for method, expected in (("ipo", ipo_optimum(arms, tau)), ("dpo", greedy(arms))):
                result = rlhf.align(task, data, method=method, beta=tau, exact=True)
                pi = [float(p) for p in result.policy.reshape(-1, arms)[0]]
                row: dict[str, object] = {"dataset": name, "tau": tau, "method": method}
                for k, arm in enumerate(ARMS):
                    row[f"pi_{arm}"] = pi[k] if k < arms else math.nan
                    row[f"optimum_{arm}"] = expected[k] if k < arms else math.nan
                row["gap"] = max(abs(p - q) for p, q in zip(pi, expected, strict=True))
                row["finite_minimiser"] = bool(result.metrics["solver_bounded"])
                rows.append(row)
    return pd.DataFrame(rows)


def _probabilities(row: pd.Series, prefix: str) -> str:
    values = [row[f"{prefix}_{arm}"] for arm in ARMS if not math.isnan(row[f"{prefix}_{arm}"])]
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def markdown(table: pd.DataFrame) -> str:
    """The table as the front page shows it: per dataset and τ, IPO's solve beside its closed form, and DPO's."""
    lines = []
    for (name, tau), rows in table.groupby(["dataset", "tau"], sort=False):
        ipo, dpo = (rows[rows["method"] == m].iloc[0] for m in ("ipo", "dpo"))
        lines.append({"dataset": name, "τ": f"{tau:g}", "IPO π (exact solve)": _probabilities(ipo, "pi"),
                      "IPO's optimum (closed form)": _probabilities(ipo, "optimum"),
                      "|IPO − closed form|": f"{ipo['gap']:.1e}", "DPO π (exact solve)": _probabilities(dpo, "pi"),
                      "DPO has a finite minimiser": "yes" if dpo["finite_minimiser"] else "no"})
    return pd.DataFrame(lines).to_markdown(index=False)
