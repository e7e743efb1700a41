"""The deep sieve: which odd candidates of many uniformly placed windows of big integers are
coprime to every odd prime up to a bound B, for all the windows of a batch at once.

A window is W consecutive odd candidates s, s + 2, ..., s + 2(W - 1) (s odd, s > B). For an odd
prime p, candidate i is divisible by p exactly when i = j_p(s) + k p, with j_p(s) = s (p - 1)/2
mod p (= -s/2 mod p: 2 (p - 1)/2 = -1 mod p). Every j_p of every window comes from one exact
float64 matrix product per block of primes (`DeepSieve.first_multiples`):

    s = sum_i d_i 2^(b i)  (b-bit digits)   =>   j_p(s) = (sum_i d_i t_i,p + M) mod p - M (mod p),
    t_i,p = 2^(b i) (p - 1)/2 mod p,

with b the largest digit size (<= 24) for which every product d_i t_i,p < 2^b p and every
partial sum, in any order the BLAS adds (fused or not), is an integer below 2^53: then the
product is exact. The reduction A mod p is q = floor(A (1/p)), A - q p: the rounded quotient is
off by at most one, and only when A / p is within 2^-18 of an integer (A / p < 2^35), i.e. when
A mod p < p 2^-18 < MARGIN or > p - MARGIN. The offset M = MARGIN (a constant row of the table
against a column of ones in the digits) moves the hits j_p < W to A mod p in [M, M + W), where
the quotient is exact, so one comparison finds every hit of a wide prime (p >= W + 2 MARGIN);
the few entries it flags are checked in int64 (`exact`), so no candidate is struck that p does
not divide. The primes 3..17 strike through a wheel: a precomputed pattern of period 255,255
read at -s/2 mod 255,255 (one more column of the same product); the primes from 19 to W +
2 MARGIN hit several candidates per window and are expanded from their exact j_p.

Measured costs and the bound per size: `optimus.sampling.anysize.deep_bound`; correctness:
tests/test_deep_sieve.py (residues equal Python's `%`, every struck candidate divisible, every
prime of a window a survivor).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from optimus.primes.bigint import limbs
from optimus.primes.sieve import small_odd_primes

WHEEL_PRIMES = (3, 5, 7, 11, 13, 17)
WHEEL = math.prod(WHEEL_PRIMES)  # 255,255
MARGIN = 8  # > A 2^-52 (A < 2^53): the quotient's error, see the module docstring
MAX_DEEP_PRIME = 1 << 28
BLOCK_ENTRIES = 1 << 20  # [windows, primes] working block: 8 MB of float64
TABLE_CACHE_BYTES = 48 << 20  # tables up to this size are kept between batches (one size at a time)


@functools.lru_cache(maxsize=1)
def _wheel_pattern() -> np.ndarray:
    """bool [2 WHEEL]: t coprime to 3..17, t mod WHEEL, twice over (a window reads W <= WHEEL
    entries from an offset in (0, WHEEL])."""
    t = np.arange(WHEEL)
    ok = np.ones(WHEEL, dtype=bool)
    for p in WHEEL_PRIMES:
        ok &= t % p != 0
    return np.concatenate([ok, ok])


def digit_bits(bits: int, pmax: int) -> int:
    """The largest digit size b <= 24 with L (2^b - 1) (pmax + 2) + MARGIN + pmax <= 2^53 for
    the L = ceil(bits / b) digits of a `bits`-bit number: every partial sum is an exact integer
    (table entries lie in [-2, p + 2], `_table`)."""
    for b in range(24, 0, -1):
        count = -(-bits // b)
        if count * ((1 << b) - 1) * (pmax + 2) + MARGIN + pmax <= 2**53:
            return b
    raise ValueError(f"deep sieve: no exact digit size for {bits} bits and primes below {pmax}")


def _table(moduli: np.ndarray, count: int, b: int) -> np.ndarray:
    """float64 [count + 1, K]: rows congruent to 2^(b i) (m - 1)/2 mod m for i < count, each in
    [-2, m + 2], then the row MARGIN. Row i + 1 = row i x 2^b reduced by the rounded quotient
    (exact products below 2^(24 + 28); the quotient is off by one only within 2 of a multiple,
    so the remainder stays in [-2, m + 2] and is never corrected: rows are only summed)."""
    m = moduli.astype(np.float64)
    inv = 1.0 / m
    out = np.empty((count + 1, moduli.size), dtype=np.float64)
    out[0] = (moduli - 1) // 2
    q = np.empty(moduli.size, dtype=np.float64)
    scale = float(1 << b)
    for i in range(1, count):
        row = out[i]
        np.multiply(out[i - 1], scale, out=row)
        np.multiply(row, inv, out=q)
        np.floor(q, out=q)
        q *= m
        row -= q
    out[count] = MARGIN
    return out


class DeepSieve:
    """Survivors of a classic sieve by every odd prime up to `bound` in windows of `width` odd
    candidates of numbers below 2^bits (window starts odd and > bound)."""

    def __init__(self, bits: int, bound: int, width: int):
        if not 17 < bound < MAX_DEEP_PRIME:
            raise ValueError(f"deep sieve: bound must lie in (17, {MAX_DEEP_PRIME})")
        if not 1 <= width <= WHEEL:
            raise ValueError(f"deep sieve: width must lie in [1, {WHEEL}]")
        self.bits, self.bound, self.width = int(bits), int(bound), int(width)
        primes = small_odd_primes(self.bound + 1)
        self.primes = primes[primes > WHEEL_PRIMES[-1]]
        # column 0: the wheel; then the primes that can hit a window more than once; then the rest
        self.moduli = np.concatenate([[WHEEL], self.primes]).astype(np.int64)
        self.digit_bits = digit_bits(self.bits, int(max(self.moduli.max(), WHEEL)))
        self.count = -(-self.bits // self.digit_bits)
        self.multi = 1 + int(np.searchsorted(self.primes, self.width + 2 * MARGIN, side="right"))
        k = self.primes[: self.multi - 1]
        reps = -(-self.width // k)  # multiples of p that can fall in a window
        self._multi_col = np.repeat(np.arange(1, self.multi), reps)
        self._multi_col = self._multi_col.astype(np.int32)
        self._multi_step = (np.concatenate([np.arange(r) * p for r, p in zip(reps.tolist(), k.tolist(), strict=True)])
                            if k.size else np.zeros(0)).astype(np.int32)
        self._cache: np.ndarray | None = None
        if self.table_bytes <= TABLE_CACHE_BYTES:
            self._cache = _table(self.moduli, self.count, self.digit_bits)

    @property
    def table_bytes(self) -> int:
        return 8 * (self.count + 1) * self.moduli.size

    def share(self) -> float:
        """Odd integers coprime to 3..bound: prod (1 - 1/p)."""
        p = np.concatenate([WHEEL_PRIMES, self.primes]).astype(np.float64)
        return float(np.prod(1.0 - 1.0 / p))

    def digits(self, starts: list[int]) -> np.ndarray:
        """float64 [K, count + 1]: the b-bit digits of the starts, then a column of ones."""
        d = limbs(starts, self.digit_bits)
        if d.shape[1] > self.count:
            raise ValueError(f"deep sieve: a start has more than {self.bits} bits")
        out = np.zeros((len(starts), self.count + 1), dtype=np.float64)
        out[:, : d.shape[1]] = d
        out[:, self.count] = 1.0
        return out

    def _blocks(self, rows: int):
        """(lo, hi, table block [count + 1, hi - lo]) over the moduli, blocks of BLOCK_ENTRIES / rows."""
        step = max(1024, BLOCK_ENTRIES // max(rows, 1))
        for lo in range(0, self.moduli.size, step):
            hi = min(lo + step, self.moduli.size)
            block = self._cache[:, lo:hi] if self._cache is not None else \
                _table(self.moduli[lo:hi], self.count, self.digit_bits)
            yield lo, hi, block

    def first_multiples(self, starts: list[int]) -> np.ndarray:
        """int64 [K, moduli]: j = -s/2 mod m for every start s and modulus m (the wheel, then
        the primes): exact; for tests and small batches (the sieve itself never forms it)."""
        d = self.digits(starts)
        out = np.empty((len(starts), self.moduli.size), dtype=np.int64)
        for lo, hi, block in self._blocks(len(starts)):
            out[:, lo:hi] = exact(d @ block, self.moduli[lo:hi])
        return out

    def survivors(self, starts: list[int]) -> np.ndarray:
        """bool [K, width]: candidate i of window k (starts[k] + 2 i) is coprime to every odd
        prime up to the bound."""
        k, w = len(starts), self.width
        d = self.digits(starts)
        pattern = _wheel_pattern()
        # one spare column: the multiples beyond the window land there (no compress, one scatter)
        alive = np.ones((k, w + 1), dtype=bool)
        flat = alive.reshape(-1)
        base = (np.arange(k, dtype=np.int32) * (w + 1))[:, None]
        for lo, hi, block in self._blocks(k):
            acc = d @ block
            mod = self.moduli[lo:hi]
            if lo < self.multi:  # the wheel and the primes that may hit more than once: exact j
                n = min(hi, self.multi) - lo
                j = exact(acc[:, :n], mod[:n]).astype(np.int32)
                if lo == 0:
                    alive[:, :w] &= np.lib.stride_tricks.sliding_window_view(pattern, w)[WHEEL - j[:, 0]]
                sel = (self._multi_col >= lo) & (self._multi_col < lo + n)
                pos = j[:, self._multi_col[sel] - lo]
                pos += self._multi_step[sel]
                np.minimum(pos, w, out=pos)
                pos += base
                flat[pos] = False
                acc, mod, lo = acc[:, n:], mod[n:], lo + n
                if not mod.size:
                    continue
            # wide primes (p >= W + 2 MARGIN): at most one hit each. q = floor(A / p) rounded is
            # off by one only where A mod p is within A 2^-52 < 2 of 0 or p (docstring), so
            # A - q p - MARGIN in [0, W) is exactly a hit; flagged by frac(A / p) < (M + W + 2) / p
            inv = 1.0 / mod.astype(np.float64)
            t = acc * inv
            q = np.floor(t)
            t -= q
            idx = np.flatnonzero(t < (MARGIN + w + 2) * inv)
            if idx.size:
                rows, cols = np.divmod(idx, mod.size)
                j = acc.ravel()[idx] - q.ravel()[idx] * mod[cols] - MARGIN
                ok = (j >= 0) & (j < w)
                flat[rows[ok] * (w + 1) + j[ok].astype(np.int64)] = False
        return alive[:, :w]


def exact(acc: np.ndarray, moduli: np.ndarray) -> np.ndarray:
    """int64: (A - MARGIN) mod m for float64 A holding an exact integer below 2^53 (the product
    plus the MARGIN row, possibly already reduced by a multiple of m)."""
    return (acc.astype(np.int64) - MARGIN) % moduli
