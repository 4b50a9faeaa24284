"""Query rules: which pairs the teacher is asked each round, one registry of them.

Two rules sample the round's pairs directly: ``on-policy`` (from the policy acting on
the current learned model, the gridworld preset's) and ``uniform`` (uniformly random
actions, the string preset's). The active rules draw a candidate pool of
``oversample`` × the round's pairs on-policy (B-Pref's ``large_batch``; Lee et al.,
2021, "B-Pref: Benchmarking Preference-Based Reinforcement Learning") and keep the
round's pairs from it, each pair at most once: :func:`disagreement_scores`,
:func:`entropy_scores` and :func:`info_gain_scores` rank candidates by the reward
ensemble's predictions (:func:`member_preferences`), :func:`kcenter` spreads them out
in state-visitation space.

Shapes: ``[..., m]`` over m candidate pairs, ``[..., E, m]`` per ensemble
member; leading dimensions are seeds. Every step is elementwise, a sum over a
last dimension, an ordered loop over members, or exact integer arithmetic, so a
seed's choice does not depend on the batch around it.

Adding a rule: its scores (or a chooser) here and one :func:`register_query_rule` call
at the end of this module; ``query=NAME`` then selects it everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..core import batched
from ..core.registry import Registry
from ..preferences.models import binary_entropy, bradley_terry, score_margins
from .ensemble import member_mean

Chooser = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``choose(n, features_1[..., m, T], features_2[..., m, T], table[..., E, F]) -> [..., n]``: the
indices of the n candidates kept from a pool of m, given the pool's two segments' features (a
reward model's ``features``) and each ensemble member's learned reward by feature (E = 1 without
an ensemble); distinct, and independent of the batch around each seed."""


@dataclass(frozen=True)
class QueryRule:
    """How a round's pairs are chosen: sampled directly, or chosen from an oversampled pool."""

    name: str
    """What a configuration calls it (``query=``)."""
    choose: Chooser | None = None
    """The chooser of an active rule (see :data:`Chooser`), which keeps the round's n pairs from a pool
    of ``oversample · n`` rolled out on-policy; None: the round's pairs are sampled directly."""
    uniform: bool = False
    """Whether the pairs (or the pool) come from uniformly random actions rather than the policy acting
    on the learned model: such pairs do not depend on any answer."""
    needs_ensemble: bool = False
    """Whether it compares ensemble members (every member agrees with itself: it needs two)."""

    @property
    def samples(self) -> bool:
        """True for a rule that samples its pairs directly, False for one that selects from a pool."""
        return self.choose is None


QUERY_RULES: Registry[QueryRule] = Registry("query rule")
"""Every registered query rule by name, in registration order (a read-only mapping)."""


def register_query_rule(rule: QueryRule) -> QueryRule:
    """Make ``rule`` known to configurations by its name; returns it."""
    return QUERY_RULES.register(rule.name, rule)


class _Names:
    """The names of the registered rules that pass a test, in registration order: a live view
    (a rule registered later is in it), with ``in``, iteration and ``len``."""

    def __init__(self, test: Callable[[QueryRule], bool]) -> None:
        self._test = test

    def __iter__(self) -> Iterator[str]:
        return iter(QUERY_RULES.names(self._test))

    def __contains__(self, name: object) -> bool:
        rule = QUERY_RULES.get(name) if isinstance(name, str) else None
        return rule is not None and self._test(rule)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(tuple(self))


QUERIES = _Names(lambda rule: True)
"""Every rule's name (``rlhf.QUERIES``)."""
SAMPLED_QUERIES = _Names(lambda rule: rule.samples)
"""Rules that sample their pairs directly."""
ACTIVE_QUERIES = _Names(lambda rule: not rule.samples)
"""Rules that choose their pairs from an oversampled pool."""
ENSEMBLE_QUERIES = _Names(lambda rule: rule.needs_ensemble)
"""Rules that compare ensemble members (``rlhf.ENSEMBLE_QUERIES``)."""


def member_preferences(table: torch.Tensor, features_1: torch.Tensor, features_2: torch.Tensor) -> torch.Tensor:
    """``p[..., E, m]``: each member's P(first preferred) = σ(R̂_e(τ₁) − R̂_e(τ₂)) (Bradley–Terry).

    ``table[..., E, F]``: each member's reward by feature; ``features_i[..., m, T]``: the
    feature of every step of the candidates' two segments (``model.features``).
    """
    return bradley_terry(score_margins(table, features_1.unsqueeze(-3), features_2.unsqueeze(-3)))


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


def by_scores(scores: Callable[[torch.Tensor], torch.Tensor]) -> Chooser:
    """The chooser that keeps the n candidates of highest ``scores(p[..., E, m]) -> [..., m]``, ``p``
    the members' predictions (:func:`member_preferences`)."""
    def choose(n: int, features_1: torch.Tensor, features_2: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return top_scores(scores(member_preferences(table, features_1, features_2)), n)
    return choose


def kcenter_choice(n: int, features_1: torch.Tensor, features_2: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """:func:`kcenter` on the candidates' state-visit counts (:func:`visitation_counts`)."""
    return kcenter(visitation_counts(features_1, features_2, table.shape[-1]), n)


register_query_rule(QueryRule("on-policy"))
register_query_rule(QueryRule("uniform", uniform=True))
register_query_rule(QueryRule("disagreement", by_scores(disagreement_scores), needs_ensemble=True))
register_query_rule(QueryRule("entropy", by_scores(entropy_scores)))
register_query_rule(QueryRule("info-gain", by_scores(info_gain_scores), needs_ensemble=True))
register_query_rule(QueryRule("kcenter", kcenter_choice))
