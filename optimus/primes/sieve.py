"""The sieves of Eratosthenes behind every exact answer below 2**30, and the big one's disk cache.

* n < SMALL_LIMIT (2**22): a small odd-only sieve held in memory, built in a few milliseconds on
  first use, so a unit test or one CLI call never pays for the big sieve.
* n < SIEVE_LIMIT (2**30, a little above 10**9): a bit-packed odd-only sieve (bit i <-> 2i+1,
  64 MiB), cached on disk as a .npy file under cache_dir(). It is *never built implicitly*
  (about 1 s, plus a 64 MiB write): callers that want it call `ensure_sieve()` up front (the bench
  does). Once it is in memory every call uses it; if it is only on disk, is_prime loads it (about
  0.05 s) for a call with at least AUTOLOAD_MIN values in [SMALL_LIMIT, SIEVE_LIMIT) (see
  `big_for_lookup`), and prime counting loads it whenever it is there.

Segments above the sieves (`odd_segment`) tile a pre-sieved pattern of 3..13 and cross off the
larger base primes; base primes with at most one multiple in a segment are crossed off at once
(near 10^18 a Python loop over them took about 15 s per segment). `small_odd_primes` is the one
list of odd primes in the project.
"""

from __future__ import annotations

import contextlib
import functools
import math
import mmap
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from optimus.validate import require_int

SMALL_LIMIT = 2**22  # the small in-memory sieve covers [0, SMALL_LIMIT)
SIEVE_LIMIT = 2**30  # the big cached sieve covers [0, SIEVE_LIMIT); 2**30 > 10**9
AUTOLOAD_MIN = 100_000  # values in [SMALL_LIMIT, SIEVE_LIMIT) that justify loading the sieve
PI_SIEVE_LIMIT = 54_400_028  # pi(2**30); a loaded cache file must agree with it
SIEVE_BYTES = SIEVE_LIMIT // 16  # 2**30 / 2 odd numbers / 8 bits per byte
CACHE_NAME = "odd_sieve_2p30_v1.npy"
BLOCK_BYTES = 512  # the sieve's cumulative count is kept every 512 bytes (8192 integers)
SEGMENT = 1 << 21  # odd numbers per sieving segment: 2 MiB of bools, fits in L2/L3

_lock = threading.RLock()
_small_cache: tuple[np.ndarray, np.ndarray] | None = None
_big_cache: tuple[np.ndarray, np.ndarray] | None = None
_rejected_file: tuple[str, int, int] | None = None  # a cache file that failed validation


def _sieve_flags_upto(limit: int) -> np.ndarray:
    """Flags of the odd numbers below `limit`: flag i <-> 2i+1 is prime. For small limits only."""
    flags = np.ones((limit + 1) // 2, dtype=bool)
    flags[0] = False  # 1 is not prime
    for i in range(1, (math.isqrt(limit) - 1) // 2 + 1):
        if flags[i]:
            p = 2 * i + 1
            flags[p * p // 2 :: p] = False
    return flags


def small_sieve() -> tuple[np.ndarray, np.ndarray]:
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


def odd_segment(lo: int, count: int) -> np.ndarray:
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
    out = np.empty(SIEVE_BYTES, dtype=np.uint8)
    total = SIEVE_LIMIT // 2
    for first in range(0, total, SEGMENT):
        count = min(SEGMENT, total - first)
        seg = odd_segment(2 * first + 1, count)
        out[first // 8 : (first + count) // 8] = np.packbits(seg, bitorder="little")
    return out


def cache_dir() -> Path:
    """Where the big sieve is cached: $OPTIMUS_CACHE_DIR, else ~/.cache/optimus."""
    env = os.environ.get("OPTIMUS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "optimus"


def sieve_cache_path() -> Path:
    """The big sieve's cache file (it may not exist yet)."""
    return cache_dir() / CACHE_NAME


def _block_counts(sieve: np.ndarray) -> np.ndarray:
    """cumulative[k] = odd primes in the first k*BLOCK_BYTES bytes of the sieve (int64)."""
    per_block = np.bitwise_count(sieve.reshape(-1, BLOCK_BYTES)).sum(axis=1, dtype=np.int64)
    return np.concatenate(([0], np.cumsum(per_block)))


def _accept(sieve: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(sieve, block counts) if the array looks like a sound sieve, else None.

    The total count catches truncated or foreign files; the spot checks catch a shifted or
    inverted one.
    """
    if sieve.dtype != np.uint8 or sieve.shape != (SIEVE_BYTES,):
        return None
    counts = _block_counts(sieve)
    if counts[-1] + 1 != PI_SIEVE_LIMIT:  # + 1 for the even prime 2
        return None
    probes = np.array([1, 3, 9, 91, 2047, 1_000_000_007, SIEVE_LIMIT - 35, SIEVE_LIMIT - 1])
    if lookup_big(probes, sieve).tolist() != [False, True, False, False, False, True, True, False]:
        return None
    return sieve, counts


def _load_sieve_file(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    # Mapped read-only rather than read into a private copy: the pages are the kernel's page
    # cache, shared by the server and every trainer it starts, and `release_sieve_pages` drops
    # them from this process's resident set after a page run (a lookup faults back in only the
    # 4 KiB pages it touches). The validation below reads every byte once. The file is never
    # changed in place (`_save_sieve_file` writes a new file and renames it over the old one,
    # whose mapping stays valid), so the mapped array cannot change under us either.
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(fh)
            offset = fh.tell()
            if fortran or dtype != np.uint8 or len(shape) != 1:
                return None
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        sieve = np.frombuffer(mapped, dtype=np.uint8, count=shape[0], offset=offset)
    except (OSError, ValueError, EOFError):
        return None
    accepted = _accept(sieve)
    if accepted is not None:
        _drop_pages(mapped)
    return accepted


def _drop_pages(mapped: mmap.mmap) -> None:
    if hasattr(mmap, "MADV_DONTNEED"):  # Linux; elsewhere the pages stay resident
        with contextlib.suppress(OSError, ValueError):
            mapped.madvise(mmap.MADV_DONTNEED)


def release_sieve_pages() -> None:
    """Drop the mapped big sieve's pages from this process's resident set (they stay in the
    page cache): a long-lived server calls it after each request. No-op when not mapped."""
    cache = _big_cache
    mapped = getattr(cache[0].base, "obj", None) if cache is not None else None  # frombuffer's memoryview
    if isinstance(mapped, mmap.mmap):
        _drop_pages(mapped)


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
        try:
            _save_sieve_file(path, sieve)
        except OSError:
            _big_cache = built
        else:  # the saved file, mapped (see _load_sieve_file), rather than this private copy
            _big_cache = _load_sieve_file(path) or built
        return "built"


def release_sieve() -> None:
    """Drop the big sieve from memory (tests use it; the cache file stays)."""
    global _big_cache
    with _lock:
        _big_cache = None


def big_for_lookup(a: np.ndarray) -> np.ndarray | None:
    """The big sieve if it is in memory, or on disk and worth loading for these values."""
    if _big_cache is not None:
        return _big_cache[0]
    if a.size >= AUTOLOAD_MIN and sieve_cached():
        mid = np.count_nonzero((a >= SMALL_LIMIT) & (a < SIEVE_LIMIT))
        if mid >= AUTOLOAD_MIN and ensure_sieve(build=False) != "missing":
            return _big_cache[0]
    return None


def lookup_big(a: np.ndarray, sieve: np.ndarray) -> np.ndarray:
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


def lookup_small(a: np.ndarray) -> np.ndarray:
    """is_prime for int64 values in [0, SMALL_LIMIT) from the small sieve."""
    flags, _ = small_sieve()
    prime = flags[a >> 1] & (a & 1).astype(bool)
    prime[a == 2] = True
    return prime



def big_sieve() -> tuple[np.ndarray, np.ndarray] | None:
    """The big sieve in memory as (bit-packed flags, cumulative count every BLOCK_BYTES bytes),
    or None when it is not loaded. Nothing is loaded or built here."""
    return _big_cache


def set_sieve(state: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Put a sieve obtained from `big_sieve()` back in memory (None releases it): tests share
    one built sieve between temporary cache directories without a 1 s rebuild each time."""
    global _big_cache
    with _lock:
        _big_cache = state


# The odd primes below 100, whose multiples the training history tracks in every batch record
# (`divisible_share`) and the pages chart. Sieved on [0, 100) rather than by small_odd_primes,
# which builds the 2**22 small sieve (40 ms, 10 MB) in page processes that may never need it.
SIEVE_CHART_PRIMES = tuple(2 * int(i) + 1 for i in np.flatnonzero(_sieve_flags_upto(100)))


def small_odd_primes(limit: int) -> np.ndarray:
    """The odd primes p <= limit (inclusive), ascending, as int64. limit <= SIEVE_LIMIT."""
    limit = require_int("small_odd_primes", "limit", limit, 0, SIEVE_LIMIT)
    if limit < SMALL_LIMIT:
        flags, _ = small_sieve()
        return 2 * np.flatnonzero(flags[: (limit + 1) // 2]) + 1
    if _big_cache is not None:
        count = (limit + 1) // 2  # odd numbers 1, 3, ..., <= limit
        head = _big_cache[0][: (count + 7) // 8]
        bits = np.unpackbits(head, bitorder="little")[:count]
        return 2 * np.flatnonzero(bits) + 1
    parts = []
    for first in range(0, (limit + 1) // 2, SEGMENT):
        count = min(SEGMENT, (limit + 1) // 2 - first)
        parts.append(2 * (first + np.flatnonzero(odd_segment(2 * first + 1, count))) + 1)
    return np.concatenate(parts)

