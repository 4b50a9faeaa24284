"""The numba kernels behind :mod:`rlhf.core.compiled` (imported only by it, on first use).

Module-level functions, so numba's disk cache (``cache=True``, beside this file) finds them again
in every process: functions defined in a closure were compiled anew by each worker. See
:mod:`rlhf.core.compiled` for why their results are the torch code's bit for bit.
"""

import numba
import numpy
from numba import float32, int32, uint64

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)

_GOLDEN = uint64(0x9E3779B97F4A7C15)


@_jit
def splitmix(z):
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    return z ^ (z >> uint64(31))


@_jit
def word32(key, index):
    # Keys' word `index` under `key`: half (index % 2, low first) of mix(key + (index // 2)·φ)
    word = splitmix(key + uint64(index // 2) * _GOLDEN)
    if index % 2:
        word = word >> uint64(32)
    return word & uint64(0xFFFFFFFF)


@_jit
def draw31(key, index):
    # Keys.bits31's draw `index`: the top 31 bits of the word
    return int32(word32(key, index) >> uint64(1))


@_jit
def words(keys, out):
    # out[b, i] = word i under keys[b] (uint32)
    for b in range(keys.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = word32(keys[b], i)


@_jit
def uniform(keys, out):
    # Keys.uniform: the top 24 bits of each word times 2⁻²⁴ (both exact in float32)
    for b in range(keys.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = float32(word32(keys[b], i) >> uint64(8)) * float32(2.0 ** -24)


@_jit
def fold(keys, words, out):
    # Keys.fold: out[b] = mix(… mix(mix(keys[b] ^ words[0]) ^ words[1]) …)
    for b in range(keys.shape[0]):
        z = keys[b]
        for w in words:
            z = splitmix(z ^ w)
        out[b] = z


@_jit
def rollout(keys, start_cdf, cdf, successor, action_of, states_per_key, block, states, actions):
    # rlhf.rollout's draws and walk. Trajectory j of key b starts in the number of start-CDF
    # entries below its draw j; at step t its outcome o is the number of its row's CDF entries
    # (cdf[r, o]) below its draw (t + 1)·num + j, its successor row successor[r, o]. Rows are
    # global (b·S + s); a time-indexed table's step t reads block t (row r + t·block). Key by
    # key (its trajectories stay in cache), step by step (its trajectories are independent
    # chains of loads, which the CPU overlaps).
    num, steps = states.shape[1], states.shape[2]
    rows = numpy.empty(num, numpy.int64)
    for b in range(keys.shape[0]):
        key, base = keys[b], b * states_per_key
        for j in range(num):
            draw = draw31(key, j)
            row = base
            for entry in start_cdf:
                if entry < draw:
                    row += 1
            rows[j] = row
        for t in range(steps):
            shift = t * block
            for j in range(num):
                row = rows[j] + shift
                draw = draw31(key, (t + 1) * num + j)
                outcome = 0
                for entry in cdf[row]:
                    if entry < draw:
                        outcome += 1
                states[b, j, t] = rows[j] - base
                actions[b, j, t] = action_of[outcome]
                rows[j] = successor[row, outcome] - shift


@_jit
def step_sums(values, out):
    # out[i] = ((values[i, 0] + values[i, 1]) + values[i, 2]) + ..., in step order
    for i in range(values.shape[0]):
        total = values[i, 0]
        for t in range(1, values.shape[1]):
            total += values[i, t]
        out[i] = total


@_jit
def mix(x):
    # SplitMix64's finaliser in place on uint64 (wrapping multiplies, logical shifts)
    for i in range(x.shape[0]):
        z = x[i]
        z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
        x[i] = z ^ (z >> uint64(31))

