"""Exact primality, prime counting and prime-density references, in NumPy.

This module is the ground truth of the whole project (labels, baselines, the density page), so
every answer here is exact: no probabilistic test, no floating-point shortcut that could round.
It imports only NumPy and the standard library, so it is cheap to import from the CLI and the app.

Three tiers answer `is_prime`, chosen per value:

* n < SMALL_LIMIT (2**22): a small odd-only sieve held in memory, built in a few milliseconds on
  first use, so a unit test or one CLI call never pays for the big sieve.
* n < SIEVE_LIMIT (2**30, a little above 10**9): a bit-packed odd-only sieve (bit i <-> 2i+1,
  64 MiB), cached on disk as a .npy file under cache_dir(). It is *never built implicitly*
  (about 1 s, plus a 64 MiB write): callers that want it call `ensure_sieve()` up front (the bench
  does). Once it is in memory every call uses it; if it is only on disk, is_prime loads it (about
  0.05 s) for a call with at least AUTOLOAD_MIN values in [SMALL_LIMIT, SIEVE_LIMIT), and prime
  counting loads it whenever it is there. Smaller is_prime calls go to Miller-Rabin instead,
  which is cheaper for them than the load.
* anything else below 2**53: vectorised trial division by the odd primes up to TRIAL_LIMIT
  (removes about 85% of odd composites), then a vectorised deterministic Miller-Rabin: base 2
  for every survivor, then the rest of a proven base set (as sympy.isprime uses) for the base-2
  strong probable primes. Products mod n are exact in plain int64/float64 arithmetic (see
  _Mod53), so no long double is needed and results do not depend on the platform. Short
  arrays (a few hundred values) take the same test with Python ints instead, which is faster
  than NumPy's per-call overhead there.

Prime counting uses the same sieves where they reach, and above them primecount (Kim Walisch's
library, the `primecountpy` wheel: Deleglise-Rivat / Gourdon, pi(10^18) in ~45 s on 2 cores), or
a segmented sieve of the gap from the previous value, whichever a cost model says is cheaper
(measured side by side in `python -m optimus bench count`). Lucy Hedgehog's O(x^(3/4)) algorithm
stays as the fallback when primecount is not installed. Counts reach 10^18 (MAX_DENSITY_HI); a
request whose estimated counting time exceeds its bound is refused up front with the estimate,
or, when the caller asks for it, its costly bins are li(x) estimates marked as such.

Ranges are written [lo, hi] when both ends are included and [lo, hi) when hi is excluded.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from optimus import limits

EXACT_LIMIT = limits.EXACT_LIMIT  # 2**53: is_prime and to_odd answer below this
SMALL_LIMIT = 2**22  # the small in-memory sieve covers [0, SMALL_LIMIT)
SIEVE_LIMIT = 2**30  # the big cached sieve covers [0, SIEVE_LIMIT); 2**30 > 10**9
AUTOLOAD_MIN = 100_000  # values in [SMALL_LIMIT, SIEVE_LIMIT) that justify loading the sieve
TRIAL_LIMIT = 300  # trial division by odd primes <= this before Miller-Rabin

# odd_prime_density_binned (the baselines of every lift figure) counts exactly up to here and
# estimates with Li(x) above: baselines are computed every training batch, so they must stay cheap
BASELINE_EXACT_HI = 10**10
PI_SIEVE_LIMIT = 54_400_028  # pi(2**30); a loaded cache file must agree with it
_SIEVE_BYTES = SIEVE_LIMIT // 16  # 2**30 / 2 odd numbers / 8 bits per byte
_CACHE_NAME = "odd_sieve_2p30_v1.npy"
_BLOCK_BYTES = 512  # the sieve's cumulative count is kept every 512 bytes (8192 integers)
_SEGMENT = 1 << 21  # odd numbers per sieving segment: 2 MiB of bools, fits in L2/L3
_CHUNK = 1 << 15  # values per Miller-Rabin chunk: keeps the working arrays in L2

# Deterministic Miller-Rabin base sets: every composite n below the bound fails at least one base
# (reduced mod n; a reduced base of 0 or 1 is skipped). Jaeschke (1993) for the first; the others
# are the best known sets from https://miller-rabin.appspot.com/, as used by sympy.isprime.
_MR_BASES = (
    (4_759_123_141, (2, 7, 61)),
    (350_269_456_337, (4230279247111683200, 14694767155120705706, 16641139526367750375)),
    (55_245_642_489_451, (2, 141889084524735, 1199124725622454117, 11096072698276303650)),
    (7_999_252_175_582_851,
     (2, 4130806001517, 149795463772692060, 186635894390467037, 3967304179347715805)),
    (585_226_005_592_931_977,
     (2, 123635709730000, 9233062284813009, 43835965440333360, 761179012939631437,
      1263739024124850375)),
)

_lock = threading.RLock()
_small_cache: tuple[np.ndarray, np.ndarray] | None = None
_big_cache: tuple[np.ndarray, np.ndarray] | None = None
_rejected_file: tuple[str, int, int] | None = None  # a cache file that failed validation


# --------------------------------------------------------------------------------------------
# Input validation


def _fail(func: str, value, why: str) -> None:
    if isinstance(value, np.generic):
        value = value.item()  # show 7, not np.int64(7)
    raise ValueError(f"{func}: {value!r} {why}")


def _check_int(func: str, name: str, value, lo: int = 0, hi: int | None = None) -> int:
    """`value` as a Python int in [lo, hi] (inclusive), or ValueError naming `name`.

    Integral floats (1e9) are accepted, since CLI and app values often arrive as floats.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        if isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
            value = int(value)
        else:
            raise ValueError(f"{func}: {name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo:
        raise ValueError(f"{func}: {name} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{func}: {name} must be <= {hi}, got {value}")
    return value


def _first(arr: np.ndarray, bad: np.ndarray):
    """The first element of `arr` (C order) where `bad` holds."""
    return arr.ravel()[int(np.argmax(bad.ravel()))]


def _check_number(func: str, v) -> None:
    """ValueError unless v is an integer (or integral float) in [0, 2**53)."""
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        _fail(func, v, "is not an integer")
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            _fail(func, v, "is not a finite number")
        if v != math.floor(v):
            _fail(func, v, "is not an integer")
    if v < 0:
        _fail(func, v, "is negative")
    if v >= EXACT_LIMIT:
        _fail(func, v, "is >= 2**53")


def _flatten(values):
    for v in values:
        if isinstance(v, list | tuple | np.ndarray):
            yield from _flatten(v)
        else:
            yield v


def _as_int_array(values, func: str) -> tuple[np.ndarray, bool]:
    """Validate integers in [0, 2**53) and return them as an int64 array, plus "was a scalar".

    Integral floats (7.0) are accepted because float64 is exact below 2**53; non-integral or
    non-finite floats, bools, strings and anything else raise ValueError naming the first
    offending value (in C order).
    """
    scalar = not isinstance(values, np.ndarray | list | tuple)
    if scalar:
        _check_number(func, values)
        return np.array([int(values)], dtype=np.int64).reshape(()), True
    try:
        arr = np.asarray(values)
    except (OverflowError, ValueError):  # ragged lists, or ints beyond 64 bits
        arr = np.asarray(values, dtype=object)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        # something in there is not a number of a supported kind: find and name it, element
        # by element on the original items (NumPy may have turned them all into strings)
        items = _flatten(values) if isinstance(values, list | tuple) else arr.ravel().tolist()
        for v in items:
            _check_number(func, v)
        flat = [int(v) for v in _flatten(arr.tolist())]
        if len(flat) != arr.size:
            raise ValueError(f"{func}: nested lists must be rectangular")
        return np.array(flat, dtype=np.int64).reshape(arr.shape), False
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            _fail(func, _first(arr, ~finite), "is not a finite number")
        frac = arr != np.floor(arr)
        if frac.any():
            _fail(func, _first(arr, frac), "is not an integer")
    if arr.size:
        if arr.min() < 0:
            _fail(func, _first(arr, arr < 0), "is negative")
        if arr.max() >= EXACT_LIMIT:
            _fail(func, _first(arr, arr >= EXACT_LIMIT), "is >= 2**53")
    return arr.astype(np.int64, copy=False), False


# --------------------------------------------------------------------------------------------
# Sieves


def _sieve_flags_upto(limit: int) -> np.ndarray:
    """Flags of the odd numbers below `limit`: flag i <-> 2i+1 is prime. For small limits only."""
    flags = np.ones((limit + 1) // 2, dtype=bool)
    flags[0] = False  # 1 is not prime
    for i in range(1, (math.isqrt(limit) - 1) // 2 + 1):
        if flags[i]:
            p = 2 * i + 1
            flags[p * p // 2 :: p] = False
    return flags


def _small() -> tuple[np.ndarray, np.ndarray]:
    """The small sieve: flags of odd numbers below SMALL_LIMIT and their running count."""
    global _small_cache
    if _small_cache is None:
        with _lock:
            if _small_cache is None:
                flags = _sieve_flags_upto(SMALL_LIMIT)
                # cumulative[i] = odd primes in [1, 2i+1]; int32 is plenty below 2**22
                _small_cache = (flags, np.cumsum(flags, dtype=np.int32))
    return _small_cache


@functools.cache
def _presieve_pattern() -> np.ndarray:
    """Odd-only flags of one period (3*5*7*11*13 odd numbers) coprime to 3, 5, 7, 11, 13.

    Tiling this pattern replaces the five densest prime strides, which would otherwise be
    40% of the sieve's writes.
    """
    period = 3 * 5 * 7 * 11 * 13
    n = 2 * np.arange(period, dtype=np.int64) + 1
    keep = np.ones(period, dtype=bool)
    for p in (3, 5, 7, 11, 13):
        keep &= n % p != 0
    return keep


def _odd_segment(lo: int, count: int) -> np.ndarray:
    """Primality flags of the `count` odd numbers lo, lo+2, ..., lo+2*(count-1) (lo odd, >= 1)."""
    hi = lo + 2 * count  # exclusive
    pattern = _presieve_pattern()
    period = len(pattern)
    offset = (lo // 2) % period
    reps = (offset + count) // period + 1
    seg = np.tile(pattern, reps)[offset : offset + count]
    base = small_odd_primes(math.isqrt(hi - 1))
    base = base[base > 13]
    if len(base):
        # first odd multiple of p that is >= max(p*p, lo); its flag index in the segment
        start = np.maximum(base * base, (lo + base - 1) // base * base)
        start += base * (start % 2 == 0)
        index = (start - lo) // 2
        # A prime above 2 * count has at most one odd multiple in the segment: those are
        # crossed off at once (near 10^18 there are 25 million of them; a Python loop over them
        # took about 15 s per segment), the smaller ones one slice each.
        few = base > 2 * count
        hits = index[few]
        seg[hits[hits < count]] = False
        for p, j in zip(base[~few].tolist(), index[~few].tolist(), strict=True):
            seg[j::p] = False
    # the pattern cleared 3..13 themselves and cannot know that 1 is not prime
    for p in (1, 3, 5, 7, 11, 13):
        if lo <= p < hi:
            seg[(p - lo) // 2] = p != 1
    return seg


def _build_big_sieve() -> np.ndarray:
    """The bit-packed odd-only sieve of [0, SIEVE_LIMIT): bit i of the array <-> 2i+1."""
    out = np.empty(_SIEVE_BYTES, dtype=np.uint8)
    total = SIEVE_LIMIT // 2
    for first in range(0, total, _SEGMENT):
        count = min(_SEGMENT, total - first)
        seg = _odd_segment(2 * first + 1, count)
        out[first // 8 : (first + count) // 8] = np.packbits(seg, bitorder="little")
    return out


def cache_dir() -> Path:
    """Where the big sieve is cached: $OPTIMUS_CACHE_DIR, else ~/.cache/optimus."""
    env = os.environ.get("OPTIMUS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "optimus"


def sieve_cache_path() -> Path:
    return cache_dir() / _CACHE_NAME


def _block_counts(sieve: np.ndarray) -> np.ndarray:
    """cumulative[k] = odd primes in the first k*_BLOCK_BYTES bytes of the sieve (int64)."""
    per_block = np.bitwise_count(sieve.reshape(-1, _BLOCK_BYTES)).sum(axis=1, dtype=np.int64)
    return np.concatenate(([0], np.cumsum(per_block)))


def _accept(sieve: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(sieve, block counts) if the array looks like a sound sieve, else None.

    The total count catches truncated or foreign files; the spot checks catch a shifted or
    inverted one.
    """
    if sieve.dtype != np.uint8 or sieve.shape != (_SIEVE_BYTES,):
        return None
    counts = _block_counts(sieve)
    if counts[-1] + 1 != PI_SIEVE_LIMIT:  # + 1 for the even prime 2
        return None
    probes = np.array([1, 3, 9, 91, 2047, 1_000_000_007, SIEVE_LIMIT - 35, SIEVE_LIMIT - 1])
    if _lookup_big(probes, sieve).tolist() != [False, True, False, False, False, True, True, False]:
        return None
    return sieve, counts


def _load_sieve_file(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    # A full read rather than mmap_mode="r": measured on the dev machine, a million random
    # lookups take the same ~8 ms either way, and the validation below reads every byte anyway,
    # so mmap's lazy loading would save nothing; a private copy also cannot change under us.
    try:
        sieve = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return _accept(sieve)


def _save_sieve_file(path: Path, sieve: np.ndarray) -> None:
    """Write atomically: a temp file in the same directory, fsync, then os.replace.

    A reader therefore sees either no file or a complete one, even if two processes build at
    once or one is killed mid-write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, sieve, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _file_stamp(path: Path) -> tuple[str, int, int] | None:
    """(path, mtime, size) of a regular file, or None: enough to notice it was replaced."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size) if path.is_file() else None


def sieve_ready() -> bool:
    """True when the big sieve is in memory (calls below SIEVE_LIMIT are then lookups)."""
    return _big_cache is not None


def sieve_cached() -> bool:
    """True when a cache file for the big sieve exists (it is validated when loaded)."""
    return sieve_cache_path().is_file()


def ensure_sieve(build: bool = True) -> str:
    """Put the big sieve in memory; returns how: "memory", "loaded" or "built".

    Loads the cache file if it is present and sound (about 0.05 s); otherwise builds the sieve
    (about 1 s on the 2-core dev machine; 64 MiB) and caches it, unless `build` is False, in
    which case it returns "missing". A file that fails validation is ignored (and overwritten by
    the next build); a cache directory that cannot be written only costs the caching.
    """
    global _big_cache, _rejected_file
    with _lock:
        if _big_cache is not None:
            return "memory"
        path = sieve_cache_path()
        stamp = _file_stamp(path)
        if stamp is not None and stamp != _rejected_file:
            loaded = _load_sieve_file(path)
            if loaded is not None:
                _big_cache = loaded
                return "loaded"
            _rejected_file = stamp  # do not re-read a bad 64 MiB file on every call
        if not build:
            return "missing"
        sieve = _build_big_sieve()
        built = _accept(sieve)
        if built is None:  # would be a bug in the builder, not bad luck
            raise RuntimeError("the freshly built sieve failed its self-check")
        with contextlib.suppress(OSError):
            _save_sieve_file(path, sieve)
        _big_cache = built
        return "built"


def release_sieve() -> None:
    """Drop the big sieve from memory (tests use it; the cache file stays)."""
    global _big_cache
    with _lock:
        _big_cache = None


def _big_for_lookup(a: np.ndarray) -> np.ndarray | None:
    """The big sieve if it is in memory, or on disk and worth loading for these values."""
    if _big_cache is not None:
        return _big_cache[0]
    if a.size >= AUTOLOAD_MIN and sieve_cached():
        mid = np.count_nonzero((a >= SMALL_LIMIT) & (a < SIEVE_LIMIT))
        if mid >= AUTOLOAD_MIN and ensure_sieve(build=False) != "missing":
            return _big_cache[0]
    return None


def _lookup_big(a: np.ndarray, sieve: np.ndarray) -> np.ndarray:
    """is_prime for int64 values in [0, SIEVE_LIMIT) from the bit-packed sieve.

    Value v is bit (v >> 1) & 7 of byte v >> 4. The random gather dominates (one cache miss per
    value), so the rest works on one-byte arrays and in place: fewer passes, fewer page faults.
    """
    bits = np.take(sieve, a >> 4)
    low = a.astype(np.uint8)  # the low 8 bits of each value
    odd = low & 1  # the sieve only knows odd numbers
    np.right_shift(low, 1, out=low)
    np.bitwise_and(low, 7, out=low)
    np.right_shift(bits, low, out=bits)
    np.bitwise_and(bits, odd, out=bits)
    prime = bits.view(bool)
    if a.size and a.min() <= 2:
        prime[a == 2] = True  # the even prime
    return prime


def _lookup_small(a: np.ndarray) -> np.ndarray:
    """is_prime for int64 values in [0, SMALL_LIMIT) from the small sieve."""
    flags, _ = _small()
    prime = flags[a >> 1] & (a & 1).astype(bool)
    prime[a == 2] = True
    return prime


# --------------------------------------------------------------------------------------------
# Trial division and Miller-Rabin


@functools.cache
def _trial_tables() -> tuple[tuple[int, np.ndarray], ...]:
    """Groups of odd primes <= TRIAL_LIMIT as (product M, flags "r is coprime to M" for r < M).

    One floor division by M (NumPy divides by a scalar with libdivide, unlike its `%`) and one
    table lookup test a value against the whole group.
    """
    primes = small_odd_primes(TRIAL_LIMIT).tolist()
    groups, current, product = [], [], 1
    for p in primes:
        if current and product * p > 1 << 18:  # keep each table (bytes) within L2
            groups.append(current)
            current, product = [], 1
        current.append(p)
        product *= p
    groups.append(current)
    tables = []
    for group in groups:
        m = math.prod(group)
        ok = np.ones(m, dtype=bool)
        for p in group:
            ok[::p] = False  # residues r divisible by p: 0, p, 2p, ...
        tables.append((m, ok))
    return tuple(tables)


def _trial_survivors(n: np.ndarray) -> np.ndarray:
    """Positions in `n` (odd, > TRIAL_LIMIT) with no prime factor <= TRIAL_LIMIT."""
    idx = np.arange(len(n))
    cur, alive = n, None
    for k, (m, ok) in enumerate(_trial_tables()):
        keep = ok[cur - (cur // m) * m]
        alive = keep if alive is None else alive & keep
        # compacting is the costly step, so it happens every second group
        if k % 2 or k == len(_trial_tables()) - 1:
            sel = np.flatnonzero(alive)
            idx, cur, alive = idx[sel], cur[sel], None
    return idx


class _Mod53:
    """Modular arithmetic for odd moduli n < 2**53, vectorised over int64 arrays, exact on every
    platform (no long double).

    Residues are kept balanced, |x| <= n/2 + 4, and a product is reduced in two float-assisted
    steps. With t = x*y/n (|t| < 2**51 + 5), q1 = rint(x * y * (1/n)) computed in float64 is
    within 1.25 of t (three roundings of 2**-53 relative each), so r1 = x*y - q1*n, computed
    exactly with int64 wrap-around, has |r1| <= 1.25 n. Then q2 = rint(r1 * (1/n)) is within
    0.5 + 4e-16 of r1/n, so r2 = r1 - q2*n has |r2| <= n/2 + 4 again. Fourteen cheap passes
    instead of an integer `%`, which NumPy cannot vectorise and which costs as much as ten.
    Scratch buffers are preallocated: fresh 256 KiB temporaries would page-fault every time.
    """

    dtype = np.int64
    base2_window = 3  # |x| << 7 < 2**60

    def __init__(self, n: np.ndarray):
        self.n = n.astype(np.int64)
        self.inv = 1.0 / n.astype(np.float64)
        self._f = np.empty(len(n), dtype=np.float64)
        self._g = np.empty(len(n), dtype=np.float64)
        self._q = np.empty(len(n), dtype=np.int64)

    def lift(self, a: np.ndarray) -> np.ndarray:
        """Canonical residues in [0, n) to balanced ones."""
        return np.where(a > self.n // 2, a - self.n, a)

    def is_one(self, x: np.ndarray) -> np.ndarray:
        return x == 1

    def is_minus_one(self, x: np.ndarray, n: np.ndarray | None = None) -> np.ndarray:
        # balanced residues are unique near 0: 1 - n and n - 1 are out of range for n > 10
        return x == -1

    def _reduce(self, r: np.ndarray) -> np.ndarray:
        """r -> r - rint(r/n)*n, for |r| < 2**60 with |r/n| small enough (see the class doc)."""
        g, q = self._g, self._q
        np.copyto(g, r, casting="unsafe")
        np.multiply(g, self.inv, out=g)
        np.rint(g, out=g)
        np.copyto(q, g, casting="unsafe")
        np.multiply(q, self.n, out=q)
        return np.subtract(r, q, out=r)

    def _product(self, a: np.ndarray, f: np.ndarray, out: np.ndarray) -> np.ndarray:
        # f holds float(a) * float(b); out already holds a * b (int64, wrapping)
        q = self._q
        np.multiply(f, self.inv, out=f)
        np.rint(f, out=f)
        np.copyto(q, f, casting="unsafe")
        np.multiply(q, self.n, out=q)
        np.subtract(out, q, out=out)
        return self._reduce(out)

    def mul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = a*b mod n, balanced (out may be a or b)."""
        f, g = self._f, self._g
        np.copyto(f, a, casting="unsafe")
        np.copyto(g, b, casting="unsafe")
        np.multiply(f, g, out=f)
        np.multiply(a, b, out=out)
        return self._product(a, f, out)

    def sqr(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        f = self._f
        np.copyto(f, a, casting="unsafe")
        np.multiply(f, f, out=f)
        np.multiply(a, a, out=out)
        return self._product(a, f, out)

    def shift(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """x = x * 2**bits mod n, in place, for bits <= 7."""
        np.left_shift(x, bits, out=x)
        return self._reduce(x)


class _Mod32:
    """Modular arithmetic for odd moduli n < 2**32: a*b < 2**64 is exact in uint64, and
    residues are canonical, in [0, n)."""

    dtype = np.uint64
    base2_window = 5  # x << 31 < 2**63 for x < 2**32

    def __init__(self, n: np.ndarray):
        self.n = n.astype(np.uint64)

    def lift(self, a: np.ndarray) -> np.ndarray:
        return a

    def is_one(self, x: np.ndarray) -> np.ndarray:
        return x == 1

    def is_minus_one(self, x: np.ndarray, n: np.ndarray | None = None) -> np.ndarray:
        return x == (self.n if n is None else n) - 1

    def mul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        np.multiply(a, b, out=out)
        return np.remainder(out, self.n, out=out)

    def sqr(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        return self.mul(a, a, out)

    def shift(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        np.left_shift(x, bits, out=x)
        return np.remainder(x, self.n, out=x)


def _pow_base2(mod, d: np.ndarray, nbits: int) -> np.ndarray:
    """2**d mod n, w exponent bits at a time: x -> x**(2**w) * 2**(those w bits), the last
    multiplication being a shift (|x| < n keeps the shifted value below 2**63).
    """
    w = mod.base2_window
    x = np.ones(len(d), dtype=mod.dtype)
    bits = np.empty(len(d), dtype=np.int64)
    top = (nbits - 1) // w * w
    for shift in range(top, -1, -w):
        if shift != top:
            for _ in range(w):
                mod.sqr(x, x)
        np.right_shift(d, shift, out=bits)
        np.bitwise_and(bits, 2**w - 1, out=bits)
        mod.shift(x, bits.astype(mod.dtype, copy=False))
    return x


def _pow_general(mod, a: np.ndarray, d: np.ndarray, nbits: int) -> np.ndarray:
    """a**d mod n with a 4-bit fixed window: a table of a**0..a**15, then per 4 bits of d four
    squarings and one multiplication by a table entry (instead of up to four multiplications).
    """
    w, m = 4, len(d)
    table = np.empty((1 << w, m), dtype=mod.dtype)
    table[0] = 1
    table[1] = mod.lift(a)
    for j in range(2, 1 << w):
        mod.mul(table[j - 1], table[1], table[j])
    flat = table.ravel()
    cols = np.arange(m)
    idx = np.empty(m, dtype=np.int64)
    factor = np.empty(m, dtype=mod.dtype)

    def entry(shift: int) -> np.ndarray:
        # flat index of table[(d >> shift) & 15, column]
        np.right_shift(d, shift, out=idx)
        np.bitwise_and(idx, 2**w - 1, out=idx)
        np.multiply(idx, m, out=idx)
        np.add(idx, cols, out=idx)
        return np.take(flat, idx, out=factor)

    top = (nbits - 1) // w * w
    x = entry(top).copy()
    for shift in range(top - w, -1, -w):
        for _ in range(w):
            mod.sqr(x, x)
        mod.mul(x, entry(shift), x)
    return x


def _strong_probable_prime(n: np.ndarray, base, big: bool) -> np.ndarray:
    """Miller-Rabin: True where odd n > 2 is a strong probable prime to `base`.

    `base` is 2 (fast path: the multiplications by 2 are shifts) or a uint64 array with one base
    per element. `big` selects the float-assisted arithmetic needed once some n >= 2**32.
    """
    kind = _Mod53 if big else _Mod32
    mod = kind(n)
    low = (n - 1) & -(n - 1)  # lowest set bit of n - 1, i.e. 2**s
    s = np.frexp(low.astype(np.float64))[1] - 1
    d = (n - 1) >> s
    nbits = int(d.max()).bit_length()
    if isinstance(base, int):
        x = _pow_base2(mod, d, nbits)
        passed = np.zeros(len(n), dtype=bool)
    else:
        a = np.remainder(base, n.astype(np.uint64)).astype(kind.dtype)
        # sympy.ntheory.primetest.mr skips a base that reduces to 0 or 1; so do we
        passed = a < 2
        x = _pow_general(mod, a, d, nbits)
    passed |= mod.is_one(x) | mod.is_minus_one(x)
    # then up to s - 1 squarings looking for n - 1
    todo = np.flatnonzero(~passed & (s > 1))
    x, s_left = x[todo], s[todo] - 1
    while len(todo):
        sub = kind(n[todo])
        sub.sqr(x, x)
        hit = sub.is_minus_one(x)
        passed[todo[hit]] = True
        s_left -= 1
        # x == 1 means a non-trivial square root of 1 appeared: n is composite
        alive = ~hit & (s_left > 0) & ~sub.is_one(x)
        todo, x, s_left = todo[alive], x[alive], s_left[alive]
    return passed


def _chunked(func, n: np.ndarray, *args) -> np.ndarray:
    """func over chunks of _CHUNK values: small enough for L2, big enough to amortise NumPy's
    per-call overhead (a chunk costs a few hundred ufunc calls per base)."""
    out = np.empty(len(n), dtype=bool)
    for i in range(0, len(n), _CHUNK):
        part = n[i : i + _CHUNK]
        extra = [arg[i : i + _CHUNK] for arg in args]
        out[i : i + _CHUNK] = func(part, *extra, int(part.max()) >= 2**32)
    return out


def _miller_rabin(n: np.ndarray) -> np.ndarray:
    """Deterministic primality of odd int64 n in [3, 2**53), sorted ascending, vectorised."""
    if len(n) == 0:
        return np.zeros(0, dtype=bool)
    # Base 2 first for everyone: the cheapest base, and it removes almost every composite.
    prime = _chunked(lambda part, big: _strong_probable_prime(part, 2, big), n)
    # The remaining bases only see base-2 strong probable primes (nearly all of them prime, so
    # nearly all need every base anyway): all (value, base) pairs go through in one batch, which
    # keeps the arrays long enough for NumPy to be efficient.
    cand = np.flatnonzero(prime)
    lo = 0
    for hi, bases in _MR_BASES:
        sel = cand[(n[cand] >= lo) & (n[cand] < hi)]
        lo = hi
        others = np.array([b for b in bases if b != 2], dtype=np.uint64)
        if not len(sel) or not len(others):
            continue
        pairs_n = np.tile(n[sel], len(others))
        pairs_base = np.repeat(others, len(sel))
        ok = _chunked(_strong_probable_prime, pairs_n, pairs_base)
        prime[sel] = ok.reshape(len(others), len(sel)).all(axis=0)
    return prime


def _is_prime_int(n: int) -> bool:
    """is_prime for one Python int in [SMALL_LIMIT, 2**53): the same trial division and
    deterministic Miller-Rabin, with Python's pow. A few hundred NumPy calls on one-element
    arrays would take a millisecond; this takes microseconds.
    """
    if n % 2 == 0 or math.gcd(n, _trial_product()) != 1:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    bases = next(bases for bound, bases in _MR_BASES if n < bound)
    for base in (2, *bases):
        a = base % n
        if a < 2:
            continue  # as sympy.ntheory.primetest.mr
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


# Up to this many values, the pure-Python test beats the vectorised one (NumPy's per-call
# overhead dominates short arrays); measured crossovers: ~200 below 2**32, ~500 above.
_PYTHON_MAX_32, _PYTHON_MAX_53 = 200, 400


@functools.cache
def _trial_product() -> int:
    """The product of the odd primes <= TRIAL_LIMIT: one gcd does the whole trial division."""
    return math.prod(small_odd_primes(TRIAL_LIMIT).tolist())


def _is_prime_large(a: np.ndarray) -> np.ndarray:
    """is_prime for int64 values in [SMALL_LIMIT, 2**53) by trial division and Miller-Rabin."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    if len(a) <= (_PYTHON_MAX_32 if a.max() < 2**32 else _PYTHON_MAX_53):
        return np.array([_is_prime_int(n) for n in a.tolist()], dtype=bool)
    prime = np.zeros(len(a), dtype=bool)
    odd = np.flatnonzero(a & 1)
    survivors = odd[_trial_survivors(a[odd])]
    if len(survivors):
        # sorting by size keeps the cheap 32-bit arithmetic for the values that allow it
        order = survivors[np.argsort(a[survivors], kind="stable")]
        prime[order] = _miller_rabin(a[order])
    return prime


def _is_prime_flat(a: np.ndarray) -> np.ndarray:
    """is_prime for a 1-D int64 array of validated values in [0, 2**53)."""
    if a.size == 0:
        return np.zeros(0, dtype=bool)
    top = int(a.max())
    big = _big_for_lookup(a) if top >= SMALL_LIMIT else None
    fast_limit = SIEVE_LIMIT if big is not None else SMALL_LIMIT
    lookup = (lambda v: _lookup_big(v, big)) if big is not None else _lookup_small
    if top < fast_limit:
        return lookup(a)
    prime = np.zeros(a.shape, dtype=bool)
    low = a < fast_limit
    if low.any():
        prime[low] = lookup(a[low])
    rest = np.flatnonzero(~low)
    prime[rest] = _is_prime_large(a[rest])
    return prime


def _is_prime_scalar(n: int) -> bool:
    if n < SMALL_LIMIT:
        return n == 2 or (n % 2 == 1 and bool(_small()[0][n >> 1]))
    big = _big_cache
    if big is not None and n < SIEVE_LIMIT:
        return n % 2 == 1 and bool((int(big[0][n >> 4]) >> ((n >> 1) & 7)) & 1)
    return _is_prime_int(n)


def is_prime(values):
    """Exact primality of integers in [0, 2**53).

    `values`: a Python int, a NumPy integer, a (nested) list of ints, or a NumPy array of any
    integer dtype. Integral floats (7.0, or a float array holding only integers) are accepted,
    since float64 is exact below 2**53. Returns a Python bool for a scalar, else a bool array of
    the input's shape. 0 and 1 are not prime, 2 is.

    Raises ValueError naming the first offending value for negatives, values >= 2**53,
    non-integral or non-finite floats, bools and strings.
    """
    if type(values) is int and 0 <= values < EXACT_LIMIT:
        return _is_prime_scalar(values)  # the common scalar case, without NumPy's overhead
    arr, scalar = _as_int_array(values, "is_prime")
    flat = _is_prime_flat(arr.ravel())
    return bool(flat[0]) if scalar else flat.reshape(arr.shape)


def small_odd_primes(limit: int) -> np.ndarray:
    """The odd primes p <= limit (inclusive), ascending, as int64. limit <= SIEVE_LIMIT."""
    limit = _check_int("small_odd_primes", "limit", limit, 0, SIEVE_LIMIT)
    if limit < SMALL_LIMIT:
        flags, _ = _small()
        return 2 * np.flatnonzero(flags[: (limit + 1) // 2]) + 1
    if _big_cache is not None:
        count = (limit + 1) // 2  # odd numbers 1, 3, ..., <= limit
        head = _big_cache[0][: (count + 7) // 8]
        bits = np.unpackbits(head, bitorder="little")[:count]
        return 2 * np.flatnonzero(bits) + 1
    parts = []
    for first in range(0, (limit + 1) // 2, _SEGMENT):
        count = min(_SEGMENT, (limit + 1) // 2 - first)
        parts.append(2 * (first + np.flatnonzero(_odd_segment(2 * first + 1, count))) + 1)
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------
# Prime counting


def _pi_small(x: int) -> int:
    """pi(x) for 0 <= x < SMALL_LIMIT."""
    if x < 2:
        return 0
    _, cumulative = _small()
    return 1 + int(cumulative[(x - 1) // 2])


def _pi_big(x: int) -> int:
    """pi(x) for 0 <= x <= SIEVE_LIMIT from the in-memory big sieve."""
    if x < 2:
        return 0
    sieve, blocks = _big_cache
    i = (min(x, SIEVE_LIMIT - 1) - 1) // 2  # odd numbers 1, 3, ..., 2i+1 are <= x
    byte, bit = i >> 3, i & 7
    block = byte // _BLOCK_BYTES
    count = int(blocks[block])
    count += int(np.bitwise_count(sieve[block * _BLOCK_BYTES : byte]).sum())
    count += int(sieve[byte] & ((2 << bit) - 1)).bit_count()
    return 1 + count


def _pi_lucy(x: int) -> int:
    """pi(x) by Lucy Hedgehog's algorithm: O(x^(3/4)) work, O(sqrt(x)) memory, vectorised.

    S(v) starts as the count of 2..v and, after processing each prime p <= sqrt(x), stops
    counting numbers whose least prime factor is p. Only v of the form x // k ever matter:
    small[v] holds S(v) for v <= r and large[k] holds S(x // k) for k <= r. Each prime's
    update reads only values from before that update, so it can be done as one array operation.
    """
    if x < 2:
        return 0
    r = math.isqrt(x)
    small = np.arange(-1, r, dtype=np.int64)  # small[v] = v - 1
    small[0] = 0
    ks = np.arange(1, r + 1, dtype=np.int64)
    large = np.empty(r + 1, dtype=np.int64)
    large[1:] = x // ks - 1
    for p in [2] + small_odd_primes(r).tolist():
        sp = int(small[p - 1])
        p2 = p * p
        kmax = min(r, x // p2)
        kp = ks[:kmax] * p
        inner = kp <= r
        vals = np.empty(kmax, dtype=np.int64)
        vals[inner] = large[kp[inner]]
        vals[~inner] = small[x // kp[~inner]]
        large[1 : kmax + 1] -= vals - sp
        if p2 <= r:
            small[p2:] -= small[np.arange(p2, r + 1) // p] - sp
    return int(large[1])


def _count_segment(lo: int, hi: int) -> int:
    """Number of primes in [lo, hi] (inclusive) by a segmented sieve of the odd numbers."""
    if hi < lo:
        return 0
    count = 1 if lo <= 2 <= hi else 0
    first = lo | 1
    total = (hi - first) // 2 + 1 if hi >= first else 0
    for k in range(0, total, _SEGMENT):
        count += int(np.count_nonzero(_odd_segment(first + 2 * k, min(_SEGMENT, total - k))))
    return count


def _counts_above(xs: list[int]) -> list[int]:
    """For ascending xs: the number of primes in (xs[0], x] for each x, by ONE segmented sieve
    of (xs[0], xs[-1]] (what _sieve_cost prices), not one sieve per gap: 1,000 bins of 1,000
    integers near 10^18 sieve one segment instead of a thousand."""
    lo, hi = xs[0] + 1, xs[-1]
    first = lo | 1
    total = (hi - first) // 2 + 1 if hi >= first else 0
    # odd numbers in [first, x] for each x: the flag index up to which x's count runs
    upto = np.array([(x - first) // 2 + 1 if x >= first else 0 for x in xs], dtype=np.int64)
    cum = np.zeros(len(xs), dtype=np.int64)
    running = 0
    for k0 in range(0, total, _SEGMENT):
        n = min(_SEGMENT, total - k0)
        counts = np.cumsum(_odd_segment(first + 2 * k0, n), dtype=np.int64)
        inside = (upto > k0) & (upto <= k0 + n)
        cum[inside] = running + counts[upto[inside] - k0 - 1]
        running += int(counts[-1])
    if lo <= 2 <= hi:  # the one even prime
        cum += np.array([x >= 2 for x in xs], dtype=np.int64)
    return cum.tolist()


def _sieve_cost(gap: int, hi: int) -> float:
    """Seconds to sieve a gap of `gap` integers below hi (measured on the 2-core dev machine)."""
    segments = gap // (2 * _SEGMENT) + 1
    return 2e-9 * gap + segments * 1e-6 * math.isqrt(hi) / max(math.log(hi), 1.0) / 2


def _lucy_cost(x: int) -> float:
    return 8e-9 * x**0.75


@functools.cache
def _primecount():
    """primecountpy's prime_pi, or None when the wheel is not installed.

    primecountpy imports cysignals, whose initialisation installs signal handlers, which Python
    allows only in the main thread: imported first from a Streamlit page (a script thread) it
    raises "signal only works in main thread". There the import runs with signal.signal made a
    no-op; the only loss is that Ctrl-C cannot interrupt a count running in that thread.
    """
    import signal

    with _lock:
        in_main = threading.current_thread() is threading.main_thread()
        real = signal.signal
        if not in_main:
            signal.signal = lambda *args, **kwargs: signal.SIG_DFL
        try:
            from primecountpy import prime_pi as pc_pi
        except ImportError:
            return None
        finally:
            signal.signal = real
    return pc_pi


def _primecount_cost(x: int) -> float:
    """Seconds for primecount's pi(x) (measured on the 2-core machine: 1e10 0.9 ms, 1e13 47 ms,
    1e15 0.46 s, 1e16 1.8 s, 1e18 ~44 s)."""
    return 5e-4 + 0.5 * (x / 1e15) ** 0.63


def _fresh(x: int) -> tuple[str, float]:
    """The cheaper way to compute pi(x) from nothing above the sieves: (method, seconds)."""
    if _primecount() is not None:
        return "primecount", _primecount_cost(x)
    return "lucy", _lucy_cost(x)


def _sieve_reach() -> int:
    """pi is a lookup for x < this: the big sieve when loadable, else the small one."""
    if _big_cache is None and sieve_cached():
        ensure_sieve(build=False)
    return SIEVE_LIMIT + 1 if _big_cache is not None else SMALL_LIMIT


_pi_memo: dict[int, int] = {}  # pi(x) for x above the sieves' reach, however computed
_PI_MEMO_MAX = 100_000


def _plan(xs: list[int], relative: bool, reach: int) -> tuple[list, float]:
    """How _pi_many computes pi at the sorted distinct xs: ("segment" | method, x) steps and the
    estimated seconds. "relative" sieves the whole span from its lowest value (see _pi_many)."""
    ordered = sorted(set(xs))
    lo, hi = ordered[0], ordered[-1]
    if relative and lo >= reach and lo not in _pi_memo and _sieve_cost(hi - lo, hi) < _fresh(lo)[1]:
        return [("relative", x) for x in ordered], _sieve_cost(hi - lo, hi)
    steps, total, prev_x = [], 0.0, reach - 1
    for x in ordered:
        if x < reach:
            steps.append(("lookup", x))
            continue
        if x in _pi_memo:
            steps.append(("memo", x))
        else:
            method, cost = _fresh(x)
            gap_cost = _sieve_cost(x - prev_x, x)
            if gap_cost < cost:
                method, cost = "segment", gap_cost
            steps.append((method, x))
            total += cost
        prev_x = x
    return steps, total


def count_seconds(xs) -> float:
    """Estimated seconds for pi at every x of xs (0 for values already known or below the sieves)."""
    return _plan([int(x) for x in xs], False, _sieve_reach())[1]


def _pi_many(xs: list[int], relative: bool = False) -> list[int]:
    """pi(x) for each x in -1 <= x <= MAX_DENSITY_HI, sharing work between nearby values.

    Values the sieves reach are lookups. Above, values are taken in ascending order and each is
    either sieved up from the previous one or computed afresh (primecount, else Lucy's
    algorithm), whichever the cost model says is cheaper; results are memoised. With
    relative=True the results may all be off by one common constant (callers that only take
    differences allow it), which lets a narrow range far above the sieves be sieved outright.
    """
    reach = _sieve_reach()
    lookup = _pi_big if reach > SMALL_LIMIT else _pi_small
    steps, _ = _plan(xs, relative, reach)
    if steps[0][0] == "relative":
        ordered = [x for _, x in steps]
        known = dict(zip(ordered, _counts_above(ordered), strict=True))
        return [known[x] for x in xs]
    known = {}
    prev_x = reach - 1
    prev_pi = lookup(prev_x)
    for method, x in steps:
        if method == "lookup":
            known[x] = lookup(x)
            continue
        if method == "segment":
            value = prev_pi + _count_segment(prev_x + 1, x)
        elif method == "primecount":
            value = int(_primecount()(x))
        elif method == "lucy":
            value = _pi_lucy(x)
        else:
            value = _pi_memo[x]
        if len(_pi_memo) >= _PI_MEMO_MAX:
            _pi_memo.clear()
        _pi_memo[x] = value
        known[x] = value
        prev_x, prev_pi = x, value
    return [known[x] for x in xs]


def _check_cost(func: str, xs: list[int], max_seconds: float | None) -> None:
    bound = limits.MAX_COUNT_SECONDS if max_seconds is None else max_seconds
    cost = count_seconds(xs)
    if cost > bound:
        raise ValueError(f"{func}: counting exactly would take about {cost:,.0f} s (limit {bound:g} s); "
                         "ask for a lower hi or fewer bins")


def clear_count_cache() -> None:
    """Forget memoised prime counts (the bench uses this to time cold counts)."""
    _pi_memo.clear()


def prime_pi(x: int, max_seconds: float | None = None) -> int:
    """pi(x): the number of primes p <= x, for integers 0 <= x <= 10**18 (MAX_DENSITY_HI).

    ValueError if the estimated time exceeds max_seconds (default limits.MAX_COUNT_SECONDS).
    """
    x = _check_int("prime_pi", "x", x, 0, limits.MAX_DENSITY_HI)
    _check_cost("prime_pi", [x], max_seconds)
    return _pi_many([x])[0]


def count_primes(lo: int, hi: int, max_seconds: float | None = None) -> int:
    """The number of primes in [lo, hi] (both included), 0 <= lo <= hi <= 10**18; ValueError
    if the estimated time exceeds max_seconds (default limits.MAX_COUNT_SECONDS)."""
    lo, hi = _check_range("count_primes", lo, hi)
    if _plan([lo - 1, hi], True, _sieve_reach())[1] > (limits.MAX_COUNT_SECONDS if max_seconds is None else max_seconds):
        _check_cost("count_primes", [lo - 1, hi], max_seconds)
    below, top = _pi_many([lo - 1, hi], relative=True)
    return top - below


def _check_range(func: str, lo, hi) -> tuple[int, int]:
    lo = _check_int(func, "lo", lo, 0, limits.MAX_DENSITY_HI)
    hi = _check_int(func, "hi", hi, 0, limits.MAX_DENSITY_HI)
    if lo > hi:
        raise ValueError(f"{func}: lo > hi ({lo} > {hi})")
    return lo, hi


# --------------------------------------------------------------------------------------------
# Reference curves


_EULER_GAMMA = 0.57721566490153286061
_LI2 = 1.0451637801174927848  # li(2)


def _real_array(x, func: str) -> tuple[np.ndarray, bool]:
    """Non-negative finite reals as float64, plus "was a scalar"; ValueError otherwise."""
    scalar = np.ndim(x) == 0 and not isinstance(x, np.ndarray)
    if isinstance(x, bool | np.bool_ | str | bytes):
        _fail(func, x, "is not a number")
    arr = np.asarray(x)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        _fail(func, x if scalar else arr.dtype, "is not a number")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        _fail(func, _first(arr, ~finite), "is not a finite number")
    if (arr < 0).any():
        _fail(func, _first(arr, arr < 0), "is negative")
    return arr, scalar


def _li_raw(x: np.ndarray) -> np.ndarray:
    """li(x) for float64 x > 0, x != 1, by Ramanujan's series (converges for every x > 0):

    li(x) = gamma + ln|ln x| + sqrt(x) * sum_{n>=1} (-1)^(n-1) (ln x)^n / (n! 2^(n-1))
                                          * sum_{k=0}^{floor((n-1)/2)} 1 / (2k+1)
    """
    lnx = np.log(x)
    term = lnx.copy()  # (-1)^(n-1) (ln x)^n / (n! 2^(n-1)) at n = 1
    inner = np.ones_like(x)
    total = term * inner
    for n in range(2, 400):
        term *= -lnx / (2.0 * n)
        if n % 2:
            inner += 1.0 / n
        step = term * inner
        total += step
        if np.all(np.abs(step) <= 1e-17 * np.abs(total)):
            break
    return _EULER_GAMMA + np.log(np.abs(lnx)) + np.sqrt(x) * total


def li(x, offset: bool = False):
    """The logarithmic integral li(x) = PV integral_0^x dt / ln t, for real x >= 0.

    With offset=True, the offset integral Li(x) = li(x) - li(2) (zero at 2; its usual use as
    an estimate of pi(x)). li(0) = 0 and li(1) = -inf. Vectorised: float for a scalar, float64
    array otherwise. Relative accuracy about 1e-13 up to 2**53 (absolute near li's zero at
    x = 1.4513692...). ValueError for negative, NaN or infinite input.
    """
    arr, scalar = _real_array(x, "li")
    out = np.zeros_like(arr)
    pos = arr > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out[pos] = _li_raw(arr[pos])
    out[arr == 1] = -np.inf
    if offset:
        out -= _LI2
    return float(out) if scalar else out


def x_over_ln_x(x):
    """The x / ln x estimate of pi(x), for real x >= 0: x / ln x for x >= 2 and 0 below 2.

    (pi(x) = 0 below 2, and x / ln x has a pole at 1.) Float for a scalar, else a float64 array.
    """
    arr, scalar = _real_array(x, "x_over_ln_x")
    out = np.zeros_like(arr)
    big = arr >= 2
    out[big] = arr[big] / np.log(arr[big])
    return float(out) if scalar else out


def _li_estimate(x: np.ndarray) -> np.ndarray:
    """The offset li(x) estimate of pi(x): Li(x) = li(x) - li(2) for x >= 2 and 0 below 2."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    big = x >= 2
    out[big] = _li_raw(x[big]) - _LI2
    return out


# --------------------------------------------------------------------------------------------
# Odd integers


def to_odd(x):
    """The seed's map from a real x >= 0 to an odd integer: 2*floor(x) + 1.

    Accepts a scalar or an array-like of ints or floats. Returns a Python int for a scalar, else
    an int64 array of the same shape. Exact: floor is exact in float64, and results must be below
    2**53 (floor(x) < 2**52). ValueError for negative, NaN or infinite x or too large a result.
    """
    scalar = not isinstance(x, np.ndarray | list | tuple)
    if isinstance(x, bool | np.bool_ | str | bytes) or (
        scalar and not isinstance(x, int | float | np.integer | np.floating)
    ):
        _fail("to_odd", x, "is not a number")
    if scalar and isinstance(x, int):
        arr = np.array(min(max(x, -1), 2**52), dtype=np.int64)  # clamped only to be checked
        shown = np.array(x, dtype=object)
    else:
        arr = np.asarray(x)
        if arr.dtype == bool or arr.dtype.kind not in "iuf":
            _fail("to_odd", arr.dtype, "is not a numeric dtype")
        shown = arr
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            _fail("to_odd", _first(shown, ~finite), "is not a finite number")
    negative = arr < 0
    if negative.any():
        _fail("to_odd", _first(shown, negative), "is negative")
    floors = np.floor(arr) if arr.dtype.kind == "f" else arr
    too_big = floors >= 2**52
    if too_big.any():
        _fail("to_odd", _first(shown, too_big), "gives 2*floor(x)+1 >= 2**53")
    odd = 2 * floors.astype(np.int64) + 1
    return int(odd) if scalar else odd


# --------------------------------------------------------------------------------------------
# Binned counts and densities


def _linear_edges(lo: int, hi: int, bins: int) -> list[int]:
    """Edges splitting the integers of [lo, hi] into `bins` runs of near-equal length."""
    n = hi - lo + 1
    return [lo + i * n // bins for i in range(bins)] + [hi]


def _log_edges(lo: int, hi: int, bins: int) -> list[int]:
    """Geometric edges from lo >= 1 to hi, rounded to integers and nudged to stay strictly
    increasing (so at the low end, where bins would be narrower than 1, they are exactly 1 wide).
    """
    ratio = math.log(hi) - math.log(lo)
    edges = [lo]
    for i in range(1, bins):
        edges.append(max(round(math.exp(math.log(lo) + ratio * i / bins)), edges[-1] + 1))
    # leave room for the bins above: bin i can start no later than hi - (bins - 1 - i)
    edges = [min(e, hi - (bins - 1 - i)) for i, e in enumerate(edges)]
    edges[0] = lo
    return edges + [hi]


def _bin_layout(func: str, lo, hi, bins, log) -> tuple[int, int, int, bool]:
    lo, hi = _check_range(func, lo, hi)
    bins = _check_int(func, "bins", bins, 1, limits.MAX_BINS)
    if not isinstance(log, bool | np.bool_):
        raise ValueError(f"{func}: log must be True or False, got {log!r}")
    log = bool(log)
    if log and hi == 0:
        raise ValueError(f"{func}: log spacing needs hi >= 1")
    if log and lo == 0:
        lo = 1  # log spacing starts at 1; 0 is not prime, so no count changes
    if bins > hi - lo + 1:
        raise ValueError(
            f"{func}: {bins} bins do not fit in [{lo}, {hi}]; use at most {hi - lo + 1}"
        )
    return lo, hi, bins, log


def binned_prime_counts(lo: int, hi: int, bins: int, log: bool = False,
                        max_seconds: float | None = None, estimate: bool = False) -> dict:
    """Exact prime counts in `bins` bins covering the integers of [lo, hi], 0 <= lo <= hi <= 10**18.

    Counting is estimated up front (`count_seconds`): beyond max_seconds (default
    limits.MAX_COUNT_SECONDS) the request is refused with the estimate, or with estimate=True
    the edges that fit in the budget are counted (ascending) and the other bins get the Li(x)
    estimate, rounded, with `exact[i]` False.

    Bins: bin i is [edges[i], edges[i+1]) (half-open) for i < bins-1 and the last one is
    [edges[-2], edges[-1]] with edges[-1] = hi (closed), so the bins partition [lo, hi] and
    `counts` sums to count_primes(lo, hi). Linear edges are lo + floor(i*(hi-lo+1)/bins). Log
    edges are geometric from lo to hi, rounded to integers and kept strictly increasing; with
    log=True a lo of 0 is treated as 1 (0 is not prime, so no count changes) and the returned
    `lo` says so. bins must not exceed the number of integers in the range.

    Returns a dict of plain lists and numbers:
      lo, hi, bins, log   the layout actually used
      edges               bins + 1 ints, as above
      counts              exact number of primes in each bin
      widths              number of integers in each bin
      density             counts / widths (primes per integer)
      total               sum(counts) = count_primes(lo, hi)
      ref_x_ln_x_at_edges the x/ln x estimate of pi at each edge (0 below 2)
      ref_li_at_edges     the offset Li(x) = li(x) - li(2) estimate of pi at each edge (0 below 2)
      expected_x_ln_x     per bin, F(right edge) - F(left edge) with F = x/ln x
      expected_li         per bin, the same with F = Li
      x_over_ln_x, li     aliases of expected_x_ln_x and expected_li
      exact               per bin: True when counted, False when a Li(x) estimate
      estimated_seconds   the estimated time of counting every bin exactly
    """
    return _binned("binned_prime_counts", lo, hi, bins, log, max_seconds, estimate)


def _binned(func: str, lo, hi, bins, log, max_seconds=None, estimate=False) -> dict:
    lo, hi, bins, log = _bin_layout(func, lo, hi, bins, log)
    edges = _log_edges(lo, hi, bins) if log else _linear_edges(lo, hi, bins)
    # pi just below each bin's first integer, and pi(hi) for the end of the last bin
    xs = [e - 1 for e in edges[:-1]] + [hi]
    bound = limits.MAX_COUNT_SECONDS if max_seconds is None else max_seconds
    reach = _sieve_reach()
    _, cost = _plan(xs, True, reach)
    exact_x = set(xs)
    if cost > bound:
        if not estimate:
            raise ValueError(
                f"{func}: exact counts for {bins} bins up to {hi:,} would take about {cost:,.0f} s "
                f"(limit {bound:g} s); use fewer bins or a lower hi, or estimate the costly bins "
                "with li(x) (CLI: --estimate)")
        # count the cheapest (lowest) edges that fit in the budget, exactly; estimate the rest
        exact_x, spent = set(), 0.0
        for x in sorted(set(xs)):
            step = count_seconds([x]) if x not in _pi_memo else 0.0
            if spent + step > bound:
                break
            spent += step
            exact_x.add(x)
    exact_xs = [x for x in xs if x in exact_x]
    # only differences of counted edges are used, so one common offset (relative) is harmless
    known = dict(zip(exact_xs, _pi_many(exact_xs, relative=True), strict=True)) if exact_xs else {}
    est_at = _li_estimate(np.array(xs, dtype=np.float64))
    exact = [a in exact_x and b in exact_x for a, b in zip(xs[:-1], xs[1:], strict=True)]
    counts = [known[b] - known[a] if ok else max(int(round(float(eb - ea))), 0)
              for a, b, ea, eb, ok in zip(xs[:-1], xs[1:], est_at[:-1], est_at[1:], exact, strict=True)]
    widths = [b - a for a, b in zip(edges[:-2], edges[1:-1], strict=True)] + [hi - edges[-2] + 1]
    at_edges = np.array(edges, dtype=np.float64)
    ref_x = x_over_ln_x(at_edges)
    ref_li = _li_estimate(at_edges)
    expected_x = np.diff(ref_x).tolist()
    expected_li = np.diff(ref_li).tolist()
    return {
        "lo": lo,
        "hi": hi,
        "bins": bins,
        "log": log,
        "edges": edges,
        "counts": counts,
        "widths": widths,
        "density": [c / w for c, w in zip(counts, widths, strict=True)],
        "total": sum(counts),
        "exact": exact,
        "estimated_seconds": cost,
        "ref_x_ln_x_at_edges": ref_x.tolist(),
        "ref_li_at_edges": ref_li.tolist(),
        "expected_x_ln_x": expected_x,
        "expected_li": expected_li,
        "x_over_ln_x": expected_x,
        "li": expected_li,
    }


def _odd_count(lo: int, hi: int) -> int:
    """Number of odd integers in [lo, hi] (inclusive)."""
    return max((hi + 1) // 2 - lo // 2, 0)


def odd_prime_density(lo: int, hi: int) -> float:
    """P(prime) for a uniformly random odd integer in [lo, hi] (inclusive), exactly:
    (odd primes in [lo, hi]) / (odd integers in [lo, hi]). 0 <= lo <= hi <= 10**10; ValueError
    if the range holds no odd integer (e.g. [2, 2]).
    """
    lo, hi = _check_range("odd_prime_density", lo, hi)
    odd = _odd_count(lo, hi)
    if odd == 0:
        raise ValueError(f"odd_prime_density: [{lo}, {hi}] contains no odd integer")
    return (count_primes(lo, hi) - (lo <= 2 <= hi)) / odd


def odd_prime_density_binned(edges, include_last: bool = True, estimate_above: bool = False):
    """Exact odd-prime density of each bin [edges[i], edges[i+1]) as a float64 array.

    `edges`: strictly increasing integers >= 0. With include_last (the default, matching
    binned_prime_counts) the last bin also includes edges[-1], and may then be just that one
    integer (edges[-2] == edges[-1]). A bin with no odd integer has
    density 0. Bins must lie within [0, 10**10]; with estimate_above=True, bins reaching above
    10**10 use the Li(x) estimate instead (relative error far below 1e-3 there), since exact
    counts would take hours.
    """
    e = [_check_int("odd_prime_density_binned", "edge", v, 0) for v in np.asarray(edges).tolist()]
    # the last bin may be the single integer edges[-1] when it is closed, as in binned_prime_counts
    increasing = all(b > a for a, b in zip(e[:-2], e[1:-1], strict=True))
    if len(e) < 2 or not increasing or e[-1] < e[-2] or (e[-1] == e[-2] and not include_last):
        raise ValueError("odd_prime_density_binned: edges must be >= 2 strictly increasing integers")
    last = [b - 1 for b in e[1:]]
    if include_last:
        last[-1] = e[-1]
    exact_top = BASELINE_EXACT_HI
    if e[-1] > exact_top and not estimate_above:
        raise ValueError(f"odd_prime_density_binned: edges must be <= {exact_top}, got {e[-1]}")
    firsts = np.array(e[:-1], dtype=np.int64)
    lasts = np.array(last, dtype=np.int64)
    exact = lasts <= exact_top
    counts = np.zeros(len(firsts), dtype=np.float64)
    if exact.any():
        xs = [int(v) - 1 for v in firsts[exact]] + [int(v) for v in lasts[exact]]
        pis = _pi_many(xs, relative=True)
        k = int(exact.sum())
        counts[exact] = np.array(pis[k:]) - np.array(pis[:k])
    if (~exact).any():
        lo_f, hi_f = firsts[~exact].astype(np.float64), lasts[~exact].astype(np.float64)
        counts[~exact] = _li_estimate(hi_f) - _li_estimate(lo_f - 1)
    counts -= (firsts <= 2) & (lasts >= 2)  # the even prime
    odd = (lasts + 1) // 2 - firsts // 2
    return np.divide(counts, odd, out=np.zeros_like(counts), where=odd > 0)


def magnitude_matched_baseline(n_values, bins: int = 20) -> float:
    """The prime rate a magnitude-matched random odd guesser would reach on these values.

    Log-spaced integer bins (as binned_prime_counts) span [min, max] of `n_values` (values of 0
    count in the first bin, which starts at 1 or more); the result is sum over bins of (share of
    values in the bin) * (exact odd-prime density of the bin). Fewer bins are used if the range
    holds fewer than `bins` integers; min == max gives one bin of one integer (density 1 if it is
    an odd prime, else 0). Values must be integers in [0, 2**53); bins above 10**10 use the Li
    estimate (see odd_prime_density_binned).
    """
    arr, _ = _as_int_array(n_values, "magnitude_matched_baseline")
    bins = _check_int("magnitude_matched_baseline", "bins", bins, 1, limits.MAX_BINS)
    v = arr.ravel()
    if v.size == 0:
        raise ValueError("magnitude_matched_baseline: no values")
    lo, hi = max(int(v.min()), 1), max(int(v.max()), 1)
    k = min(bins, hi - lo + 1)
    edges = _log_edges(lo, hi, k)
    which = np.clip(np.searchsorted(np.array(edges), v, side="right") - 1, 0, k - 1)
    share = np.bincount(which, minlength=k) / v.size
    density = odd_prime_density_binned(edges, include_last=True, estimate_above=True)
    return float(np.dot(share, density))


def density_table(lo: int, hi: int, bins: int, log: bool, max_seconds: float | None = None,
                  estimate: bool = False) -> dict:
    """Per-bin prime counts and densities over [lo, hi] for the CLI and the density page.

    Validates like binned_prime_counts (0 <= lo <= hi <= 10**18, 1 <= bins <= MAX_BINS and no
    more bins than integers; log with lo = 0 starts at 1; the same time bound, refusal or
    estimate=True) and raises ValueError with a one-line message. Returns lo, hi, bins, log (as
    used), total (primes in [lo, hi]), odd_prime_density (overall, None if the range holds no
    odd integer), estimated_bins (how many bins are Li(x) estimates), estimated_seconds (of
    counting everything exactly) and rows: one dict per bin with lo and hi (inclusive integer
    bounds), width, count, exact (False: count is the rounded Li(x) estimate), density (primes
    per integer), odd_prime_density (odd primes per odd integer, None if none),
    expected_x_ln_x and expected_li.
    """
    binned = _binned("density_table", lo, hi, bins, log, max_seconds, estimate)
    edges, rows = binned["edges"], []
    for i, count in enumerate(binned["counts"]):
        first = edges[i]
        last = edges[i + 1] - 1 if i < len(binned["counts"]) - 1 else binned["hi"]
        odd = _odd_count(first, last)
        rows.append({
            "lo": first,
            "hi": last,
            "width": binned["widths"][i],
            "count": count,
            "exact": binned["exact"][i],
            "density": binned["density"][i],
            "odd_prime_density": (count - (first <= 2 <= last)) / odd if odd else None,
            "expected_x_ln_x": binned["expected_x_ln_x"][i],
            "expected_li": binned["expected_li"][i],
        })
    odd = _odd_count(binned["lo"], binned["hi"])
    total = binned["total"]
    return {
        "lo": binned["lo"],
        "hi": binned["hi"],
        "bins": binned["bins"],
        "log": binned["log"],
        "total": total,
        "odd_prime_density": (total - (binned["lo"] <= 2 <= binned["hi"])) / odd if odd else None,
        "estimated_bins": binned["exact"].count(False),
        "estimated_seconds": binned["estimated_seconds"],
        "rows": rows,
    }
