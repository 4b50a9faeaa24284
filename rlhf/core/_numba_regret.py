"""The numba kernels of the regret learner's step (imported by :mod:`rlhf.core.compiled` on first use).

One optimiser step of Knox et al.'s (2022) regret learner on a deterministic MDP (no action noise,
γ = 1, the hard max) is H backups forward, a sparse product per pair, H backups back and a scatter
onto the model's features: a few hundred torch calls on tensors of a few hundred elements, so the
torch path is dispatch-bound. Here it is two calls, each a row at a time (a row's bits do not
depend on its batch), in an order written out below, with the arithmetic of
:mod:`rlhf.core.compiled`: exact operations (max, compare, gather) and IEEE adds and multiplies
one at a time, which numba compiles without fast-math (no reordering, no FMA contraction), so the
bits are the same on every x86-64 CPU whatever its vector width (``tests/rlhf/test_compiled_regret.py``
compiles them for AVX2 and AVX-512 targets and compares). No transcendental function: the sigmoid
between the two calls stays torch's pinned kernel.

- :func:`advantages_and_logits`: the hard-max backward induction, the exact operations of
  :func:`rlhf.core.advantages.soft_advantages` at κ = ∞ (so ``A`` is :func:`rlhf.optimal_advantages`
  bit for bit), its greedy policies (ties split evenly), and each pair's ``−z = −Σ_j A[j]·C[i, j]``
  summed over its nonzero count differences in ascending j (the dense sum's order; zeros add nothing).
- :func:`regret_gradient`: ``G[j] = Σ_i (σ_i − y_i)·w_i·C[i, j]`` in pair order, the recurrence of
  :func:`rlhf.core.advantages.advantage_vjp` (``∂/∂r`` accumulated from the top step down), then
  each reward entry's gradient added onto its model feature in index order.

Pairs come as padded sparse rows (:func:`sparse_pairs`): ``index[R, N, K]`` (ascending, −1 after
the last) and ``count[R, N, K]``.
"""

import numba
import numpy

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def sparse_pairs(counts, index, count):
    # counts[R, N, J] -> each pair's nonzero entries in ascending j, padded with index -1
    R, N, J = counts.shape
    for b in range(R):
        for i in range(N):
            k = 0
            for j in range(J):
                c = counts[b, i, j]
                if c != 0:
                    index[b, i, k] = j
                    count[b, i, k] = c
                    k += 1
            for rest in range(k, index.shape[2]):
                index[b, i, rest] = -1
                count[b, i, rest] = 0


@_jit
def advantages_and_logits(reward, successor, advantages, policies, index, count, minus_z):
    # reward[R, 1 or A, S]; successor[A·S] action-major; out: advantages[R, A, S], policies[H, R, A, S]
    # (π_1 … π_H), minus_z[R, N] of the pairs index/count[R, N, K]
    R, A, S = advantages.shape
    H = policies.shape[0]
    state_reward = reward.shape[1] == 1
    v = numpy.empty(S, numpy.float32)
    v_next = numpy.empty(S, numpy.float32)
    q = numpy.empty((A, S), numpy.float32)
    for b in range(R):
        for s in range(S):
            v[s] = numpy.float32(0.0)              # V_0 = max_a Q_0 = 0
        for i in range(H):
            for a in range(A):
                ra = 0 if state_reward else a
                for s in range(S):
                    q[a, s] = reward[b, ra, s] + v[successor[a * S + s]]
            for s in range(S):
                m = q[0, s]
                for a in range(1, A):
                    if q[a, s] > m or q[a, s] != q[a, s]:     # as torch.amax: a NaN wins (a diverged fit shows)
                        m = q[a, s]
                v_next[s] = m
                ties = 0
                for a in range(A):
                    if q[a, s] == m:
                        ties += 1
                if ties == 0:                                  # m is NaN: torch's weights are 0/0
                    for a in range(A):
                        policies[i, b, a, s] = numpy.float32(numpy.nan)
                    continue
                share = numpy.float32(1.0) / numpy.float32(ties)
                for a in range(A):
                    policies[i, b, a, s] = share if q[a, s] == m else numpy.float32(0.0)
            v, v_next = v_next, v
        for a in range(A):
            for s in range(S):
                advantages[b, a, s] = q[a, s] - v[s]
        flat = advantages[b].reshape(A * S)
        for i in range(index.shape[1]):
            z = numpy.float32(0.0)
            for k in range(index.shape[2]):
                j = index[b, i, k]
                if j < 0:
                    break
                z += flat[j] * count[b, i, k]
            minus_z[b, i] = -z


@_jit
def regret_gradient(sigma, y, weight, index, count, policies, successor, features, grad):
    # sigma, y, weight[R, N]; policies[H, R, A, S]; features[A·S] -> model feature; out: grad[R, F]
    H, R, A, S = policies.shape
    g = numpy.empty(A * S, numpy.float32)         # the cotangent G of A, then ∂/∂r
    top = numpy.empty(A * S, numpy.float32)
    g_v = numpy.empty(S, numpy.float32)
    g_v_next = numpy.empty(S, numpy.float32)
    for b in range(R):
        g[:] = 0
        for i in range(index.shape[1]):
            d = (sigma[b, i] - y[b, i]) * weight[b, i]
            for k in range(index.shape[2]):
                j = index[b, i, k]
                if j < 0:
                    break
                g[j] += d * count[b, i, k]
        # G_{Q_H} = G − π_H·Σ_a G; then G_{V_{H−1}}(s') = Σ_{(a, s) → s'} G_{Q_H}(s, a)
        g_v[:] = 0
        for s in range(S):
            total = numpy.float32(0.0)
            for a in range(A):
                total += g[a * S + s]
            for a in range(A):
                top[a * S + s] = g[a * S + s] - policies[H - 1, b, a, s] * total
        for j in range(A * S):
            g_v[successor[j]] += top[j]
        # ∂/∂r = G_{Q_H} + Σ_{i = H−1 … 1} π_i ⊙ G_{V_i}, and G_{V_{i−1}} = scatter(π_i ⊙ G_{V_i})
        for i in range(H - 1, 0, -1):
            g_v_next[:] = 0
            for a in range(A):
                for s in range(S):
                    flow = policies[i - 1, b, a, s] * g_v[s]
                    top[a * S + s] += flow
                    g_v_next[successor[a * S + s]] += flow
            g_v, g_v_next = g_v_next, g_v
        for f in range(grad.shape[1]):
            grad[b, f] = 0
        for j in range(A * S):
            grad[b, features[j]] += top[j]
