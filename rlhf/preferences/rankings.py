"""Rankings of K segments: Plackett–Luce draws, the B-Pref noise applied to a ranking, and what a
ranking says about a pair.

A ranking of the K segments of a query is ``order[..., K]`` (int64, the segments' indices, best
first) and ``tied[..., K − 1]`` (bool, ``tied[j]``: the segments at positions j and j + 1 are
equal). Tied positions chain: the ranking is an ordered partition of the segments into groups of
consecutive positions (:func:`group_ids`).

Plackett–Luce (Luce, 1959; Plackett, 1975) with logits ``x = β·R``: the first segment is drawn from
``softmax(x)`` over the K, the next from the softmax over the rest, and so on::

    P(order) = Π_{s=0}^{K−2} exp(x[order_s]) / Σ_{j ≥ s} exp(x[order_j])

:func:`sample_plackett_luce` draws it exactly so, one stage at a time, by inverse CDF (stage s of
a ranking uses its own uniform ``u_s``: the first remaining segment, in index order, whose cumulative
weight exceeds ``u_s`` times the remaining total). At K = 2 that is the pair teacher's Bernoulli
draw. Every step is elementwise, a row-wise cumulative sum over the K segments, or exact integer
arithmetic, so a ranking does not depend on the batch around it.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch


def sample_plackett_luce(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """``order[..., K]`` drawn from Plackett–Luce with ``logits[..., K]`` (finite), by sequential
    inverse CDF with ``uniforms[..., K − 1]`` in [0, 1) (one per stage; see the module docstring)."""
    K = logits.shape[-1]
    remaining = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
    index = torch.arange(K, device=logits.device)
    picks = []
    for s in range(K - 1):
        masked = torch.where(remaining, logits, -torch.inf)
        weights = torch.exp(masked - masked.amax(-1, keepdim=True))           # 0 where already ranked
        cumulative = torch.cumsum(weights, -1)
        target = uniforms[..., s:s + 1] * cumulative[..., -1:]
        pick = (cumulative <= target).sum(-1, keepdim=True)                   # first with cumulative > target
        last = (K - 1) - torch.flip(remaining, [-1]).to(torch.int8).argmax(-1, keepdim=True)   # guard: < K
        pick = torch.minimum(pick, last)
        picks.append(pick)
        remaining = remaining & (index != pick)
    picks.append(remaining.to(torch.int8).argmax(-1, keepdim=True))
    return torch.cat(picks, -1)


def sorted_order(returns: torch.Tensor, ties: str = "half") -> torch.Tensor:
    """``order[..., K]``: the segments by decreasing ``returns[..., K]`` (a noiseless teacher); equal
    returns keep index order (``ties="half"``: they are then marked tied) or, with ``"second"``, the
    later segment goes first (the pair oracle's "ties to the second")."""
    if ties == "second":
        K = returns.shape[-1]
        flipped = torch.sort(torch.flip(returns, [-1]), dim=-1, descending=True, stable=True).indices
        return (K - 1) - flipped
    return torch.sort(returns, dim=-1, descending=True, stable=True).indices


def adjacent_mistakes(order: torch.Tensor, uniforms: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The ranking after B-Pref's mistakes: for j = 0, …, K − 2 in turn, the segments now at positions
    j and j + 1 swap places with probability ε (``uniforms[..., j] < ε``). Each of the K − 1 adjacent
    judgements a ranking rests on is wrong independently; at K = 2 it is the pair teacher's flip."""
    columns = list(order.unbind(-1))
    for j in range(len(columns) - 1):
        swap = uniforms[..., j] < epsilon
        columns[j], columns[j + 1] = (torch.where(swap, columns[j + 1], columns[j]),
                                      torch.where(swap, columns[j], columns[j + 1]))
    return torch.stack(columns, -1)


def at_positions(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``values[..., K]`` of the segments in ranking order: ``out[..., p] = values[..., order[p]]``."""
    return torch.take_along_dim(values, order, dim=-1)


def group_ids(tied: torch.Tensor) -> torch.Tensor:
    """``[..., K]`` int64: the tie group of each *position* (0 for the first, one more after every
    position not tied to the next)."""
    zero = torch.zeros((*tied.shape[:-1], 1), dtype=torch.int64, device=tied.device)
    return torch.cat([zero, torch.cumsum((~tied).to(torch.int64), -1)], -1)


def positions(order: torch.Tensor) -> torch.Tensor:
    """``[..., K]`` the position of each segment in the ranking (the inverse permutation)."""
    index = torch.arange(order.shape[-1], device=order.device).expand(order.shape)
    return torch.empty_like(order).scatter_(-1, order, index)


def prefer_first_of(order: torch.Tensor, tied: torch.Tensor) -> torch.Tensor:
    """``[...]`` float: what the ranking says of segments 0 and 1 as a pair label: 1 (0 is ahead),
    0 (1 is ahead) or 0.5 (tied)."""
    where = positions(order)
    groups = torch.take_along_dim(group_ids(tied), where[..., :2], dim=-1)
    ahead = (where[..., 0] < where[..., 1]).float()
    return torch.where(groups[..., 0] == groups[..., 1], 0.5, ahead)


@functools.cache
def all_orders(K: int) -> torch.Tensor:
    """``[K!, K]`` every order of K segments, lexicographically."""
    return torch.tensor(list(itertools.permutations(range(K))), dtype=torch.int64)


def plackett_luce_log_probability(logits: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``[...]`` log P(order) under Plackett–Luce with ``logits[..., K]`` (the module's formula)."""
    x = at_positions(logits, order)
    suffix = torch.flip(torch.logcumsumexp(torch.flip(x, [-1]), -1), [-1])      # logsumexp of x[s:]
    return (x - suffix)[..., :-1].sum(-1)


def plackett_luce_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``[...]`` the entropy (nats) of the Plackett–Luce distribution over orders of ``logits[..., K]``,
    by the chain rule over the subsets still to rank: ``H(S) = H(softmax(x_S)) + Σ_{i∈S} p_i·H(S∖i)``
    (2^K subsets, exact); 0 where a logit is infinite (a noiseless teacher)."""
    K = logits.shape[-1]
    finite = torch.isfinite(logits).all(-1)
    x = torch.where(finite.unsqueeze(-1), logits, 0.0)
    entropy = {1 << k: torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device) for k in range(K)}
    for subset in sorted(range(1, 1 << K), key=lambda s: bin(s).count("1")):
        members = [k for k in range(K) if subset >> k & 1]
        if len(members) < 2:
            continue
        part = x[..., members]
        log_p = part - torch.logsumexp(part, -1, keepdim=True)
        p = log_p.exp()
        total = -(p * log_p).sum(-1)
        for i, k in enumerate(members):
            total = total + p[..., i] * entropy[subset & ~(1 << k)]
        entropy[subset] = total
    return torch.where(finite, entropy[(1 << K) - 1], 0.0)


@functools.cache
def tie_groups(K: int, pattern: int) -> tuple[tuple[int, ...], ...]:
    """The tie groups (positions) of tie pattern ``pattern`` (bit j: positions j and j + 1 tied)."""
    groups, current = [], [0]
    for j in range(K - 1):
        if pattern >> j & 1:
            current.append(j + 1)
        else:
            groups.append(tuple(current))
            current = [j + 1]
    groups.append(tuple(current))
    return tuple(groups)


@functools.cache
def likelihood_tables(K: int, rule: str, may_tie: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a[P, K], masks[P, Q, K] bool, alpha[P, Q])`` float64 of a ranking's negative log-likelihood
    ``−a·x + Σ_q α_q·logsumexp(x[mask_q])`` (x: the K segments' logits at their positions, best first)
    for each tie pattern P (2^(K−1) patterns when ``may_tie``, else the untied one alone), by ``rule``:

    * ``"plackett-luce"``: Plackett–Luce averaged over the orders a pattern's ties allow; a tied group G
      above the positions O below it contributes ``Σ_{∅ ≠ B ⊆ G} logsumexp(x_{B ∪ O}) / C(|G|, |B|)``
      (B: what is left of the group at one of its stages) and ``−Σ_{p ∈ G} x_p``;
    * ``"pair-split"``: the mean Bradley–Terry loss of the C(K, 2) position pairs (a tied pair: ½ each way).

    Singleton terms are folded into ``a`` (``logsumexp`` of one x is x); patterns with fewer terms are
    padded with ``α = 0`` over every position. Exact fractions in float64; the reward learner, the
    ranking DPO and the teacher fit all read this one table."""
    patterns = range(1 << (K - 1)) if may_tie else range(1)
    rows = []
    for pattern in patterns:
        groups = tie_groups(K, pattern)
        a = [0.0] * K
        terms: list[tuple[tuple[int, ...], float]] = []
        if rule == "plackett-luce":
            a = [1.0] * K
            for j, group in enumerate(groups):
                below = tuple(p for later in groups[j + 1:] for p in later)
                for size in range(1, len(group) + 1):
                    for part in itertools.combinations(group, size):
                        weight = 1.0 / math.comb(len(group), size)
                        members = part + below
                        if len(members) == 1:
                            a[members[0]] -= weight
                        else:
                            terms.append((members, weight))
        elif rule == "pair-split":
            pairs = list(itertools.combinations(range(K), 2))
            group_of = {p: g for g, group in enumerate(groups) for p in group}
            for s, t in pairs:
                if group_of[s] == group_of[t]:
                    a[s] += 0.5 / len(pairs)
                    a[t] += 0.5 / len(pairs)
                else:
                    a[s] += 1.0 / len(pairs)
                terms.append(((s, t), 1.0 / len(pairs)))
        else:
            raise ValueError(f"rank_learner must be 'plackett-luce' or 'pair-split', got {rule!r}")
        rows.append((a, terms))
    Q = max(len(terms) for _, terms in rows)
    with torch.inference_mode(False):     # cached: normal tensors, usable by autograd whoever asks first
        masks = torch.ones(len(rows), Q, K, dtype=torch.bool)
        alpha = torch.zeros(len(rows), Q, dtype=torch.float64)
        for i, (_, terms) in enumerate(rows):
            for q, (members, weight) in enumerate(terms):
                masks[i, q] = False
                masks[i, q, list(members)] = True
                alpha[i, q] = weight
        return torch.tensor([a for a, _ in rows], dtype=torch.float64), masks, alpha
