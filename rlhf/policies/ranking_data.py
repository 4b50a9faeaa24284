"""Rankings of K trajectories as a value: what Plackett–Luce DPO (:mod:`.pl_dpo`) is fitted on.

:class:`RankingData` holds N distinct trajectories ``[N, T]`` and Q rankings of K of them, each best
first (``rankings[Q, K]``, indices into the trajectories) with its tie flags (``tied[Q, K − 1]``:
positions j and j + 1 are equal, as :mod:`rlhf.preferences.rankings` writes a ranking) and its
weight in a loss. Three ways to make one:

* :meth:`RankingData.sampled`: queries of K trajectories rolled out from a policy and ranked by a
  teacher (:meth:`rlhf.Teacher.rank`: Plackett–Luce of ``β·R`` and B-Pref's parts), all draws
  counter-based (:class:`rlhf.Keys`): segment k of query i is trajectory ``k·count + i`` of one
  rollout, as the training loop's ranking queries are, so at K = 2 the queries are
  :meth:`rlhf.PreferenceData.sampled`'s pairs and the rankings its labels (the same uniforms);
* :meth:`RankingData.population`: for a task small enough to enumerate, every set of K distinct
  trajectories with every ranking the teacher can give it, at its exact probability (no draw);
* :meth:`RankingData.from_pairs`: pairs (:class:`rlhf.PreferenceData`) as rankings of two, a soft
  label y weighing the two orders by y and 1 − y (a tie counts ½, as DPO reads it).

Pair ties with a tie model (Rao–Kupper, Davidson) are not rankings: they are the pairs' ``tie``
probabilities (:attr:`rlhf.PreferenceData.tie`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..core.enumeration import enumerate_trajectories
from ..core.keys import Keys
from ..core.planning import uniform_policy
from ..core.rollout import Trajectories, rollout, step_rewards
from ..core.truths import truths_of
from ..preferences import rankings as ranks
from ..preferences.kinds import labeller_from_spec, resolve_teacher_spec
from ..preferences.labeller import Labeller, Query
from ..preferences.models import PARTIAL_RETURN, preference_model
from ..preferences.teachers import Teacher
from .data import SAMPLE, TEACHER, PreferenceData, _time_indexed_scores


@dataclass(frozen=True)
class RankingData:
    """Weighted rankings of K trajectories (see the module docstring)."""

    trajectories: Trajectories
    """``[N, T]`` the distinct trajectories the rankings are made of (states, executed actions)."""
    rankings: torch.Tensor
    """``[Q, K]`` int64: each ranking's trajectories, best first (indices into ``trajectories``)."""
    tied: torch.Tensor
    """``[Q, K − 1]`` bool: the trajectories at positions j and j + 1 of the ranking are equal (ties chain)."""
    weight: torch.Tensor
    """``[Q]`` float64 >= 0, summing to 1: each ranking's weight in a loss (0: unanswered)."""
    is_population: bool = False
    """Whether this is a task's whole population (every K-set and ranking, exact weights): methods then
    solve for their exact optimum."""
    source: str = ""
    """How the data was made."""

    def __post_init__(self) -> None:
        n = self.trajectories.states.shape[0]
        if self.rankings.dim() != 2 or self.rankings.shape[1] < 2:
            raise ValueError(f"rankings must have shape [Q, K] with K >= 2, got {tuple(self.rankings.shape)}")
        Q, K = self.rankings.shape
        if self.tied.shape != (Q, K - 1) or self.tied.dtype != torch.bool:
            raise ValueError(f"tied must be bool of shape [{Q}, {K - 1}], got {self.tied.dtype} "
                             f"{tuple(self.tied.shape)}")
        if self.weight.shape != (Q,):
            raise ValueError(f"weight must have shape [{Q}], got {tuple(self.weight.shape)}")
        if Q and (int(self.rankings.min()) < 0 or int(self.rankings.max()) >= n):
            raise ValueError(f"ranking indices must lie in [0, {n})")
        if Q and bool((self.weight < 0).any()):
            raise ValueError("weights must be >= 0")

    def __len__(self) -> int:
        return self.rankings.shape[0]

    def __repr__(self) -> str:
        return (f"RankingData({len(self)} rankings of {self.rank} of {self.trajectories.states.shape[0]} "
                f"trajectories of {self.length} steps{', population' if self.is_population else ''}: {self.source})")

    @property
    def rank(self) -> int:
        """K, the trajectories of every ranking."""
        return self.rankings.shape[1]

    @property
    def length(self) -> int:
        """T, the steps of every trajectory."""
        return self.trajectories.states.shape[-1]

    @property
    def answered(self) -> torch.Tensor:
        """``[Q]`` bool: the rankings with positive weight."""
        return self.weight > 0

    # ------------------------------------------------------------- makers
    @classmethod
    def of(cls, segments: Trajectories, order: torch.Tensor, tied: torch.Tensor | None = None,
           answered: torch.Tensor | None = None, source: str = "") -> RankingData:
        """Data from queries ``segments[Q, K, T]`` and their rankings ``order[Q, K]`` (the segments' indices
        within the query, best first) with ``tied[Q, K − 1]`` (default none): distinct trajectories are
        kept once, unanswered queries get weight 0 and the others equal weights."""
        Q, K, T = segments.states.shape
        rows = torch.cat([segments.states, segments.actions], -1).reshape(Q * K, 2 * T)
        unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
        rankings = torch.take_along_dim(inverse.view(Q, K), order.long().cpu(), dim=-1)
        answered = torch.ones(Q, dtype=torch.bool) if answered is None else answered.cpu().bool()
        weight = answered.double() / max(int(answered.sum()), 1)
        tied = torch.zeros(Q, K - 1, dtype=torch.bool) if tied is None else tied.cpu().bool()
        return cls(Trajectories(unique[:, :T].contiguous(), unique[:, T:].contiguous()), rankings, tied, weight,
                   source=source)

    @classmethod
    def from_pairs(cls, data: PreferenceData) -> RankingData:
        """Pairs as rankings of two: pair p is rows 2p (first ahead, weight ``w·y``) and 2p + 1 (second
        ahead, weight ``w·(1 − y)``), so a loss of rankings sums to the pair's soft-label loss
        ``y·ℓ(first ≻ second) + (1 − y)·ℓ(second ≻ first)`` (a tie counts ½)."""
        if not isinstance(data, PreferenceData):
            raise ValueError(f"from_pairs needs rlhf.PreferenceData, got {type(data).__name__}")
        rankings = torch.stack([torch.stack([data.first, data.second], -1),
                                torch.stack([data.second, data.first], -1)], 1).reshape(-1, 2)
        y = data.prefer_first.double()
        weight = torch.stack([data.weight * y, data.weight * (1 - y)], -1).reshape(-1)
        return cls(data.trajectories, rankings, torch.zeros(len(rankings), 1, dtype=torch.bool), weight,
                   data.is_population, f"from_pairs({data.source})")

    @classmethod
    def sampled(cls, task: Any, teacher: str | Labeller, rank: int, count: int, *, seed: int = 0,
                keys: Keys | None = None, policy: torch.Tensor | None = None, length: int | None = None,
                ) -> RankingData:
        """``count`` queries of ``rank`` (K) trajectories rolled out from ``policy`` (``[S, A]`` or
        ``[H, S, A]``; default uniform) over ``length`` steps (default the horizon), ranked by ``teacher``
        (a labeller that ranks: :meth:`rlhf.Teacher.rank`; a teacher with a tie model is a pair model and
        is refused). The draws are under ``keys`` (default ``Keys.from_seeds([seed])[0]``): the rollout
        under ``keys.fold(1)``, the teacher under ``keys.fold(2)`` (as :meth:`rlhf.PreferenceData.sampled`);
        unanswered queries stay, with weight 0."""
        K = _check_rank(rank)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an integer >= 1, got {count!r}")
        mdp = task.mdp
        keys = Keys.from_seeds([seed], device=mdp.start.device)[0] if keys is None else keys
        if keys.shape != ():
            raise ValueError(f"keys must be a single key (shape ()), got shape {tuple(keys.shape)}")
        labeller = labeller_from_spec(resolve_teacher_spec(teacher)) if isinstance(teacher, str) else teacher
        if isinstance(labeller, Teacher) and not labeller.ranks:
            raise ValueError(f"teacher {str(labeller)!r} has a tie model, a pair model: it does not rank "
                             f"(pairs with ties are rlhf.PreferenceData.sampled)")
        behaviour = uniform_policy(mdp) if policy is None else torch.as_tensor(policy)
        T = length or task.horizon
        traj = rollout(mdp, behaviour, K * count, T, keys.fold(SAMPLE))
        segments = Trajectories(*(x.view(K, count, T).transpose(0, 1).contiguous()
                                  for x in (traj.states, traj.actions)))            # [count, K, T]
        model = preference_model(getattr(labeller, "preference_model", PARTIAL_RETURN))
        truths = truths_of(task)
        scores = step_rewards(model.step_scores(truths), segments)                   # [count, K, T]
        first, second = (Trajectories(segments.states[:, k], segments.actions[:, k]) for k in (0, 1))
        labels = labeller.answer(Query(first, second, scores[:, 0], scores[:, 1], model.score_range(truths),
                                       keys.fold(TEACHER), segments=segments, segment_scores=scores))
        if labels.ranking is None:
            raise ValueError(f"teacher {str(labeller)!r} gave no ranking (Labels.ranking) to queries of {K} segments")
        tied = labels.tied if labels.tied is not None else torch.zeros(count, K - 1, dtype=torch.bool)
        return cls.of(segments, labels.ranking.expand(count, K), tied.expand(count, K - 1),
                      labels.answered.expand(count), source=f"sampled({teacher}, {count} rankings of {K})")

    @classmethod
    def population(cls, task: Any, teacher: str | Teacher = "boltzmann:1", rank: int = 3, *,
                   policy: torch.Tensor | None = None, length: int | None = None, scores: torch.Tensor | None = None,
                   max_rankings: int = 1 << 24) -> RankingData:
        """Every set of ``rank`` (K) distinct trajectories of ``length`` steps (default the horizon) that
        ``policy`` (default uniform) rolls out, with weight ``Π_k p_k`` normalised over the sets (K
        independent rollouts are that set, given they differ), each ranked every way the teacher can rank
        it, at its exact probability (float64): a Boltzmann teacher's Plackett–Luce probability of
        ``β·R`` (the oracle's sorted order), mixed over the ``2^(K−1)`` patterns of its adjacent
        ``mistake`` swaps, with the tie flags of ``equal`` (and the oracle's ``"half"`` ties) and a set no
        segment of which reaches ``skip`` left out, as :meth:`rlhf.Teacher.rank` draws them. A set's
        segments are in trajectory-index order (what the oracle's ``"second"`` ties read). Rankings of
        probability 0 are left out. ``scores``: as :meth:`rlhf.PreferenceData.population`. ValueError when
        more than ``max_rankings`` (sets × K!) would be needed."""
        K = _check_rank(rank)
        labeller = Teacher.parse(teacher) if isinstance(teacher, str) else teacher
        if not isinstance(labeller, Teacher):
            raise ValueError(f"a population needs a simulated teacher's exact probabilities (an rlhf.Teacher or "
                             f"its spec), got {teacher!r}")
        if not labeller.ranks:
            raise ValueError(f"teacher {str(labeller)!r} has a tie model, a pair model: it does not rank "
                             f"(pairs with ties are rlhf.PreferenceData.population)")
        mdp, T = task.mdp, length or task.horizon
        trajectories, probs = enumerate_trajectories(mdp, policy, T)
        N = probs.shape[0]
        if N < K:
            raise ValueError(f"rank {K} needs at least {K} trajectories, the task has {N}")
        needed = math.comb(N, K) * math.factorial(K)
        if needed > max_rankings:
            raise ValueError(f"{N} trajectories make {needed} rankings of {K}, more than max_rankings={max_rankings}")
        truths = truths_of(task)
        table = labeller.preference_model.step_scores(truths) if scores is None else torch.as_tensor(scores)
        step_scores = (_time_indexed_scores(table, trajectories) if table.dim() == 3 and scores is not None
                       else step_rewards(table, trajectories)).double()                  # [N, T]
        low, high = (float(table.min()), float(table.max())) if scores is not None else \
            labeller.preference_model.score_range(truths)
        plain = step_scores.sum(-1)
        returns = plain if labeller.myopic == 1.0 else \
            (step_scores * labeller.myopic ** torch.arange(T - 1, -1, -1, dtype=torch.float64)).sum(-1)
        scale = T * (high - low) if high > low else 1.0
        normalised = (plain - T * low) / scale

        sets = torch.combinations(torch.arange(N), K)                                   # [C, K]
        orders = ranks.all_orders(K)                                                     # [K!, K]
        R = returns[sets]                                                                # [C, K]
        if math.isinf(labeller.beta):
            best = ranks.sorted_order(R, labeller.ties)
            p = (orders.unsqueeze(0) == best.unsqueeze(1)).all(-1).double()              # [C, K!]
        else:
            logits = (labeller.beta * R).unsqueeze(1).expand(-1, len(orders), K)
            p = ranks.plackett_luce_log_probability(logits, orders.expand(len(sets), -1, -1)).exp()
        if labeller.mistake:
            p = _with_mistakes(p, orders, labeller.mistake)
        tied = torch.zeros(len(sets), len(orders), K - 1, dtype=torch.bool)
        if math.isinf(labeller.beta) and labeller.ties == "half":
            ranked = R[:, orders]                                                        # [C, K!, K] by position
            tied |= ranked[..., :-1] == ranked[..., 1:]
        if labeller.equal:
            ranked = normalised[sets][:, orders]
            tied |= (ranked[..., :-1] - ranked[..., 1:]).abs() < labeller.equal
        weight = probs[sets].prod(-1)
        if labeller.skip:
            weight = weight * (normalised[sets].amax(-1) >= labeller.skip)
        total = float(weight.sum())
        weight = (weight / total if total > 0 else weight).unsqueeze(-1) * p                # [C, K!]
        keep = (weight > 0).reshape(-1)
        rankings = sets[:, orders].reshape(-1, K)[keep]
        return cls(trajectories, rankings, tied.reshape(-1, K - 1)[keep], weight.reshape(-1)[keep],
                   is_population=True, source=f"population({labeller}, rank {K}, {N} trajectories)")


def _check_rank(rank: Any) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 2:
        raise ValueError(f"rank must be an integer >= 2, got {rank!r}")
    return rank


def _with_mistakes(p: torch.Tensor, orders: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``p[C, K!]`` over orders after B-Pref's adjacent swaps (:func:`rlhf.preferences.rankings.adjacent_mistakes`:
    for j = 0, …, K − 2 in turn the segments then at j and j + 1 swap with probability ε), exactly: mixed
    over the 2^(K−1) swap patterns."""
    K = orders.shape[-1]
    index = {tuple(o): i for i, o in enumerate(orders.tolist())}
    out = torch.zeros_like(p)
    for pattern in range(1 << (K - 1)):
        swaps = [pattern >> j & 1 for j in range(K - 1)]
        u = torch.tensor([0.0 if s else 1.0 for s in swaps], dtype=torch.float64)        # u < ε swaps
        after = ranks.adjacent_mistakes(orders, u.expand(len(orders), K - 1), epsilon)
        target = torch.tensor([index[tuple(o)] for o in after.tolist()])
        chance = epsilon ** sum(swaps) * (1 - epsilon) ** (K - 1 - sum(swaps))
        out.index_add_(1, target, chance * p)
    return out
