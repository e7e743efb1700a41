"""Primes of any size with the learned sieve: from 3 digits to 4096 bits.

What a sieve generator learns is a preference over candidates n as a function of their residues
n mod p for a fixed list of odd primes p (`optimus.sampling.sieve.learned_sieve`), and a sieve does
not care how big n is. This module samples with it at any size, with Python ints:

1. *Windows.* A window of W consecutive odd candidates n0, n0+2, ..., n0+2(W-1) is placed
   uniformly at random inside the requested range (`placement="log"`: log-uniformly, for
   overlays on log axes). Without primes_only, N outputs are N windows of the model's own width,
   one Gumbel-max pick each, at the model's temperature: exactly the generator's draw, moved.
2. *Residues, exactly, for many windows at once.* One `primes.bigint.ResidueTable` product
   gives, for every window of a batch and every wide learned prime (and deep prime, below), the
   first candidate j that p divides (j = -n0/2 mod p); the small learned primes go through CRT
   tables (`sampling.sieve.window_batch`). Logits for all windows of a batch at once.
3. *Primes only.* A window holds WINDOW_PER_LN x ln(hi) candidates (about 16 primes), at
   most one prime per window, so the outputs are as independent as the windows (never two
   neighbours). Above DEEP_MIN (2^160) every batch of windows goes through the batched deep
   sieve (`sampling.deep_sieve.DeepSieve`: every odd prime up to DEEP_BOUNDS at that size,
   which includes every learned prime) and each window's survivors are tested in a uniformly
   random order until its first prime: every prime survives the sieve and the primes of a
   window come first in a uniform order, so this is uniform over the primes up to the spread of
   a window's prime count (mean gap before the sampled primes about 1.0-1.05 x the average
   gap; next_prime from a uniform start about 2; `bench anysize`). The learned preferences play
   no part there: among survivors they are nearly flat (README). Below 2^160 the classic sieve
   by the primes beyond the learned ones, up to GMP's own bound for its next_prime
   (`deep_bound`), strikes candidates first and the window's picks (Gumbel-top-k of logits / T,
   Kool et al. 2019: a random order drawn from the generator's preferences) are tested in that
   order until the window's first prime.
4. *Primality, with its certainty stated.* Below 2^53 `primes.is_prime` (deterministic); from
   2^53 to 2^64 BPSW, which is proven there (no BPSW pseudoprime below 2^64: Gilchrist 2013
   checked Feitsma's list of every base-2 strong pseudoprime below 2^64); above 2^64 a base-2
   strong test on every sieved pick and BPSW plus one Miller-Rabin round (GMP's,
   `bigint.confirm`, the certainty `gmpy2.next_prime` gives its primes) on those that pass (above 2^160 one GMP call per candidate, `bigint.confirm`, which stops at the base-2
   test on composites), labelled "probable prime (BPSW, no known counterexample)". Composites
   are always proven composite.
5. *Bounded.* Windows come in batches (memory bounded whatever the count) and a request still
   running at its time cap stops inside its test loop and returns what it found, labelled.
"""

from __future__ import annotations

import array
import functools
import math
import random
import time
from dataclasses import dataclass, field

import gmpy2
import mpmath
import numpy as np
import pandas as pd

from optimus import limits, primes
from optimus.evaluation.metrics import lift
from optimus.evaluation.report import discriminate
from optimus.primes import bigint
from optimus.primes.bigint import (  # noqa: F401  (re-exported: the README names them here)
    CERT_COMPOSITE,
    CERT_PROBABLE,
    CERT_PROVEN,
    LIMB_BITS,
    MAX_RESIDUE_PRIME,
    PROVEN_LIMIT,
    bpsw,
    certainty,
    is_prime_any,
    residues,
    survivor_share,
)
from optimus.primes.odd import odd_count
from optimus.sampling.deep_sieve import DeepSieve
from optimus.sampling.sieve import (  # noqa: F401  (additive_tables, window_logits: re-exported)
    additive_tables,
    coprime_small,
    first_multiples,
    gumbel_keys,
    learned_sieve,
    window_batch,
    window_logits,
)
from optimus.validate import require_int

# Primes-only sampling: a window holds WINDOW_PER_LN x ln(hi) candidates (about twice as many
# primes) and up to PICKS_PER_TEST / P(pick is prime) picks, tested in the order of the Gumbel
# draw until the first prime. Measured (mean preceding gap / ln p of the sampled primes, 4,000 of
# 30 digits and 600 of 100 digits, loaded 2-core machine): windows of 1 x ln hi with 4 picks
# 1.10 / 1.04-1.09 but 3.4 windows per prime; 4 x ln hi, first prime of the window 1.09 / 1.15-1.19;
# 8 x ln hi 1.05 / 1.03 with 1.0-1.1 windows per prime (the old 1 x ln hi, 16 picks: 1.20 / 1.17).
WINDOW_PER_LN = 8
PICKS_PER_TEST = 4
BATCH_WINDOWS = 2048  # windows per batch at most: residues, logits and picks in bounded memory
# The classic sieve beyond the learned primes: up to GMP's own bound for mpz_nextprime
# (nbits^2.5 / 124, "derivative of Mertens' 3rd theorem x avg gap x cost of mod vs cost of a
# PRP test", GMP 6.3 mpz/nextprime.c), below 2^22 (`bigint.ResidueTable`'s exact range) and
# with its residue table [limbs, primes] within DEEP_TABLE_BYTES.
DEEP_TABLE_BYTES = 48 << 20
# Above DEEP_MIN primes-only windows are sieved in batches by `deep_sieve.DeepSieve` up to
# DEEP_BOUNDS (bits, bound; interpolated), chosen by measurement: the tests a deeper bound
# saves against its cost per window (at 100 digits about 4 ns per wide prime and window, a
# test 20 us: 50 k, 75 k and 100 k within 2% of each other, 1,000 primes x 8 rounds; at 4096
# bits about 70 ns with the table built per batch of 11 windows, a test 16 ms; README,
# "Speed"). Below 2^160 (under 48 digits) a test costs a few microseconds and the learned
# windows' path is kept, so that the learned sieve still decides there (measured, 300 primes
# per size on the loaded machine: the batched path 10-20% faster at 40 digits,
# within 3% at 50-80).
DEEP_MIN = 1 << 160
DEEP_BOUNDS = ((64, 50_000), (333, 50_000), (997, 1_000_000), (2048, 8_000_000), (4096, 16_000_000))


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


def _short(n: int) -> str:
    """n in decimal, abbreviated in the middle beyond 24 digits."""
    s = str(n)
    return s if len(s) <= 24 else f"{s[:10]}...{s[-10:]} ({len(s)} digits)"


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


def _gumbel_top(logits: np.ndarray, k: int, temperature: float, nprng: np.random.Generator):
    """(picks int [B, k], keys [B, k]): the k candidates of each window with the largest
    logits / T + Gumbel noise, in decreasing order (k = 1: the generator's Gumbel-max draw)."""
    g = gumbel_keys(logits, nprng, temperature)
    if k == 1:
        top = np.argmax(g, axis=1)[:, None]
    else:
        top = np.argpartition(-g, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(g, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
    return top, np.take_along_axis(g, top, axis=1)


def wide_window(window: int, hi: int) -> int:
    """Window for primes-only sampling: the smallest multiple of the model's window holding
    WINDOW_PER_LN x ln hi candidates (about 2 x WINDOW_PER_LN primes)."""
    ln_hi = hi.bit_length() * math.log(2)
    return window * max(1, math.ceil(WINDOW_PER_LN * ln_hi / window))


def deep_bound(bits: int) -> int:
    """Bound of the classic sieve at this size: for the batched deep sieve (above DEEP_MIN,
    `deep_sieve.DeepSieve`), DEEP_BOUNDS, measured; else GMP's own bound for next_prime, within
    the residue table's DEEP_TABLE_BYTES."""
    if bits >= DEEP_MIN.bit_length():
        return int(np.interp(bits, [b for b, _ in DEEP_BOUNDS], [v for _, v in DEEP_BOUNDS]))
    gmp = int(bits**2.5 / 124)
    limbs = max(1, bits // 24)  # ResidueTable's limbs at these sizes are 24-26 bits
    primes_fit = DEEP_TABLE_BYTES // (8 * limbs)
    by_memory = int(primes_fit * math.log(primes_fit * math.log(primes_fit)))  # ~ the primes_fit-th prime
    return min(gmp, by_memory, bigint.MAX_RESIDUE_PRIME - 1)


@functools.lru_cache(maxsize=1)
def _deep_sieve(bits: int, bound: int, width: int) -> DeepSieve:
    """The deep sieve of a size (its residue table cached with it when small: DeepSieve)."""
    return DeepSieve(bits, bound, width)


def seconds_per_test(bits: int) -> float:
    """Estimated seconds of one primality test of a sieved candidate of this size (measured on
    the 2-core machine: ~2 us below 2^53, ~40 us at 332 bits, ~1.25 ms at 2048, ~7.6 ms at 4096)."""
    if bits <= 53:
        return 2e-6
    return 2e-6 + 1.25e-3 * (bits / 2048) ** 2.6


@functools.lru_cache(maxsize=8)
def _odd_share(bound: int) -> float:
    """Share of odd integers coprime to every odd prime up to bound (a sieve of the primes and a
    product over them: 60 ms at 16 M, once per bound rather than per request)."""
    return survivor_share(primes.small_odd_primes(bound + 1))


@functools.lru_cache(maxsize=8)
def _deep_primes(above: int, bound: int) -> np.ndarray:
    p = primes.small_odd_primes(bound + 1)
    return p[p > above]


class _Tester:
    """Primality of one candidate at a time, counted: exact below 2^53 (`primes.is_prime`), BPSW
    above (proven below 2^64). Above 2^64 the candidates come sieved, so the cheap half of BPSW
    (a base-2 strong test) goes first and the rest (`bigint.confirm`) runs only on those
    passing, as GMP's next_prime does (mpz_millerrabin stops at the base-2 test on composites)."""

    def __init__(self):
        self.tests = self.lucas = 0

    def __call__(self, n: int) -> bool:
        self.tests += 1
        if n < primes.EXACT_LIMIT:
            return bool(primes.is_prime(n))
        if n < PROVEN_LIMIT:
            return bpsw(n)
        if not bigint.strong_prp2(n):
            return False
        self.lucas += 1
        return bigint.confirm(n)


def sample_any(sieve, lo: int, hi: int, count: int, seed: int = 0, *, temperature: float = 1.0,
               primes_only: bool = False, placement: str = "uniform", vet=None,
               max_seconds: float | None = None, deep: bool = True) -> AnySizeResult:
    """`count` outputs of the learned sieve in [lo, hi] (see the module docstring).

    primes_only=False: `count` windows of the model's width, one Gumbel-max pick each (what
    the generator outputs at that size; primes or not). primes_only=True: `count` distinct
    verified primes, from wider windows with a few picks each, at most one prime per window;
    `deep` adds the classic sieve by more primes (`deep_bound`; above DEEP_MIN the batched deep
    sieve with a uniform order among its survivors; deep=False keeps the learned picks).
    `vet`: a callable n (int64 array, all < 2^53) -> probability of prime (the discriminator):
    picks it gives < 0.5 are skipped without a primality test (rejection sampling, Azadi et al.
    2019). Raises ValueError for a range without odd integers or primes, a count too large for
    the range, or a request estimated to take more than max_seconds (default
    limits.MAX_SAMPLE_SECONDS). A request still running at max_seconds stops inside its test
    loop and returns what it found, its summary's `stopped` saying so.
    """
    with bigint.one_blas_thread():
        return _sample_any(sieve, lo, hi, count, seed, temperature, primes_only, placement, vet, max_seconds, deep)


def _sample_any(sieve, lo, hi, count, seed, temperature, primes_only, placement, vet, max_seconds, deep):
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
    # over [lo, hi] itself: 2 is not odd, and 1 is not prime (a count from max(lo, 3) against
    # the odd integers from lo said [1, 10] holds 4 odd primes)
    density, exact = primes.odd_prime_density_any(lo, hi)
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
                f"{_short(lo)}..{_short(hi)} {what} {round(expected_primes):,} odd primes: ask for at most "
                f"{max(cap, 0):,} distinct primes (a random draw slows down like a coupon collector "
                f"beyond {limits.MAX_PRIME_SHARE:.0%} of them)")
    bits = hi.bit_length()
    # big sizes: the batched deep sieve and a uniform order among its survivors (DEEP_MIN)
    batched = primes_only and deep and vet is None and first > DEEP_MIN and odd >= wide_window(sieve.window, hi)
    bound = deep_bound(bits) if primes_only and deep else 0
    learned_max = int(sieve.primes.max()) if sieve.primes.size else 1
    if batched:
        bound = max(bound, learned_max)  # the learned primes are among the deep sieve's
    deep_primes = _deep_primes(learned_max, bound) if bound else None
    if deep_primes is not None and (not deep_primes.size or first <= int(deep_primes[-1])):
        deep_primes = None  # n0 > every deep prime, so that a multiple is composite
    sieved_by = np.concatenate([sieve.primes, deep_primes]) if deep_primes is not None else sieve.primes
    share = survivor_share(sieve.primes)
    deep_share = survivor_share(sieved_by)
    if batched:
        deep_share = _odd_share(bound)
    # tests per output: a sieve-quality learned sieve needs about share / density per prime
    per_output = max(deep_share / max(density, 1e-300), 1.0) if primes_only else 1.0
    estimate = count * per_output * seconds_per_test(bits)
    if estimate > max_seconds:
        doable = max(1, int(count * max_seconds / estimate))
        raise ValueError(f"{count:,} {'primes' if primes_only else 'samples'} of this size would take "
                         f"about {estimate:,.0f} s (limit {max_seconds:g} s): ask for at most {doable:,}")

    model_window = min(sieve.window, odd)
    width = min(wide_window(sieve.window, hi), odd) if primes_only else model_window
    # picks per window: enough to find the window's prime nearly always (see WINDOW_PER_LN)
    per_pick = min(max(density / max(deep_share, 1e-300), 1e-9), 1.0)  # P(a pick is prime)
    picks = max(1, min(math.ceil(PICKS_PER_TEST / per_pick), width)) if primes_only else 1
    slots = odd - width + 1
    rng = random.Random(seed)
    nprng = np.random.default_rng([seed, 15485863])
    # one batch of windows costs its residues and [batch, width] logits: in chunks, so that
    # memory stays bounded (100,000 windows at once took 4.7 GB) and the deadline is checked
    # at least every ~0.5 s of tests
    chunk = int(min(BATCH_WINDOWS, max(1, 0.5 / seconds_per_test(bits) / (1 / per_pick if primes_only else 1))))

    values: list[int] = []
    flags: list[bool] = []
    tests_per: list[int] = []
    seen: set[int] = set()
    test = _Tester()
    vetted_out = windows = picked_survivors = picked = struck = 0
    stopped = ""
    deadline = t_start + max_seconds

    def take_prime(c: int) -> bool:
        """A window's prime c, just found: kept as an output unless another window (windows may
        overlap) found it already. True: kept, the window closes."""
        if c in seen:
            return False
        seen.add(c)
        values.append(c)
        flags.append(True)
        tests_per.append(test.tests)
        return True

    if batched:  # one survivor mask per window, candidates tested in a uniformly random order
        ds = _deep_sieve(bits, bound, width)
        picks = width
        # the loop below runs ~12 times a prime at 100 digits: locals only, and the GMP call
        # itself rather than a wrapper (`bigint.confirm`; ~0.3 us a test, measured)
        draw, is_prime, reps, mpz, clock = rng.random, gmpy2.is_prime, bigint.CONFIRM_REPS, gmpy2.mpz, time.perf_counter
        tested = lucas = 0
        while len(values) < count and not stopped:
            # a window of WINDOW_PER_LN x ln hi candidates nearly always holds a prime
            batch = min(count - len(values) + 1 + (count - len(values)) // 64, BATCH_WINDOWS)
            starts = _place(rng, first, slots, batch, placement)
            windows += batch
            offsets, ends = ds.survivor_offsets(starts)
            struck += batch * width - int(offsets.size)
            # the survivors of every window at once (one flat pass per batch, not per window),
            # each window's a segment of them, as offsets from its start in an array.array: a
            # window's ~12 tests read their candidates from it without turning all ~190 of its
            # survivors into ints (a tolist: ~6 us a window)
            left = array.array("q", (2 * offsets).tobytes())
            ends = ends.tolist()
            lo_b = 0
            for b in range(batch):
                base, left_n, lo_b = lo_b, ends[b] - lo_b, ends[b]
                start = mpz(starts[b])  # candidates as mpz from one base: no int -> mpz per test
                while left_n:  # a uniformly random order, drawn as it is tested (Fisher-Yates)
                    k = base + int(draw() * left_n)
                    left_n -= 1
                    c = start + left[k]
                    left[k] = left[base + left_n]
                    if clock() > deadline:
                        stopped = "deadline"
                        break
                    tested += 1
                    # one GMP call (`bigint.confirm`): mpz_probab_prime_p stops at its base-2
                    # strong test on a composite and runs the rest of BPSW (and the extra
                    # Miller-Rabin round) only on those passing (the base-2 test is not run
                    # twice on the prime, as strong_prp2 then confirm would; measured the same
                    # cost as strong_prp2 on deep-sieved composites, 333 and 2048 bits)
                    if is_prime(c, reps):
                        lucas += 1
                        test.tests = tested  # take_prime records the count
                        if take_prime(int(c)):
                            break
                if len(values) == count or stopped:
                    break
        test.tests, test.lucas = tested, lucas
        # every tested candidate survived a sieve by every learned prime (bound >= their max)
        picked = picked_survivors = test.tests
    while not batched and len(values) < count and not stopped:
        need = count - len(values)
        if primes_only:
            # windows per prime: 1 / P(a window's picks hold a prime)
            rate = 1.0 - (1.0 - per_pick) ** picks
            batch = int(min(max(need / rate * 1.1, 16), chunk))
        else:
            batch = min(need, chunk)
        starts = _place(rng, first, slots, batch, placement)
        windows += batch
        logits, divisible, hit = window_batch(sieve, starts, width, deep_primes)
        struck += hit
        top, keys = _gumbel_top(logits, picks, temperature, nprng)  # [B, picks], best first
        live = np.isfinite(keys)  # a struck candidate is composite: never tested (and sorts last)
        if vet is not None:  # below 2^53: the candidates fit int64
            cand = np.array(starts, dtype=np.int64)[:, None] + 2 * top
            vetted = np.asarray(vet(cand[live]), dtype=np.float64) >= 0.5
            vetted_out += int((~vetted).sum())
            keep = np.zeros(live.shape, dtype=bool)
            keep[live] = vetted
            live = keep
        tested_rows, tested_cols = [], []
        if primes_only:
            # At most one prime per window: its picks are tested in the order of the Gumbel
            # draw and a window closes at its first prime, so outputs are as independent as the
            # windows (never two neighbours of one window). Candidates are built as they are
            # tested: a window's first prime comes after ~tests-per-prime of its picks.
            live_rows = live.tolist()
            top_rows = top.tolist()
            for b in range(batch):
                start, flags_b, top_b = starts[b], live_rows[b], top_rows[b]
                for i in range(picks):
                    if not flags_b[i]:
                        continue
                    if time.perf_counter() > deadline:
                        stopped = "deadline"
                        break
                    c = start + 2 * top_b[i]
                    tested_rows.append(b)
                    tested_cols.append(top_b[i])
                    if test(c) and take_prime(c):
                        break
                if len(values) == count or stopped:
                    break
        else:
            cand = [starts[b] + 2 * j for b, j in enumerate(top[:, 0].tolist())]
            if hi < primes.EXACT_LIMIT:  # vectorised, and a batch is ~0.5 s of tests at most
                verdict = primes.is_prime(np.array(cand, dtype=np.int64)).tolist()
                test.tests += len(cand)
            else:  # one at a time, the deadline checked before each test
                verdict = []
                for c in cand:
                    if time.perf_counter() > deadline:
                        stopped = "deadline"
                        break
                    verdict.append(test(c))
            cand = cand[: len(verdict)]
            values.extend(cand)
            flags.extend(bool(v) for v in verdict)
            tests_per.extend([1] * len(cand))
            tested_rows, tested_cols = list(range(len(cand))), top[: len(cand), 0].tolist()
            if time.perf_counter() > deadline and len(values) < count:
                stopped = "deadline"
        if tested_rows:  # how many tested picks are coprime to every learned prime
            rows, cols = np.array(tested_rows), np.array(tested_cols)
            picked += rows.size
            picked_survivors += int((~divisible[rows, cols] & coprime_small(sieve, starts, rows, cols)).sum())
    if primes_only:  # tests per prime: the tests spent since the previous prime
        tests_per = np.diff([0, *tests_per]).tolist()
    tested = test.tests
    found = sum(flags)
    what = "primes" if primes_only else "samples"
    if stopped and not values:
        raise ValueError(f"stopped at the {max_seconds:g} s limit before the first of {count:,} {what}: "
                         "ask for a smaller size")
    note = (f"stopped at the {max_seconds:g} s limit with {len(values):,} of {count:,} {what}: "
            "the rest were not drawn" if stopped else "")
    random_tests = 1.0 / density if density > 0 else math.inf
    # at least one test per prime (below 101^2 every survivor of a sieve to 97 is prime)
    sieve_tests = max(share / density, 1.0) if density > 0 else math.inf
    learned_tests = tested / found if found else math.inf
    hit_rate = found / tested if tested else 0.0
    summary = {
        "lo": str(lo), "hi": str(hi), "bits": bits, "digits": len(str(hi)),
        "primes_only": primes_only, "placement": placement, "temperature": temperature,
        "window": width, "model_window": sieve.window, "picks_per_window": picks,
        "order": "uniform (batched deep sieve)" if batched else "learned (Gumbel-top-k)",
        "windows": windows, "outputs": len(values), "requested": count, "primes": found, "tested": tested,
        "lucas_tests": test.lucas, "vetted_out": vetted_out, "stopped": note,
        "hit_rate": hit_rate,
        "tests_per_prime": learned_tests,
        "random_odd_tests_per_prime": random_tests,
        "sieve_tests_per_prime": sieve_tests,
        "density_exact": exact,
        "odd_prime_density": density,
        "density_source": ("estimate: (li(hi) - li(lo)) / odd integers" if not exact else
                           "exact count (primecount)" if hi <= primes.density.EXACT_COUNT_HI else "exact count (every odd integer tested)"),
        "sieve_primes": int(sieve.primes.size),
        "sieve_max_prime": int(sieve.primes.max()) if sieve.primes.size else 0,
        "sieve_survivor_share": share,
        "deep_sieve_primes": int(deep_primes.size) if deep_primes is not None else 0,
        "deep_sieve_max_prime": int(deep_primes[-1]) if deep_primes is not None else 0,
        "deep_sieve_struck": struck,
        "deep_tests_per_prime": max(deep_share / density, 1.0) if density > 0 else math.inf,
        "picks_coprime_share": picked_survivors / picked if picked else 0.0,
        "lift": lift(hit_rate, density),
        "sieve_lift": 1.0 / share,
        "tests_saved_per_prime": random_tests - learned_tests if found else 0.0,
        "certainty": bigint.range_certainty(lo, hi),
        "seconds": time.perf_counter() - t_start,
    }
    # JSON has no infinity or NaN: a figure that does not exist (no prime found) is None
    summary = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    return AnySizeResult(values, np.array(flags, dtype=bool), np.array(tests_per, dtype=np.int64), summary)


def summary_lines(s: dict) -> list[str]:
    """The summary as text: tests per prime against random odd candidates and a classic sieve."""
    src = "exact" if s["density_exact"] else "estimated with li(x)"
    shown_lift = "-" if s["lift"] is None else f"{s['lift']:.2f}"
    lines = [
        f"{s['outputs']:,} outputs, {s['primes']:,} primes; {s['tested']:,} candidates tested in "
        f"{s['windows']:,} windows of {s['window']} odd candidates "
        + ("(survivors of the deep sieve in a uniformly random order), " if s.get("order", "").startswith("uniform")
           else f"({s['picks_per_window']} picks each), ") + f"{s['seconds']:.2f} s",
        f"hit rate {s['hit_rate']:.4f}; odd-prime density {s['odd_prime_density']:.6g} ({src}); lift {shown_lift}",
    ]
    if s["primes"]:
        lines.append(
            f"tests per prime: {'deep sieve' if s.get('order', '').startswith('uniform') else 'learned sieve'} "
            f"{s['tests_per_prime']:.1f}; random odd candidates "
            f"{s['random_odd_tests_per_prime']:.1f} ({src}); classic trial-division sieve by the same "
            f"{s['sieve_primes']} primes (<= {s['sieve_max_prime']}) {s['sieve_tests_per_prime']:.1f} "
            f"(lift ceiling {s['sieve_lift']:.2f})")
        if s.get("deep_sieve_primes"):
            lines.append(f"a classic sieve by {s['deep_sieve_primes']:,} more primes (<= {s['deep_sieve_max_prime']:,}) "
                         f"struck {s['deep_sieve_struck']:,} candidates before the picks (alone with the learned "
                         f"primes' it needs {s['deep_tests_per_prime']:.1f} tests per prime); "
                         f"{s['picks_coprime_share']:.1%} of the picks are coprime to all of the learned primes")
        else:
            lines.append(f"the learned sieve reaches {s['lift'] / s['sieve_lift']:.0%} of the classic sieve's lift; "
                         f"{s['picks_coprime_share']:.1%} of its picks are coprime to all of its primes")
    if s["vetted_out"]:
        lines.append(f"discriminator vetting skipped {s['vetted_out']:,} picks without a primality test")
    lines.append(f"certainty: {s['certainty']}")
    if s.get("stopped"):
        lines.append(s["stopped"])
    return lines


def table(result: AnySizeResult, d_prob: np.ndarray | None = None):
    """A DataFrame of the outputs: n as a decimal string, digits, is_prime, certainty, tests,
    d_prob (None beyond 2^53, where the discriminator cannot read n exactly)."""
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
    sieve = learned_sieve(models.generator)
    if sieve is None:
        raise ValueError(f"model {models.name} has no learned sieve (its generator is not a sieve "
                         "generator, e.g. the seed preset's): any-size sampling needs one")
    return sieve


def vetting(models):
    """The discriminator as a vetting callable for `sample_any` (n < 2^53, odd)."""
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
        "lift": None if density <= 0 else lift(distinct_primes / count, density),  # JSON has no NaN
        "sieve_lift_ceiling": s["sieve_lift"], "picks_coprime_share": s["picks_coprime_share"],
        "window": s["window"], "certainty": s["certainty"], "seconds": s["seconds"],
    }
