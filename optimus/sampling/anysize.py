"""Primes of any size with the learned sieve: from 3 digits to 4096 bits.

What a sieve generator learns is a preference over candidates n as a function of their residues
n mod p for a fixed list of odd primes p (`optimus.sampling.sieve.learned_sieve`), and a sieve does not
care how big n is. This module samples with it at any size, with Python ints:

1. *Windows.* A window of W consecutive odd candidates n0, n0+2, ..., n0+2(W-1) is placed
   uniformly at random inside the requested range (n0 uniform over the odd integers that leave
   the window inside it; `placement="log"` places it log-uniformly instead, for overlays on log
   axes). Sampling N outputs uses N windows of the model's own width, one Gumbel-max pick each,
   at the model's temperature: exactly the generator's draw, moved to another size.
2. *Residues, exactly.* n0 mod p for every sieve prime comes from `residues` (30-bit limbs and
   tables of 2^(30 i) mod p, a float64 matrix product that is exact: proof in its docstring);
   candidate j's residues are (r0 + 2j) mod p.
3. *Primes only.* Primes thin out as 2 / ln n among odd integers, so at big sizes the sampler
   places wider windows (the smallest multiple of the model's width that is >= ln hi) and takes
   several picks per window without replacement (Gumbel-top-k, Kool et al. 2019: the k largest
   of logits / T + Gumbel noise), one pick per model-width of candidates, so each pick still
   chooses among as many candidates as the trained generator does, and the residue arithmetic
   of one window serves k picks. Picks are tested until N distinct primes are found.
4. *Primality, with its certainty stated.* Below 2^53 `primes.is_prime` (deterministic trial
   division + Miller-Rabin with proven base sets); from 2^53 to 2^64 BPSW, which is proven
   there (no BPSW pseudoprime below 2^64: Gilchrist 2013 checked Feitsma's list of every base-2
   strong pseudoprime below 2^64); above 2^64 BPSW, whose results are labelled "probable prime
   (BPSW, no known counterexample)". Composites are always proven composite.

Like every method that picks from windows (gmpy2.next_prime from a random start, too), the
outputs are not exactly uniform over the primes of the range: a prime with few prime neighbours
in its window is a little more likely to be picked.
"""

from __future__ import annotations

import functools
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np

from optimus import limits, primes
from optimus.primes.odd import odd_count
from optimus.validate import parse_int, require_int

LIMB_BITS = 30
_LIMB_MASK = (1 << LIMB_BITS) - 1
_RESIDUE_ROWS = 64
# Primes-only sampling picks one candidate per this many in a window (top-k of the Gumbel
# draw). Measured, 1,000 verified 100-digit primes with the shipped model: one pick per 64
# candidates 1.28 s, per 32 0.98-1.0 s, per 16 1.03 s with the fewest tests per prime (12.3,
# a classic sieve by the same primes: 12.4): fewer windows mean fewer big-integer residues.
PICK_SPACING = 16
MAX_RESIDUE_PRIME = 1 << 22  # see residues(): keeps at least two limbs per exact float64 block
EXACT_COUNT_HI = 10**12  # odd-prime densities are counted exactly up to here (primecount: ~10 ms)
PROVEN_LIMIT = 2**64  # BPSW has no counterexample below this, by exhaustive verification

CERT_PROVEN = "proven prime"
CERT_PROBABLE = "probable prime (BPSW, no known counterexample)"
CERT_COMPOSITE = "composite"

# Trial division before BPSW: one gcd with the product of the odd primes up to this bound
# (measured, 2048-bit odd n: the gcd costs ~50 us, one base-2 strong test ~2 ms, and ~40% of the
# candidates a sieve to 97 lets through have a factor in (97, 2^16]).
_GCD_BOUND_SMALL, _GCD_BOUND_BIG = 2_000, 1 << 16


# --------------------------------------------------------------------------------------------
# Sizes


def size_range(digits: int | None = None, bits: int | None = None,
               lo: int | None = None, hi: int | None = None) -> tuple[int, int, str]:
    """(lo, hi, label) for exactly one of: D digits, B bits, or the range [lo, hi] (inclusive).

    ValueError with a one-line reason for anything out of bounds (limits.MIN/MAX_DIGITS,
    MIN/MAX_BITS; ranges within [0, 2^MAX_BITS)).
    """
    given = [digits is not None, bits is not None, lo is not None or hi is not None]
    if sum(given) != 1:
        raise ValueError("give exactly one size: digits, bits, or a range lo..hi")
    if digits is not None:
        d = require_int("", "digits", digits, lo=None)
        if not limits.MIN_DIGITS <= d <= limits.MAX_DIGITS:
            raise ValueError(f"digits must be between {limits.MIN_DIGITS} and {limits.MAX_DIGITS} "
                             f"(4096 bits), got {d}")
        return 10 ** (d - 1), 10**d - 1, f"{d}-digit"
    if bits is not None:
        b = require_int("", "bits", bits, lo=None)
        if not limits.MIN_BITS <= b <= limits.MAX_BITS:
            raise ValueError(f"bits must be between {limits.MIN_BITS} and {limits.MAX_BITS}, got {b}")
        return 1 << (b - 1), (1 << b) - 1, f"{b}-bit"
    if lo is None or hi is None:
        raise ValueError("a range needs both lo and hi")
    lo, hi = require_int("", "lo", lo), require_int("", "hi", hi, lo=None)
    if lo > hi:
        raise ValueError(f"lo > hi ({_short(lo)} > {_short(hi)})")
    if hi.bit_length() > limits.MAX_BITS:
        raise ValueError(f"hi must be below 2^{limits.MAX_BITS}, got a {hi.bit_length()}-bit number")
    return lo, hi, f"[{_short(lo)}, {_short(hi)}]"


def parse_integer(name: str, text: str) -> int:
    """A non-negative integer typed by a person: what optimus.validate.parse_int reads (digits,
    1e18, 10**18), plus `,` and spaces between digit groups and 10^18; ValueError naming `name`."""
    t = str(text).strip().replace(",", "").replace(" ", "").replace("^", "**")
    return parse_int(t, lo=0, what=name)


def _short(n: int) -> str:
    """n in decimal, abbreviated in the middle beyond 24 digits."""
    s = str(n)
    return s if len(s) <= 24 else f"{s[:10]}...{s[-10:]} ({len(s)} digits)"


# --------------------------------------------------------------------------------------------
# Exact residues of big integers


def _limbs(values: list[int]) -> np.ndarray:
    """int64 [B, L]: the 30-bit limbs of non-negative Python ints, least significant first."""
    top = max(values).bit_length() if values else 0
    count = max(1, -(-top // LIMB_BITS))
    width = (count * LIMB_BITS + 7) // 8 + 8  # bytes, with room for the 5-byte reads below
    raw = np.frombuffer(b"".join(v.to_bytes(width, "little") for v in values), dtype=np.uint8)
    raw = raw.reshape(len(values), width).astype(np.uint64)
    start = np.arange(count) * LIMB_BITS
    byte, shift = start // 8, (start % 8).astype(np.uint64)
    # limb k = bits [30k, 30k + 30): within the 5 bytes from byte 30k // 8, after `shift` bits
    word = np.zeros((len(values), count), dtype=np.uint64)
    for j in range(5):
        word |= raw[:, byte + j] << np.uint64(8 * j)
    return ((word >> shift) & np.uint64(_LIMB_MASK)).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _limb_table(moduli_bytes: bytes, count: int) -> np.ndarray:
    """float64 [count, K]: 2^(30 i) mod m for each limb i and modulus m (cached: the same moduli
    and sizes come back batch after batch)."""
    moduli = np.frombuffer(moduli_bytes, dtype=np.int64).tolist()
    rows, row = [], [1 % m for m in moduli]
    for _ in range(count):
        rows.append(row)
        row = [(r << LIMB_BITS) % m for r, m in zip(row, moduli, strict=True)]
    return np.array(rows, dtype=np.float64)


def residues(values, moduli) -> np.ndarray:
    """int64 [B, K]: values[b] mod moduli[k], exactly, for non-negative ints of any size.

    `values`: Python ints (or an int64 array); `moduli`: K integers in [1, MAX_RESIDUE_PRIME).
    Values below 2^63 take NumPy's int64 `%`. Larger ones are split into 30-bit limbs
    a_i (n = sum_i a_i 2^(30 i)), and n mod p = (sum_i a_i t_i) mod p with t_i = 2^(30 i) mod p,
    computed as float64 matrix products over blocks of c limbs:

        acc <- (acc + sum_{i in block} a_i t_i) mod p,   c = floor((2^53 - p) / ((2^30 - 1)(p - 1))).

    Why nothing rounds: every a_i <= 2^30 - 1 and t_i <= p - 1, so each product is an integer
    <= (2^30 - 1)(p - 1) < 2^53, and acc < p before the block, so every partial sum of the block,
    in whatever order the BLAS adds and with or without fused multiply-adds, is a non-negative
    integer <= p - 1 + c (2^30 - 1)(p - 1) <= 2^53: all exactly representable, so every addition
    and product is exact. fmod of exact integers is exact. With p < 2^22, c >= 2.
    """
    moduli = np.asarray(moduli, dtype=np.int64).reshape(-1)
    if moduli.size and (moduli.min() < 1 or moduli.max() >= MAX_RESIDUE_PRIME):
        raise ValueError(f"residues: moduli must lie in [1, {MAX_RESIDUE_PRIME})")
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        small = values.astype(np.int64)
        return small.reshape(-1, 1) % moduli
    values = [int(v) for v in values]
    if not values:
        return np.zeros((0, moduli.size), dtype=np.int64)
    if min(values) < 0:
        raise ValueError("residues: values must be >= 0")
    if max(values) < 2**63:
        return np.array(values, dtype=np.int64).reshape(-1, 1) % moduli
    limbs = _limbs(values).astype(np.float64)
    count = limbs.shape[1]
    table = _limb_table(moduli.tobytes(), count)  # [L, K]: t_i per modulus
    pmax = int(moduli.max())
    block = max(1, (2**53 - pmax) // ((2**LIMB_BITS - 1) * max(pmax - 1, 1)))
    # In blocks of _RESIDUE_ROWS values, so the [rows, K] working arrays stay in L2, and the
    # reduction in int64 (exact: every acc is an integer < 2^53). Measured, 4,096 100-digit
    # values x 3,400 primes: np.fmod on the whole array 1.7 s, int64 % in blocks of 64 rows 0.06 s.
    out = np.empty((len(values), moduli.size), dtype=np.int64)
    for r in range(0, len(values), _RESIDUE_ROWS):
        acc = np.zeros((min(_RESIDUE_ROWS, len(values) - r), moduli.size), dtype=np.int64)
        for i in range(0, count, block):
            acc = (acc + limbs[r : r + _RESIDUE_ROWS, i : i + block] @ table[i : i + block]).astype(np.int64)
            acc %= moduli
        out[r : r + _RESIDUE_ROWS] = acc
    return out


# --------------------------------------------------------------------------------------------
# Primality at any size


@dataclass(frozen=True)
class _Trial:
    bound: int
    product: int


_trials: dict[int, _Trial] = {}


def _trial(bits: int) -> _Trial:
    bound = _GCD_BOUND_SMALL if bits < 512 else _GCD_BOUND_BIG
    if bound not in _trials:
        import gmpy2

        _trials[bound] = _Trial(bound, int(gmpy2.mpz(math.prod(primes.small_odd_primes(bound).tolist()))))
    return _trials[bound]


def bpsw(n: int) -> bool:
    """Strong Baillie-PSW for an odd integer n > 2^22: trial division by one gcd, a base-2
    strong probable-prime test, then a strong Lucas test with Selfridge's parameters (gmpy2).
    Proven correct below 2^64; above, no counterexample is known."""
    import gmpy2

    if gmpy2.gcd(n, _trial(n.bit_length()).product) != 1:
        return False
    return bool(gmpy2.is_strong_prp(n, 2) and gmpy2.is_strong_selfridge_prp(n))


def certainty(n: int, prime: bool) -> str:
    """How sure `prime` is: proven below 2^64, BPSW-probable above; composites are proven."""
    if not prime:
        return CERT_COMPOSITE
    return CERT_PROVEN if n < PROVEN_LIMIT else CERT_PROBABLE


def is_prime_any(values) -> np.ndarray:
    """bool [B]: primality of non-negative ints of any size (exact below 2^64; BPSW above).

    Values below 2^53 go to `primes.is_prime` (vectorised, deterministic); the rest to `bpsw`.
    """
    values = [int(v) for v in values]
    out = np.zeros(len(values), dtype=bool)
    small = [i for i, v in enumerate(values) if v < primes.EXACT_LIMIT]
    if small:
        out[small] = primes.is_prime(np.array([values[i] for i in small], dtype=np.int64))
    # even values above 2^53 are composite; odd ones take BPSW (a gcd per value measured faster
    # than vectorised trial division by residues: 32,768 x 300 fmods cost more than 32,768 gcds)
    for i, v in enumerate(values):
        if v >= primes.EXACT_LIMIT:
            out[i] = bool(v & 1) and bpsw(v)
    return out


# --------------------------------------------------------------------------------------------
# Densities: what random odd candidates and a classic sieve need


def odd_prime_density(lo: int, hi: int) -> tuple[float, bool]:
    """(share of odd integers in [lo, hi] that are prime, exact?): counted exactly (primecount)
    up to EXACT_COUNT_HI, else estimated with li(x): (li(hi) - li(lo)) / (odd integers)."""
    odd = odd_count(lo, hi)
    if odd == 0:
        raise ValueError(f"[{_short(lo)}, {_short(hi)}] contains no odd integer")
    if hi <= EXACT_COUNT_HI:
        return primes.odd_prime_density(lo, hi), True
    import mpmath

    with mpmath.workdps(30):
        if hi - lo < 10**6 or lo == 0:
            mid = mpmath.mpf(lo + (hi - lo) // 2)
            count = mpmath.mpf(hi - lo + 1) / mpmath.log(mid)
            if lo == 0:
                count = mpmath.li(mpmath.mpf(hi)) - mpmath.li(2)
        else:
            count = mpmath.li(mpmath.mpf(hi)) - mpmath.li(mpmath.mpf(lo))
        return float(count / odd), False


def survivor_share(sieve_primes) -> float:
    """Share of odd integers coprime to every one of these odd primes: prod (1 - 1/p)."""
    return float(np.prod(1.0 - 1.0 / np.asarray(sieve_primes, dtype=np.float64)))


# --------------------------------------------------------------------------------------------
# The sampler


@dataclass
class AnySizeResult:
    """What `sample_any` returns: the outputs (Python ints) and a summary of plain numbers."""

    values: list[int]
    is_prime: np.ndarray
    tests: np.ndarray  # candidates tested per output row (primes-only: since the previous prime)
    summary: dict = field(default_factory=dict)

    def certainties(self) -> list[str]:
        return [certainty(v, bool(p)) for v, p in zip(self.values, self.is_prime, strict=True)]


def _odd_span(lo: int, hi: int) -> tuple[int, int]:
    """(first odd >= lo, number of odd integers in [lo, hi])."""
    return lo | 1, odd_count(lo, hi)


def _place(rng: random.Random, first: int, slots: int, size: int, placement: str) -> list[int]:
    """`size` window starts: odd first + 2k for k uniform in [0, slots) (or log-uniform n).

    Not primes.uniform_odd: these are Python ints of up to 4096 bits drawn with random.Random,
    beyond the int64 draws of NumPy's generators."""
    if placement == "uniform":
        return [first + 2 * rng.randrange(slots) for _ in range(size)]
    import mpmath

    lo1 = max(first, 1)
    last = first + 2 * (slots - 1)
    out = []
    with mpmath.workprec(max(64, last.bit_length() + 32)):
        a, b = mpmath.log(lo1), mpmath.log(last + 1)
        for _ in range(size):
            n = int(mpmath.floor(mpmath.exp(a + (b - a) * rng.random())))
            k = min(max((n - first) // 2, 0), slots - 1)
            out.append(first + 2 * k)
    return out


_ADDITIVE_PROBE_MAX = 20_000_000  # probe entries (sum of p) x K: ~1 s and 160 MB at most
_additive_cache: dict = {}


def additive_tables(sieve, width: int):
    """(base, [(m, T_m)]) when the sieve's logit is a sum of one score per prime and residue
    (checked, not assumed: the contract only promises `logits(residues)`), else None.

    Probing `logits` with one non-zero residue at a time gives every score relative to residue
    0; 64 random residue vectors then confirm that the sum reproduces `logits` (to 1e-9). The
    window's logits then come from the CRT tables of `optimus.sampling.sieve.build_tables`: a few
    contiguous row reads per window instead of W x K gathers (measured: 4096 windows of 256
    candidates, 24 primes: ~0.02 s against ~0.4 s).
    """
    p = sieve.primes
    key = (id(sieve), width)
    if key in _additive_cache and _additive_cache[key][0] is sieve:
        return _additive_cache[key][1]
    result = None
    total = int(p.sum())
    if p.size and total * p.size <= _ADDITIVE_PROBE_MAX:
        offsets = np.concatenate([[0], np.cumsum(p)[:-1]]).astype(np.int64)
        which = np.repeat(np.arange(p.size), p)
        probe = np.zeros((total, p.size), dtype=np.int64)
        probe[np.arange(total), which] = np.arange(total) - offsets[which]
        base = float(sieve.logits(np.zeros((1, p.size), dtype=np.int64))[0])
        scores = sieve.logits(probe) - base
        test = np.random.default_rng(0).integers(0, p, size=(64, p.size))
        predicted = base + scores[offsets + test].sum(axis=1)
        actual = sieve.logits(test)
        if np.allclose(predicted, actual, rtol=0, atol=1e-9 * max(1.0, float(np.abs(actual).max()))):
            from optimus.sampling.sieve import build_tables

            result = (base, build_tables(scores, p, width))
    if len(_additive_cache) > 8:
        _additive_cache.clear()
    _additive_cache[key] = (sieve, result)
    return result


def window_logits(sieve, starts: list[int], r0: np.ndarray, width: int) -> np.ndarray:
    """float64 [B, width]: the sieve's logit for candidates n0 + 2j, from r0 = n0 mod p [B, K].

    A sieve with wide primes (one "p divides n" weight each, thousands of them) is split: its
    small primes go through the CRT tables, and each wide prime p adds its weight to the one
    candidate j < width with n0 + 2j = 0 mod p, j = -r0 / 2 mod p (and j + p, ... in windows
    wider than p). Measured on the
    shipped model (24 small + 3,376 wide primes), 1,000 verified 100-digit primes: 21.5 s
    through `logits` on [B, W, K] residue blocks, 1.0 s split this way.
    """
    wide = getattr(sieve, "wide_primes", np.zeros(0, dtype=np.int64))
    if wide.size:
        k = len(sieve.primes) - wide.size
        out = window_logits(sieve.small_sieve(), starts, r0[:, :k], width)
        # int32 where (p - r) * (p + 1) / 2 < 2^31 (p < 46,341: the shipped model's wide primes
        # stop at 31,607), in blocks of rows that stay in L2
        dtype = np.int32 if int(wide.max()) < 46_341 else np.int64
        wide32 = wide.astype(dtype)
        inverse_of_2 = (wide32 + 1) // 2
        for r in range(0, len(r0), _RESIDUE_ROWS):
            block = out[r : r + _RESIDUE_ROWS]
            # [rows, wide]: the first candidate that p divides
            j = (wide32 - r0[r : r + _RESIDUE_ROWS, k:].astype(dtype)) % wide32 * inverse_of_2 % wide32
            while True:  # a window wider than p holds several multiples of p: j, j + p, ...
                rows, cols = np.nonzero(j < width)
                if not rows.size:
                    break
                np.add.at(block, (rows, j[rows, cols]), sieve.wide_scores[cols])
                j += wide32
        return out
    tables = additive_tables(sieve, width)
    if tables is not None:
        base, groups = tables
        moduli = np.array([m for m, _ in groups], dtype=np.int64)
        rows = residues(starts, moduli) if moduli.max() < MAX_RESIDUE_PRIME else None
        if rows is not None:
            out = np.full((len(starts), width), base)
            for g, (_, table) in enumerate(groups):
                out += np.take(table, rows[:, g], axis=0)
            return out
    p = sieve.primes
    steps = (2 * np.arange(width, dtype=np.int64))[:, None] % p  # [W, K]
    # [rows, W, K] residue blocks of ~64K entries stay in L2 (measured, 4096 windows of 256 x 24
    # primes: 0.36 s in blocks of 64K entries, 0.68 s in blocks of 4M)
    rows = max(1, 65_536 // max(1, width * p.size))
    out = np.empty((len(r0), width), dtype=np.float64)
    for i in range(0, len(r0), rows):
        res = r0[i : i + rows, None, :] + steps[None]
        res -= p * (res >= p)
        out[i : i + rows] = sieve.logits(res)
    return out


def _gumbel_top(logits: np.ndarray, k: int, temperature: float, nprng: np.random.Generator) -> np.ndarray:
    """int [B, k]: the k candidates of each window with the largest logits / T + Gumbel noise,
    in decreasing order (k = 1: the generator's Gumbel-max draw, as `models.choose`)."""
    u = nprng.uniform(1e-12, 1.0, size=logits.shape)
    g = logits / max(temperature, 1e-6) - np.log(-np.log(u))
    if k == 1:
        return np.argmax(g, axis=1)[:, None]
    top = np.argpartition(-g, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(g, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def wide_window(window: int, hi: int) -> int:
    """Window for primes-only sampling: the smallest multiple of the model's window >= ln hi."""
    ln_hi = hi.bit_length() * math.log(2)
    return window * max(1, math.ceil(ln_hi / window))


def seconds_per_test(bits: int) -> float:
    """Estimated seconds of one primality test of a sieved candidate of this size (measured on
    the 2-core machine: ~2 us below 2^53, ~40 us at 332 bits, ~1.25 ms at 2048, ~7.6 ms at 4096)."""
    if bits <= 53:
        return 2e-6
    return 2e-6 + 1.25e-3 * (bits / 2048) ** 2.6


def sample_any(sieve, lo: int, hi: int, count: int, seed: int = 0, *, temperature: float = 1.0,
               primes_only: bool = False, placement: str = "uniform", vet=None,
               max_seconds: float | None = None) -> AnySizeResult:
    """`count` outputs of the learned sieve in [lo, hi] (see the module docstring).

    primes_only=False: `count` windows of the model's width, one Gumbel-max pick each (what
    the generator outputs at that size; primes or not). primes_only=True: `count` distinct
    verified primes, from wide windows with several picks each. `vet`: a callable n (int64
    array, all < 2^53) -> probability of prime (the discriminator): picks it gives < 0.5 are
    skipped without a primality test (rejection sampling, Azadi et al. 2019). Raises ValueError
    for a range without odd integers or primes, a count too large for the range, or a request
    estimated to take more than max_seconds (default limits.MAX_SAMPLE_SECONDS); stops with an
    error saying how far it got if it runs past twice that.
    """
    t_start = time.perf_counter()
    if placement not in ("uniform", "log"):
        raise ValueError(f"placement must be uniform or log, got {placement!r}")
    count = int(count)
    if not 1 <= count <= limits.MAX_SAMPLES:
        raise ValueError(f"count must be between 1 and {limits.MAX_SAMPLES:,}, got {count:,}")
    first, odd = _odd_span(lo, hi)
    if odd == 0:
        raise ValueError(f"[{_short(lo)}, {_short(hi)}] contains no odd integer")
    if vet is not None and not primes_only:
        raise ValueError("discriminator vetting works with primes only: it decides which picks "
                         "to test, and without --primes-only every pick is tested and shown")
    if vet is not None and hi >= primes.EXACT_LIMIT:
        raise ValueError("discriminator vetting needs hi < 2^53: the discriminator reads n "
                         "exactly only below 2^53")
    max_seconds = limits.MAX_SAMPLE_SECONDS if max_seconds is None else max_seconds
    density, exact = odd_prime_density(max(lo, 3), hi) if hi >= 3 else (0.0, True)
    if not exact and odd < 10**6 and odd * seconds_per_test(hi.bit_length()) < 1.0:
        # a narrow range of big numbers: test every odd integer in it rather than estimate
        density, exact = float(is_prime_any(range(first, hi + 1, 2)).sum()) / odd, True
    expected_primes = density * odd if odd < 2**1000 else math.inf
    if primes_only:
        if exact and expected_primes < 0.5:
            raise ValueError(f"[{_short(lo)}, {_short(hi)}] holds no odd prime")
        cap = expected_primes * limits.MAX_PRIME_SHARE
        if count > cap:
            cap = int(cap)
            what = "holds" if exact else "holds about"
            raise ValueError(
                f"{_short(lo)}..{_short(hi)} {what} {expected_primes:,.0f} odd primes: ask for at most "
                f"{max(cap, 0):,} distinct primes (a random draw slows down like a coupon collector "
                f"beyond {limits.MAX_PRIME_SHARE:.0%} of them)")
    share = survivor_share(sieve.primes)
    # tests per output: a sieve-quality learned sieve needs about share / density per prime
    per_output = max(share / max(density, 1e-300), 1.0) if primes_only else 1.0
    estimate = count * per_output * seconds_per_test(hi.bit_length())
    if estimate > max_seconds:
        doable = max(1, int(count * max_seconds / estimate))
        raise ValueError(f"{count:,} {'primes' if primes_only else 'samples'} of this size would take "
                         f"about {estimate:,.0f} s (limit {max_seconds:g} s): ask for at most {doable:,}")

    model_window = min(sieve.window, odd)
    width = min(wide_window(sieve.window, hi), odd) if primes_only else model_window
    picks = max(1, width // PICK_SPACING) if primes_only else 1
    slots = odd - width + 1
    rng = random.Random(seed)
    nprng = np.random.default_rng([seed, 15485863])

    primes32 = sieve.primes.astype(np.int32)
    values: list[int] = []
    flags: list[bool] = []
    tests_per: list[int] = []
    seen: set[int] = set()
    tested = vetted_out = windows = picked_survivors = picked = 0
    deadline = t_start + 2 * max_seconds
    while len(values) < count:
        need = count - len(values)
        if primes_only:
            # primes per window: at most one (see below)
            rate = min(max(density / max(share, 1e-300), 1e-9) * picks, 0.75)
            batch = int(min(max(need / rate * 1.2, 16), 4096))
        else:
            batch = need
        starts = _place(rng, first, slots, batch, placement)
        windows += batch
        r0 = residues(starts, sieve.primes)
        logits = window_logits(sieve, starts, r0, width)
        top = _gumbel_top(logits, picks, temperature, nprng)  # [B, picks]
        rows = np.repeat(np.arange(batch), picks)
        offsets = top.reshape(-1)
        cand = [starts[b] + 2 * int(j) for b, j in zip(rows.tolist(), offsets.tolist(), strict=True)]
        # int32 (residues < 2^22 and offsets < 2 * width stay far below 2^31) and in blocks of
        # rows that stay in L2: 16k picks x 3,400 primes took 1.0 s in one int64 array, 0.15 s so.
        r0_32, off_32 = r0.astype(np.int32), (2 * offsets).astype(np.int32)
        coprime = np.empty(len(rows), dtype=bool)
        for i in range(0, len(rows), _RESIDUE_ROWS):
            part = (r0_32[rows[i : i + _RESIDUE_ROWS]] + off_32[i : i + _RESIDUE_ROWS, None]) % primes32
            coprime[i : i + _RESIDUE_ROWS] = ~(part == 0).any(axis=1)
        picked += len(cand)
        picked_survivors += int(coprime.sum())
        keep = np.ones(len(cand), dtype=bool)
        if vet is not None:
            keep = np.asarray(vet(np.array(cand, dtype=np.int64)), dtype=np.float64) >= 0.5
            vetted_out += int((~keep).sum())
        keep = keep.tolist()
        if primes_only:
            # At most one prime per window: its picks are tested in the order of the Gumbel
            # draw, rank by rank across the batch, and a window closes at its first prime. So
            # outputs are as independent as the windows (a window of 256 odd 30-digit numbers
            # holds about four primes: taking them all would list near neighbours). At 2048 bits
            # a test takes ~1 ms: chunks of 64 stop close to the count.
            chunk = 64 if hi.bit_length() > 512 else batch
            open_windows = np.ones(batch, dtype=bool)
            for rank in range(picks):
                idx = [b for b in range(batch) if open_windows[b] and keep[b * picks + rank]]
                for i in range(0, len(idx), chunk):
                    part_idx = idx[i : i + chunk]
                    part = [cand[b * picks + rank] for b in part_idx]
                    for b, c, prime in zip(part_idx, part, is_prime_any(part).tolist(), strict=True):
                        if len(values) == count:
                            break  # the rest of the batch's picks are not tested
                        tested += 1
                        if prime and c not in seen:
                            seen.add(c)
                            values.append(c)
                            flags.append(True)
                            tests_per.append(tested)
                            open_windows[b] = False
                    if len(values) == count:
                        break
                if len(values) == count:
                    break
        else:
            to_test = [c for c, k in zip(cand, keep, strict=True) if k]
            verdict = dict(zip(to_test, is_prime_any(to_test).tolist(), strict=True))
            tested += len(to_test)
            for c, k in zip(cand, keep, strict=True):
                values.append(c)
                flags.append(bool(verdict[c]) if k else False)
                tests_per.append(1 if k else 0)
        if time.perf_counter() > deadline and len(values) < count:
            raise ValueError(f"stopped after {time.perf_counter() - t_start:.0f} s with {len(values):,} "
                             f"of {count:,} {'primes' if primes_only else 'samples'}: ask for fewer")
    if primes_only:  # tests per prime: the tests spent since the previous prime
        tests_per = np.diff([0, *tests_per]).tolist()
    found = sum(flags)
    random_tests = 1.0 / density if density > 0 else math.inf
    # at least one test per prime (below 101^2 every survivor of a sieve to 97 is prime)
    sieve_tests = max(share / density, 1.0) if density > 0 else math.inf
    learned_tests = tested / found if found else math.inf
    summary = {
        "lo": str(lo), "hi": str(hi), "bits": hi.bit_length(), "digits": len(str(hi)),
        "primes_only": primes_only, "placement": placement, "temperature": temperature,
        "window": width, "model_window": sieve.window, "picks_per_window": picks,
        "windows": windows, "outputs": len(values), "primes": found, "tested": tested,
        "vetted_out": vetted_out,
        "hit_rate": found / tested if tested else 0.0,
        "tests_per_prime": learned_tests,
        "random_odd_tests_per_prime": random_tests,
        "sieve_tests_per_prime": sieve_tests,
        "density_exact": exact,
        "odd_prime_density": density,
        "density_source": ("estimate: (li(hi) - li(lo)) / odd integers" if not exact else
                           "exact count (primecount)" if hi <= EXACT_COUNT_HI else "exact count (every odd integer tested)"),
        "sieve_primes": int(sieve.primes.size),
        "sieve_max_prime": int(sieve.primes.max()) if sieve.primes.size else 0,
        "sieve_survivor_share": share,
        "picks_coprime_share": picked_survivors / picked if picked else 0.0,
        "lift": (found / tested) / density if tested and density > 0 else 0.0,
        "sieve_lift": 1.0 / share,
        "tests_saved_per_prime": random_tests - learned_tests if found else 0.0,
        "certainty": CERT_PROVEN if hi < PROVEN_LIMIT else
        (CERT_PROBABLE if lo >= PROVEN_LIMIT else f"{CERT_PROVEN} below 2^64, {CERT_PROBABLE} above"),
        "seconds": time.perf_counter() - t_start,
    }
    # JSON has no infinity: a figure that does not exist (no prime found) is None
    summary = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    return AnySizeResult(values, np.array(flags, dtype=bool), np.array(tests_per, dtype=np.int64), summary)


def summary_lines(s: dict) -> list[str]:
    """The summary as text: tests per prime against random odd candidates and a classic sieve."""
    src = "exact" if s["density_exact"] else "estimated with li(x)"
    lines = [
        f"{s['outputs']:,} outputs, {s['primes']:,} primes; {s['tested']:,} candidates tested in "
        f"{s['windows']:,} windows of {s['window']} odd candidates ({s['picks_per_window']} picks each), "
        f"{s['seconds']:.2f} s",
        f"hit rate {s['hit_rate']:.4f}; odd-prime density {s['odd_prime_density']:.6g} ({src}); lift {s['lift']:.2f}",
    ]
    if s["primes"]:
        lines.append(
            f"tests per prime: learned sieve {s['tests_per_prime']:.1f}; random odd candidates "
            f"{s['random_odd_tests_per_prime']:.1f} ({src}); classic trial-division sieve by the same "
            f"{s['sieve_primes']} primes (<= {s['sieve_max_prime']}) {s['sieve_tests_per_prime']:.1f} "
            f"(lift ceiling {s['sieve_lift']:.2f})")
        lines.append(f"the learned sieve reaches {s['lift'] / s['sieve_lift']:.0%} of the classic sieve's lift; "
                     f"{s['picks_coprime_share']:.1%} of its picks are coprime to all of its primes")
    if s["vetted_out"]:
        lines.append(f"discriminator vetting skipped {s['vetted_out']:,} picks without a primality test")
    lines.append(f"certainty: {s['certainty']}")
    return lines


def table(result: AnySizeResult, d_prob: np.ndarray | None = None):
    """A DataFrame of the outputs: n as a decimal string, digits, is_prime, certainty, tests,
    d_prob (None beyond 2^53, where the discriminator cannot read n exactly)."""
    import pandas as pd

    frame = pd.DataFrame({
        "n": [str(v) for v in result.values],
        "digits": [len(str(v)) for v in result.values],
        "is_prime": result.is_prime.astype(bool),
        "certainty": result.certainties(),
        "tests": result.tests,
    })
    frame["d_prob"] = pd.Series(d_prob, dtype="float64") if d_prob is not None else pd.Series([None] * len(frame), dtype="float64")
    return frame


D_PROB_REASON = "d_prob is empty: the discriminator reads n exactly only below 2^53"


# --------------------------------------------------------------------------------------------
# A model directory, at any size


def model_sieve(models):
    """The learned sieve of loaded models (`evaluation.Models`), or ValueError saying why not."""
    from optimus.sampling.sieve import learned_sieve

    sieve = learned_sieve(models.generator)
    if sieve is None:
        raise ValueError(f"model {models.name} has no learned sieve (its generator is not a sieve "
                         "generator, e.g. the seed preset's): any-size sampling needs one")
    return sieve


def vetting(models):
    """The discriminator as a vetting callable for `sample_any` (n < 2^53, odd)."""
    from optimus.evaluation.report import discriminate

    return lambda n: discriminate(models, n)


def sample_models(models, lo: int, hi: int, count: int, seed: int = 0, *, primes_only: bool = False,
                  vet: bool = False, placement: str = "uniform", max_seconds: float | None = None):
    """(table, summary) for a model directory's generator at [lo, hi]: `sample_any` with the
    model's temperature, plus the discriminator's d_prob below 2^53 (empty above, the summary's
    `d_prob_note` says why)."""
    sieve = model_sieve(models)
    result = sample_any(sieve, lo, hi, count, seed, temperature=models.config.temperature,
                        primes_only=primes_only, placement=placement,
                        vet=vetting(models) if vet else None, max_seconds=max_seconds)
    d_prob = None
    summary = dict(result.summary)
    if hi < primes.EXACT_LIMIT:
        from optimus.evaluation.report import discriminate

        d_prob = discriminate(models, np.array(result.values, dtype=np.int64))
        summary["d_prob_note"] = ""
    else:
        summary["d_prob_note"] = D_PROB_REASON
    return table(result, d_prob), summary


def evaluate_at(models, lo: int, hi: int, count: int = 10_000, seed: int = 0) -> dict:
    """The generator's figures at [lo, hi] through `sample_any` (model window, one pick per
    window): hit rate, distinct rates, the odd-prime density there and lift = distinct-prime
    rate / density, beside the classic sieve's ceiling."""
    sieve = model_sieve(models)
    result = sample_any(sieve, lo, hi, count, seed, temperature=models.config.temperature)
    s = result.summary
    distinct = len(set(result.values))
    distinct_primes = len({v for v, p in zip(result.values, result.is_prime, strict=True) if p})
    density = s["odd_prime_density"]
    return {
        "model_dir": str(models.path), "preset": models.config.preset, "lo": str(lo), "hi": str(hi),
        "samples": count, "seed": seed,
        "hit_rate": s["hit_rate"], "distinct_rate": distinct / count,
        "distinct_prime_rate": distinct_primes / count,
        "baseline": density, "baseline_exact": s["density_exact"], "baseline_source": s["density_source"],
        "lift": distinct_primes / count / density if density > 0 else 0.0,
        "sieve_lift_ceiling": s["sieve_lift"], "picks_coprime_share": s["picks_coprime_share"],
        "window": s["window"], "certainty": s["certainty"], "seconds": s["seconds"],
    }
