"""Tie models: a comparison of two segments whose answer may be "equal" (Chen et al., 2024, "On
extending direct preference optimization to accommodate ties").

With strengths ``π_i = exp(r_i)`` (``r`` a segment's return, β already applied) and margin
``z = r_i − r_j``, the three outcomes' probabilities are:

* **Rao–Kupper** (Rao and Kupper, 1967, "Ties in paired-comparison experiments: a generalization of
  the Bradley–Terry model"), tie parameter ``θ ≥ 1`` (``η = log θ``)::

      P(i ≻ j) = π_i / (π_i + θ·π_j)                       = σ(z − η)
      P(j ≻ i) = π_j / (θ·π_i + π_j)                       = σ(−z − η)
      P(i = j) = (θ² − 1)·π_i·π_j / ((π_i + θ·π_j)(θ·π_i + π_j)) = (θ² − 1)·σ(z − η)·σ(−z − η)

  The three sum to 1; two segments of equal return tie with probability ``(θ − 1)/(θ + 1)``; θ = 1 is
  Bradley–Terry (no ties).
* **Davidson** (Davidson, 1970, "On extending the Bradley–Terry model to accommodate ties in
  paired comparison experiments"), tie parameter ``ν ≥ 0`` (``λ = log ν``)::

      P(i ≻ j) = π_i / (π_i + π_j + ν·√(π_i·π_j))          = exp(z/2 − D)
      P(j ≻ i) = π_j / (π_i + π_j + ν·√(π_i·π_j))          = exp(−z/2 − D)
      P(i = j) = ν·√(π_i·π_j) / (π_i + π_j + ν·√(π_i·π_j))  = exp(λ − D)

  with ``D = logsumexp(z/2, −z/2, λ)``; equal returns tie with probability ``ν/(2 + ν)``; ν = 0 is
  Bradley–Terry.

The defaults, θ = 2 and ν = 1, both tie two equal segments with probability 1/3. Every function
here is elementwise (``exp``, ``log`` and the batch-invariant :func:`rlhf.core.batched.sigmoid`), so a
seed's values do not depend on the batch around it.
"""

from __future__ import annotations

import math

import torch

from ..core import batched

TIE_MODELS = ("none", "rao-kupper", "davidson")
"""The tie models by name: ``none`` is Bradley–Terry (a tie is the soft label 0.5)."""
DEFAULT_TIE_PARAMS = {"rao-kupper": 2.0, "davidson": 1.0}
"""Each model's default parameter (θ, ν): equal segments tie with probability 1/3 under both."""


def check_tie_param(model: str, value: float, field: str = "tie_param") -> None:
    """ValueError naming ``field`` unless ``value`` is a valid parameter of ``model`` (θ > 1, ν > 0)."""
    low = 1.0 if model == "rao-kupper" else 0.0
    symbol = "θ" if model == "rao-kupper" else "ν"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < value < math.inf):
        raise ValueError(f"{field} must be a number > {low:g} ({model}'s {symbol}), got {value!r}")


def log_tie_param(model: str, value: float) -> float:
    """The parameter in the log space the formulas use: ``η = log θ`` or ``λ = log ν``."""
    return math.log(value)


def rao_kupper(margin: torch.Tensor, eta: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(P(i ≻ j), P(j ≻ i), P(i = j))`` under Rao–Kupper of margins ``z[...]`` with ``η = log θ``
    (a number or a tensor broadcasting against ``z``); see the module docstring."""
    win, loss = batched.sigmoid(margin - eta), batched.sigmoid(-margin - eta)
    theta_sq_minus_1 = torch.expm1(2 * torch.as_tensor(eta, dtype=margin.dtype, device=margin.device))
    return win, loss, theta_sq_minus_1 * win * loss


def davidson(margin: torch.Tensor, lam: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(P(i ≻ j), P(j ≻ i), P(i = j))`` under Davidson of margins ``z[...]`` with ``λ = log ν``; see
    the module docstring (computed as a softmax over ``(z/2, −z/2, λ)``)."""
    lam = torch.as_tensor(lam, dtype=margin.dtype, device=margin.device)
    half = margin / 2
    top = torch.maximum(half.abs(), lam)
    e_win, e_loss, e_tie = torch.exp(half - top), torch.exp(-half - top), torch.exp(lam - top)
    total = e_win + e_loss + e_tie
    return e_win / total, e_loss / total, e_tie / total


def tie_probabilities(model: str, margin: torch.Tensor, log_param: torch.Tensor | float,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(P(i ≻ j), P(j ≻ i), P(i = j))`` of margins ``z[...]`` under ``model`` (``"rao-kupper"`` or
    ``"davidson"``) with its log parameter (η or λ)."""
    if model == "rao-kupper":
        return rao_kupper(margin, log_param)
    if model == "davidson":
        return davidson(margin, log_param)
    raise ValueError(f"tie model must be 'rao-kupper' or 'davidson', got {model!r}")


def ternary_entropy(p_win: torch.Tensor, p_loss: torch.Tensor, p_tie: torch.Tensor) -> torch.Tensor:
    """The entropy (nats) of a three-outcome distribution, elementwise (0·log 0 = 0)."""
    return -(torch.xlogy(p_win, p_win) + torch.xlogy(p_loss, p_loss) + torch.xlogy(p_tie, p_tie))
