"""Counter-based random numbers: every draw is a pure function of (key, index).

A stateful generator hands out numbers in call order, so what seed k sees
would depend on which other seeds share its batch and on how many numbers
were drawn before. Here a draw is ``mix(key + index·φ)`` instead, with
``mix`` SplitMix64's finaliser (Steele, Lea and Flood, 2014) and φ the 64-bit
golden ratio, in the spirit of Random123's Philox (Salmon et al., 2011) and
JAX's keys: :meth:`Keys.fold` derives a child key from (purpose, round, step),
and the numbers under a key are the same alone or in a batch of a thousand,
on any device.

The arithmetic is 64-bit integer multiply, xor and shift, which torch does
bit-exactly everywhere (multiplication wraps modulo 2⁶⁴); a logical right
shift is an arithmetic one with the sign bits masked off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy
import torch

from . import compiled

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 torch stores it."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _mix_int(x: int) -> int:
    """SplitMix64's finaliser on a Python int (the reference for :func:`_mix`)."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * _MIX_1) & _MASK64
    x = ((x ^ (x >> 27)) * _MIX_2) & _MASK64
    return x ^ (x >> 31)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser, elementwise and in place on int64 tensors (a bijection of
    64-bit patterns); ``(x >> k) & (2^(64−k) − 1)`` is the logical shift. Compiled on the CPU
    (:mod:`rlhf.core.compiled`: one call, not nine)."""
    if x.is_contiguous() and compiled.loaded() and compiled.available(x):
        compiled.kernels().mix(x.view(-1).numpy().view(numpy.uint64))
        return x
    x.bitwise_xor_((x >> 30).bitwise_and_((1 << 34) - 1)).mul_(_signed(_MIX_1))
    x.bitwise_xor_((x >> 27).bitwise_and_((1 << 37) - 1)).mul_(_signed(_MIX_2))
    return x.bitwise_xor_((x >> 31).bitwise_and_((1 << 33) - 1))


@dataclass(frozen=True)
class Keys:
    """A batch of 64-bit keys (``key[...]`` int64), one per seed; draws get the key's shape in front.

    ``Keys.from_seeds([0, 1, 2]).fold(SAMPLE, round).uniform(100)`` is ``[3, 100]``, and its
    row k equals ``Keys.from_seeds([k]).fold(SAMPLE, round).uniform(100)[0]`` bit for bit.
    """

    key: torch.Tensor

    @classmethod
    def from_seeds(cls, seeds: Iterable[int], device: torch.device | str | None = None) -> Keys:
        """One key per seed (integers in [0, 2⁶³))."""
        values = [_signed(_mix_int(_mix_int(int(s)) ^ _GOLDEN)) for s in seeds]
        return cls(torch.tensor(values, dtype=torch.int64, device=device))

    @property
    def shape(self) -> torch.Size:
        return self.key.shape

    @property
    def device(self) -> torch.device:
        return self.key.device

    def __getitem__(self, index: int | slice | torch.Tensor) -> Keys:
        return Keys(self.key[index])

    def fold(self, *words: int) -> Keys:
        """Child keys for a purpose, round, step...: a different word gives an independent stream."""
        hashed = [_mix_int(int(word) + _GOLDEN) for word in words]
        if compiled.loaded() and compiled.available(self.key):      # one call, not two a word
            out = torch.empty_like(self.key)
            compiled.kernels().fold(_unsigned(self.key), numpy.array(hashed, dtype=numpy.uint64), _unsigned(out))
            return Keys(out)
        key = self.key
        for word in hashed:
            key = _mix(key ^ _signed(word))
        return Keys(key)

    def bits(self, n: int) -> torch.Tensor:
        """``[..., n]`` int64 draws in [0, 2³²): draws 2i and 2i + 1 are the low and high
        halves of ``mix(key + i·φ)``."""
        return self._words(n).to(torch.int64).bitwise_and_(0xFFFFFFFF)

    def bits31(self, n: int) -> torch.Tensor:
        """``[..., n]`` int32 draws in [0, 2³¹): the top 31 bits of :meth:`bits`."""
        return _top31(self._words(n))

    def bits31_grid(self, rows: int, cols: int) -> torch.Tensor:
        """``[rows, ..., cols]`` int32: draw ``r·cols + c`` of :meth:`bits31` at ``[r, ..., c]``, with the
        key's shape in the middle, so a loop over rows reads every key's draws contiguously. For
        an even ``cols`` each row is whole hashes, made in that layout (no transposing copy)."""
        if cols % 2:
            return self.bits31(rows * cols).view(*self.shape, rows, cols).movedim(-2, 0).contiguous()
        counters = torch.arange(rows * cols // 2, dtype=torch.int64, device=self.device)
        return _top31(self._halves(counters.view(rows, *(1,) * self.key.dim(), cols // 2)))

    def uniform(self, n: int) -> torch.Tensor:
        """``[..., n]`` float32 uniforms in [0, 1), multiples of 2⁻²⁴ (exact in float32): the top
        24 bits of :meth:`bits`."""
        if compiled.loaded() and compiled.available(self.key):     # the same arithmetic, one call
            out = torch.empty(*self.shape, n)
            compiled.kernels().uniform(_unsigned(self.key), out.view(self.key.numel(), n).numpy())
            return out
        return (self._words(n) >> 8).bitwise_and_(0xFFFFFF).float().mul_(2.0 ** -24)

    def normal(self, n: int) -> torch.Tensor:
        """``[..., n]`` float32 standard normal draws (Box–Muller on pairs of uniforms)."""
        u = self.uniform(2 * n).view(*self.shape, n, 2)
        radius = torch.sqrt(-2.0 * torch.log1p(-u[..., 0]))      # 1 − u in (0, 1]: log is finite
        return radius * torch.cos((2 * torch.pi) * u[..., 1])

    def _words(self, n: int) -> torch.Tensor:
        """``[..., n]`` int32 halves of the hashes of counters 0, 1, ..."""
        if compiled.loaded() and compiled.available(self.key):     # the same words, one call
            out = torch.empty(*self.shape, n, dtype=torch.int32)
            compiled.kernels().words(_unsigned(self.key), out.view(self.key.numel(), n).numpy().view(numpy.uint32))
            return out
        return self._halves(torch.arange((n + 1) // 2, dtype=torch.int64, device=self.device))[..., :n]

    def _halves(self, counters: torch.Tensor) -> torch.Tensor:
        """int32 halves of ``mix(key + counter·φ)``, low half first (a free reinterpretation on every
        little-endian device): ``[..., 2h]`` for int64 ``counters[..., h]`` broadcast against
        ``key[..., None]``. Mixed as one flat tensor: torch's int64 shifts run about twice as fast on
        a flat view as on a 3-d tensor (measured)."""
        hashed = self.key.unsqueeze(-1) + counters.mul(_signed(_GOLDEN))
        return _mix(hashed.view(-1)).view(torch.int32).view(*hashed.shape[:-1], 2 * hashed.shape[-1])


def _unsigned(keys: torch.Tensor) -> numpy.ndarray:
    """int64 ``keys`` as a flat uint64 array sharing their memory (for :mod:`rlhf.core.compiled`)."""
    return keys.reshape(-1).numpy().view(numpy.uint64)


def _top31(words: torch.Tensor) -> torch.Tensor:
    """The top 31 bits of int32 words, as int32 in [0, 2³¹) (a logical shift)."""
    return (words >> 1).bitwise_and_(0x7FFFFFFF)
