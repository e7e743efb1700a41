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
the quotient is exact, so one comparison (r = A - q p < M + W) finds every hit of a wide prime
(p >= W + 2 MARGIN), and r itself is where it strikes: window k's candidate i sits at k S + M + i
in rows of S = M + W + 2 (`_rows`), and the flagged r that are not hits (r in [-2, M), where
the quotient may be off) land in the padding around the window, so no candidate is struck that
p does not divide. The primes 3..17 strike through a wheel: a precomputed pattern of period 255,255
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
NB = 1 << 10  # wide primes per inner block (more when a batch has fewer than ROWS windows)
ROWS = 128  # windows per inner block: the [ROWS, NB] working arrays (1 MB each) stay in cache
TABLE_BLOCK_BYTES = 8 << 20  # a table block built per batch (memory bounded whatever the bound)
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
        # the head: the wheel (column 0) and the primes that can hit a window more than once,
        # exact j each; the wide primes, padded to a multiple of NB (repeating the last one)
        self.moduli = np.concatenate([[WHEEL], self.primes]).astype(np.int64)
        self.digit_bits = digit_bits(self.bits, int(max(self.moduli.max(), WHEEL)))
        self.count = -(-self.bits // self.digit_bits)
        self.multi = 1 + int(np.searchsorted(self.primes, self.width + 2 * MARGIN, side="right"))
        k = self.primes[: self.multi - 1]
        reps = -(-self.width // k)  # multiples of p that can fall in a window
        # index arrays in intp: an int32 index is converted on every scatter (measured 3x slower)
        self._multi_col = np.repeat(np.arange(1, self.multi), reps).astype(np.intp)
        self._multi_step = (np.concatenate([np.arange(r) * p for r, p in zip(reps.tolist(), k.tolist(), strict=True)])
                            if k.size else np.zeros(0)).astype(np.intp)
        self._head = _table(self.moduli[: self.multi], self.count, self.digit_bits)
        wide = self.moduli[self.multi:]
        if wide.size % NB:
            wide = np.concatenate([wide, np.full(NB - wide.size % NB, wide[-1] if wide.size else WHEEL)])
        self._wide = wide
        self._wide_f = wide.astype(np.float64)
        self._wide_inv = 1.0 / self._wide_f
        self._cache: np.ndarray | None = None
        if self.table_bytes <= TABLE_CACHE_BYTES:
            self._cache = _table(self._wide, self.count, self.digit_bits)

    @property
    def table_bytes(self) -> int:
        return 8 * (self.count + 1) * self._wide.size

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

    def _wide_tables(self):
        """(lo, table block [count + 1, n]) over the wide primes: the cached table, else blocks
        of at most TABLE_BLOCK_BYTES built per batch (n a multiple of NB)."""
        if self._cache is not None:
            yield 0, self._cache
            return
        step = max(NB, TABLE_BLOCK_BYTES // (8 * (self.count + 1)) // NB * NB)
        for lo in range(0, self._wide.size, step):
            yield lo, _table(self._wide[lo : lo + step], self.count, self.digit_bits)

    def first_multiples(self, starts: list[int]) -> np.ndarray:
        """int64 [K, moduli]: j = -s/2 mod m for every start s and modulus m (the wheel, then
        the primes): exact; for tests (the sieve itself never forms it for the wide primes)."""
        d = self.digits(starts)
        parts = [exact(d @ self._head, self.moduli[: self.multi])]
        for lo, table in self._wide_tables():
            parts.append(exact(d @ table, self._wide[lo : lo + table.shape[1]]))
        return np.concatenate(parts, axis=1)[:, : self.moduli.size]

    def survivors(self, starts: list[int]) -> np.ndarray:
        """bool [K, width]: candidate i of window k (starts[k] + 2 i) is coprime to every odd
        prime up to the bound."""
        return self._rows(starts)[:, MARGIN : MARGIN + self.width]

    def survivor_offsets(self, starts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, ends): the i of every survivor (starts[k] + 2 i), window after window in
        increasing i, and where each window's end (int64 [K], cumulative): window k's are
        offsets[ends[k - 1] : ends[k]]. The same as np.nonzero(survivors(starts)) in one flat
        pass (a 2-D nonzero took ~5 us a window at 100 digits, this ~1)."""
        rows = self._rows(starts)
        rows[:, :MARGIN] = False
        rows[:, MARGIN + self.width :] = False
        stride = rows.shape[1]
        pos = np.flatnonzero(rows)
        ends = np.searchsorted(pos, np.arange(1, len(starts) + 1) * stride)
        pos -= np.repeat(np.arange(len(starts)) * stride + MARGIN, np.diff(ends, prepend=0))
        return pos, ends

    def _rows(self, starts: list[int]) -> np.ndarray:
        """bool [K, MARGIN + width + 2]: the survivors of window k at [k, MARGIN : MARGIN +
        width]; the padding around them holds strikes beyond the windows (not cleared)."""
        k, w = len(starts), self.width
        d = self.digits(starts)
        # row r holds window r's candidate i at r S + MARGIN + i, S = MARGIN + w + 2: a wide
        # prime's r = A - q p in [-2, MARGIN + w) (docstring) lands in its own row or in the
        # two spare slots that end the row before (row 0: the last row's, by negative index),
        # so no hit needs a mask; a multiple of a narrow prime beyond the window lands on slot
        # MARGIN + w
        stride = MARGIN + w + 2
        alive = np.ones((k, stride), dtype=bool)
        flat = alive.reshape(-1)
        j = exact(d @ self._head, self.moduli[: self.multi])
        view = alive[:, MARGIN : MARGIN + w]
        view &= np.lib.stride_tricks.sliding_window_view(_wheel_pattern(), w)[WHEEL - j[:, 0]]
        # the narrow primes' multiples, ROWS windows at a time: the [ROWS, multiples] index
        # array stays in cache (all windows at once: 28 MB at 100 digits, three times slower)
        for r0 in range(0, k, ROWS):
            pos = j[r0 : r0 + ROWS, self._multi_col]
            pos += self._multi_step
            np.minimum(pos, w, out=pos)
            pos += (np.arange(r0, min(k, r0 + ROWS)) * stride + MARGIN)[:, None]
            flat[pos] = False
        # wide primes (p >= W + 2 MARGIN): at most one hit each. r = A - q p with q the rounded
        # floor(A / p) is exact, and q is off by one only where A mod p is within A 2^-52 < 2
        # of 0 or p (docstring), far from the hits: r - MARGIN in [0, W) is exactly a hit
        # a block of [rows, nb] entries at a time: with few windows, wider column blocks (the
        # same ~1 MB of working arrays; a batch of 4 windows at 2048 bits spent most of its time
        # in the per-block calls of 1,024 columns)
        nb = NB * max(1, ROWS // max(1, k))
        acc = np.empty(min(k, ROWS) * nb)
        q = np.empty_like(acc)
        top = MARGIN + w
        for lo, table in self._wide_tables():
            for c0 in range(0, table.shape[1], nb):
                block = table[:, c0 : c0 + nb]
                cols = block.shape[1]
                p, inv = self._wide_f[lo + c0 : lo + c0 + cols], self._wide_inv[lo + c0 : lo + c0 + cols]
                for r0 in range(0, k, ROWS):
                    rows = min(ROWS, k - r0)
                    a, b = acc[: rows * cols].reshape(rows, cols), q[: rows * cols].reshape(rows, cols)
                    np.matmul(d[r0 : r0 + rows], block, out=a)
                    np.multiply(a, inv, out=b)
                    np.floor(b, out=b)
                    b *= p
                    np.subtract(a, b, out=a)
                    idx = np.flatnonzero(a < top)
                    if idx.size:
                        r = a.ravel()[idx].astype(np.intp)
                        idx //= cols
                        idx += r0
                        idx *= stride
                        idx += r
                        flat[idx] = False
        return alive


def exact(acc: np.ndarray, moduli: np.ndarray) -> np.ndarray:
    """int64: (A - MARGIN) mod m for float64 A holding an exact integer below 2^53 (the product
    plus the MARGIN row, possibly already reduced by a multiple of m)."""
    return (acc.astype(np.int64) - MARGIN) % moduli
