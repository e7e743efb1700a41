"""Input encodings of odd integers for discriminators, in NumPy (exact, no TensorFlow).

Two views of residues live here and keep apart names: `fourier_features` (cos/sin of n mod p,
the forgetting benchmark's "fourier" encoding) and `divisibility_features` (one bit per prime:
the discriminator="residue" models' FactorEncoding, a name saved in shipped config.json files).

The seed fed the discriminator the raw real x; a network cannot read divisibility from a single
float, and float32 cannot even resolve integers above 2**24. These encodings expose exact
residues instead, computed in int64 (exact for every n < 2**53).
"""

from __future__ import annotations

import numpy as np

from optimus.primes import small_odd_primes
from optimus.primes.bigint import residues

ENCODINGS = ("scalar", "fourier")
# "residue" was this Fourier encoding's first name (forgetting-benchmark settings, saved results
# and --encoding links use it); "residue" now means divisibility bits (discriminator="residue"),
# so the old name is read as "fourier" and never written
_OLD_NAMES = {"residue": "fourier"}


def fourier_features(n, primes) -> np.ndarray:
    """[cos(2 pi r/p), sin(2 pi r/p)] per prime: a smooth, periodic view of each residue."""
    r = residues(np.asarray(n, dtype=np.int64), primes).astype(np.float64)
    angle = 2.0 * np.pi * r / np.asarray(primes, dtype=np.float64)
    return np.concatenate([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)


def divisibility_features(n, primes) -> np.ndarray:
    """1 where p divides n. By Dirichlet's theorem the non-zero residues of a large n carry no
    information about its primality, so this one bit per prime is all a residue says."""
    return (residues(np.asarray(n, dtype=np.int64), primes) == 0).astype(np.float32)


def log_magnitude(n, lo: float = 1.0, hi: float = 2.0**53) -> np.ndarray:
    """log(n) scaled to about [0, 1] over [lo, hi]: prime density falls like 1/ln n."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    return ((np.log(n) - np.log(lo)) / (np.log(hi) - np.log(lo))).astype(np.float32).reshape(-1, 1)


def scalar_features(n, scale: float = 1e9) -> np.ndarray:
    """The seed's view: the integer itself as one real, scaled to O(1)."""
    return (np.asarray(n, dtype=np.float64) / scale).astype(np.float32).reshape(-1, 1)


def encoding_name(encoding: str) -> str:
    """The current name of an encoding ('scalar' or 'fourier'; the old 'residue' reads as
    'fourier'), or ValueError listing the choices."""
    name = _OLD_NAMES.get(encoding, encoding)
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    return name


def encode(n, encoding: str, prime_max: int = 97) -> np.ndarray:
    """Features for `n` under a named encoding: 'scalar' or 'fourier' (cos/sin of n mod each
    odd prime <= prime_max, plus log size)."""
    if encoding_name(encoding) == "scalar":
        return scalar_features(n)
    primes = small_odd_primes(prime_max)
    return np.concatenate([fourier_features(n, primes), log_magnitude(n)], axis=1)


def window_factor_lists(n0, window: int, primes, slots: int) -> np.ndarray:
    """FactorEncoding's factor lists for windows of consecutive odd candidates, in NumPy.

    n0 [B] (odd, int64): first candidates; the windows hold n0 + 2j, j < window. Returns int32
    [B * window, slots]: per candidate, the 1-based indices into `primes` of the primes that
    divide it (n != p), largest index first, 0 for an empty slot, exactly as
    optimus.nets.layers.FactorEncoding lays them out. A prime p divides the candidates at
    j = (-n0) * 2^-1 mod p, then every p further, so a window costs [B, K] residues instead of
    the [B * window, K] that arbitrary integers need (measured: 32,768 candidates x 3,400
    primes in 0.13 s, against 0.5-0.8 s for the layer, on the shared 2-core machine).
    """
    n0 = np.asarray(n0, dtype=np.int64).reshape(-1)
    primes = np.asarray(primes, dtype=np.int64)
    rows_total = n0.size * window
    if rows_total == 0 or primes.size == 0:
        return np.zeros((rows_total, slots), dtype=np.int32)
    first = ((primes - n0[:, None] % primes) * ((primes + 1) // 2)) % primes  # [B, K]
    rows, cols = [], []
    small = int(np.searchsorted(primes, window))  # primes below the window may divide several
    for m in range((window - 1) // int(primes[0]) + 1):
        ks = slice(None) if m == 0 else slice(0, small)
        j = first[:, ks] + m * primes[ks]
        b, k = np.nonzero(j < window)
        row = b * window + j[b, k]
        keep = n0[b] + 2 * j[b, k] != primes[k]
        rows.append(row[keep])
        cols.append(k[keep])
    return factor_layout(np.concatenate(rows), np.concatenate(cols), rows_total, slots)


class Divisibility:
    """Exact "p divides n" for many n against fixed odd primes, with one wrapping multiply and
    one compare per pair instead of an integer division: for odd p, p divides m >= 0 exactly
    when m * p^-1 mod 2^w <= (2^w - 1) // p (p^-1 the inverse of p mod 2^w; multiplying by it
    permutes the residues mod 2^w and maps the multiples of p, 0 .. (2^w - 1) // p times p, onto
    0 .. (2^w - 1) // p). w = 32 when every |n| < 2^32, else 64. Measured: 10,000 n x 3,400
    primes in about 0.02 s against 0.23-0.35 s for NumPy's int64 `%` (shared 2-core machine)."""

    def __init__(self, primes):
        self.primes = np.asarray(primes, dtype=np.int64).reshape(-1)
        if self.primes.size and not (self.primes % 2).all():
            raise ValueError("Divisibility takes odd primes only")
        p = self.primes.astype(np.uint64)
        inverse = p.copy()  # Newton's iteration doubles the correct low bits: 3, 6, ..., 96 >= 64
        with np.errstate(over="ignore"):
            for _ in range(5):
                inverse *= np.uint64(2) - p * inverse
        self._inverse = {np.uint64: inverse, np.uint32: (inverse & np.uint64(2**32 - 1)).astype(np.uint32)}
        self._limit = {np.uint64: np.uint64(2**64 - 1) // np.maximum(p, 1),
                       np.uint32: (np.uint64(2**32 - 1) // np.maximum(p, 1)).astype(np.uint32)}

    def pairs(self, n, chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """(row, prime index) of every prime that divides n[row] with n != p, by row (n: int64 [B])."""
        n = np.asarray(n, dtype=np.int64).reshape(-1)
        if n.size == 0 or self.primes.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        magnitude = np.abs(n)  # p divides n exactly when it divides |n|
        kind = np.uint32 if int(magnitude.max()) < 2**32 else np.uint64
        m, inverse, limit = magnitude.astype(kind), self._inverse[kind], self._limit[kind]
        buffer = np.empty((min(chunk, n.size), self.primes.size), dtype=kind)
        rows, cols = [], []
        with np.errstate(over="ignore"):
            for start in range(0, n.size, chunk):
                product = np.multiply(m[start : start + chunk, None], inverse, out=buffer[: min(chunk, n.size - start)])
                b, k = np.divmod(np.flatnonzero(product <= limit), self.primes.size)  # (2-D nonzero: 6x slower)
                keep = n[start + b] != self.primes[k]  # a prime is not its own factor
                rows.append(start + b[keep])
                cols.append(k[keep])
        return np.concatenate(rows), np.concatenate(cols)

    def matrix(self, n, chunk: int = 128) -> np.ndarray:
        """bool [B, K]: prime k divides n[b] and n[b] != prime k."""
        n = np.asarray(n, dtype=np.int64).reshape(-1)
        out = np.zeros((n.size, self.primes.size), dtype=bool)
        rows, cols = self.pairs(n, chunk)
        out[rows, cols] = True
        return out


def factor_lists(n, primes, slots: int, chunk: int = 128) -> np.ndarray:
    """FactorEncoding's factor lists for any odd n [B] (int64, < 2**53), in NumPy: int32
    [B, slots], the 1-based indices of the primes dividing n (n != p), largest first, 0 for
    an empty slot (`Divisibility`: no integer division)."""
    n = np.asarray(n, dtype=np.int64).reshape(-1)
    rows, cols = Divisibility(primes).pairs(n, chunk)
    return factor_layout(rows, cols, n.size, slots)


def factor_layout(rows: np.ndarray, cols: np.ndarray, rows_total: int, slots: int) -> np.ndarray:
    """(row, prime index) pairs -> [rows_total, slots] int32, per row the largest indices
    first (+1; 0 = empty): FactorEncoding's layout (TensorFlow's twin, for the layer and the
    compiled online batch: optimus.nets.layers.factor_layout, the same values)."""
    out = np.zeros((rows_total, slots), dtype=np.int32)
    order = np.lexsort((-cols, rows))  # by row, then the largest prime index first
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, rows, side="left")
    rank = np.arange(rows.size) - starts
    keep = rank < slots
    out[rows[keep], rank[keep]] = cols[keep] + 1
    return out
