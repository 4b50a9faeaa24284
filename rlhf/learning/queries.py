"""Query selection: which pairs the teacher is asked each round.

Two rules sample the round's pairs directly: ``on-policy`` (from the soft-optimal
policy for the current learned reward, the gridworld seed) and ``uniform``
(uniformly random actions, the string seed). The active rules draw a candidate
pool of ``oversample`` × the round's pairs on-policy (B-Pref's ``large_batch``;
Lee et al., 2021, "B-Pref: Benchmarking Preference-Based Reinforcement
Learning") and keep the round's pairs from it, each pair at most once:
:func:`disagreement_scores`, :func:`entropy_scores` and
:func:`info_gain_scores` rank candidates by the reward ensemble's predictions
(:func:`member_preferences`), :func:`kcenter` spreads them out in
state-visitation space.

Shapes: ``[..., m]`` over m candidate pairs, ``[..., E, m]`` per ensemble
member; leading dimensions are seeds. Every step is elementwise, a sum over a
last dimension, an ordered loop over members, or exact integer arithmetic, so a
seed's choice does not depend on the batch around it.
"""

from __future__ import annotations

import functools

import torch

from ..core import batched

SAMPLED_QUERIES = ("on-policy", "uniform")
ACTIVE_QUERIES = ("disagreement", "entropy", "info-gain", "kcenter")
ENSEMBLE_QUERIES = ("disagreement", "info-gain")
"""Rules that compare ensemble members (every member agrees with itself: they need two)."""
QUERIES = SAMPLED_QUERIES + ACTIVE_QUERIES


def member_mean(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The mean over ``dim`` (ensemble members), summed member by member in order: the
    same arithmetic for every element, wherever it sits in a batch."""
    return functools.reduce(torch.add, x.unbind(dim)) / x.shape[dim]


def member_preferences(table: torch.Tensor, features_1: torch.Tensor, features_2: torch.Tensor) -> torch.Tensor:
    """``p[..., E, m]``: each member's P(first preferred) = σ(R̂_e(τ₁) − R̂_e(τ₂)) (Bradley–Terry).

    ``table[..., E, F]``: each member's reward by feature; ``features_i[..., m, T]``: the
    feature of every step of the candidates' two segments (``model.features``).
    """
    *batch, m, T = features_1.shape
    E = table.shape[-2]

    def returns(features: torch.Tensor) -> torch.Tensor:
        index = features.reshape(*batch, 1, m * T).expand(*batch, E, m * T)
        return torch.gather(table, -1, index).view(*batch, E, m, T).sum(-1)

    return batched.sigmoid(returns(features_1) - returns(features_2))


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """``H(p) = −p·ln p − (1 − p)·ln(1 − p)`` in nats (0 at p = 0 and 1)."""
    q = 1 - p
    return -(torch.xlogy(p, p) + torch.xlogy(q, q))


def disagreement_scores(p: torch.Tensor) -> torch.Tensor:
    """``[..., m]`` the spread of the members' predictions: the (population) standard deviation
    over members of P(first preferred), as B-Pref's ``disagreement_sampling`` (Lee et al., 2021)."""
    mean = member_mean(p, -2)
    return member_mean((p - mean.unsqueeze(-2)).square(), -2).sqrt()


def entropy_scores(p: torch.Tensor) -> torch.Tensor:
    """``[..., m]`` the entropy of the ensemble's prediction ``H(p̄)``, p̄ the members' mean
    P(first preferred): the pairs the ensemble, as one predictor, is least sure of.

    B-Pref's ``entropy_sampling`` ranks by the members' *mean entropy* instead; that mixes
    each member's own doubt with nothing about their disagreement, while H(p̄) is the
    predictive entropy the Bayesian active-learning literature means (Houlsby et al., 2011)
    and the first term of :func:`info_gain_scores`. With one member they coincide.
    """
    return binary_entropy(member_mean(p, -2))


def info_gain_scores(p: torch.Tensor) -> torch.Tensor:
    """``[..., m]`` the expected information gain about the reward from the pair's label,
    estimated with the ensemble as posterior samples (BALD; Houlsby et al., 2011, "Bayesian
    Active Learning for Classification and Preference Learning"): the entropy of the mean
    prediction minus the mean entropy of the members' predictions, ``H(p̄) − mean_e H(p_e)``.
    High where members are each confident but disagree; B-Pref has no such rule."""
    return binary_entropy(member_mean(p, -2)) - member_mean(binary_entropy(p), -2)


def top_scores(scores: torch.Tensor, n: int) -> torch.Tensor:
    """``[..., n]`` the indices of the n largest scores, ties to the lower index (distinct)."""
    return torch.argsort(scores, dim=-1, descending=True, stable=True)[..., :n]


def visitation_counts(features_1: torch.Tensor, features_2: torch.Tensor, num_features: int) -> torch.Tensor:
    """``[..., m, 2F]`` each candidate pair's feature (state) visit counts, segment 1's then
    segment 2's: the points :func:`kcenter` spreads out (B-Pref concatenates the two segments too)."""
    *batch, m, T = features_1.shape
    counts = torch.zeros(*batch, m, 2, num_features, device=features_1.device)
    ones = torch.ones(1, device=counts.device).expand(*batch, m, T)
    counts[..., 0, :].scatter_add_(-1, features_1, ones)
    counts[..., 1, :].scatter_add_(-1, features_2, ones)
    return counts.view(*batch, m, 2 * num_features)


def kcenter(points: torch.Tensor, n: int) -> torch.Tensor:
    """``[..., n]`` indices of n of the m ``points[..., m, D]`` chosen by greedy k-center
    (Gonzalez, 1985; Sener and Savarese, 2018): the first is candidate 0 (the pool is a
    random sample), then repeatedly the point farthest (Euclidean) from all chosen so far.

    B-Pref's ``kcenter_sampling`` also measures distance to every pair labelled in earlier
    rounds; here the centres are this round's picks only, because distances to the whole
    labelled set cost O(pool × labelled) a round (20,000 labelled pairs by the end of a
    seed run). Points are visit counts (integers), so every distance is an exact integer
    in float32 and ties (to the lower index) are real ties, on any hardware and in any batch.
    """
    *batch, m, D = points.shape
    squares = points.square().sum(-1)                                        # [..., m]
    points_t = points.reshape(-1, m, D).transpose(-1, -2).contiguous()       # [B, D, m]
    flat_batch = points_t.shape[0]

    def distances(index: torch.Tensor) -> torch.Tensor:                      # index [...]
        center = torch.take_along_dim(points, index[..., None, None], dim=-2).squeeze(-2)    # [..., D]
        cross = batched.vecmat(center.reshape(flat_batch, -1), points_t).view(*batch, m)
        return squares + torch.take_along_dim(squares, index[..., None], dim=-1) - 2 * cross

    pick = torch.zeros(batch, dtype=torch.int64, device=points.device)
    chosen = [pick]
    nearest = distances(pick)
    for _ in range(n - 1):
        nearest.scatter_(-1, pick[..., None], -1.0)                          # never twice
        pick = nearest.argmax(-1)                                            # first of the farthest
        chosen.append(pick)
        nearest = torch.minimum(nearest, distances(pick))
    return torch.stack(chosen, -1)


def select(rule: str, n: int, features_1: torch.Tensor, features_2: torch.Tensor, table: torch.Tensor,
           ) -> torch.Tensor:
    """``[..., n]`` the candidates an active ``rule`` keeps, from ``features_i[..., m, T]``
    (the pool's two segments) and the members' reward ``table[..., E, F]``."""
    if rule == "kcenter":
        return kcenter(visitation_counts(features_1, features_2, table.shape[-1]), n)
    p = member_preferences(table, features_1, features_2)
    scores = {"disagreement": disagreement_scores, "entropy": entropy_scores, "info-gain": info_gain_scores}[rule]
    return top_scores(scores(p), n)
