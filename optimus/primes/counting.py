"""Prime counting: pi(x) exactly for 0 <= x <= 10**18, and what a count will cost.

Counts use the sieves where they reach, and above them primecount (Kim Walisch's library, the
`primecountpy` wheel: Deleglise-Rivat / Gourdon, pi(10^18) in ~45 s on 2 cores), or a segmented
sieve of the gap from the previous value, whichever the cost model (`plan`) says is cheaper
(measured side by side in `python -m optimus bench count`). Lucy Hedgehog's O(x^(3/4))
algorithm (`pi_lucy`) stays as the fallback when primecount is not installed. A request whose
estimated counting time exceeds its bound is refused up front with the estimate.

`pi_sieve`, `pi_lucy`, `primecount_pi` and `count_segment` are the individual methods, public so
that the bench can time them side by side and the tests can check them against sympy.
"""

from __future__ import annotations

import functools
import math
import signal
import threading

import numpy as np

from optimus import limits, validate
from optimus.primes.sieve import (
    BLOCK_BYTES,
    SEGMENT,
    SIEVE_LIMIT,
    SMALL_LIMIT,
    big_sieve,
    ensure_sieve,
    odd_segment,
    sieve_cached,
    small_odd_primes,
    small_sieve,
)
from optimus.validate import require_int

_import_lock = threading.Lock()


def pi_small(x: int) -> int:
    """pi(x) for 0 <= x < SMALL_LIMIT."""
    if x < 2:
        return 0
    _, cumulative = small_sieve()
    return 1 + int(cumulative[(x - 1) // 2])


def pi_sieve(x: int) -> int:
    """pi(x) for 0 <= x <= SIEVE_LIMIT from the in-memory big sieve."""
    if x < 2:
        return 0
    sieve, blocks = big_sieve()
    i = (min(x, SIEVE_LIMIT - 1) - 1) // 2  # odd numbers 1, 3, ..., 2i+1 are <= x
    byte, bit = i >> 3, i & 7
    block = byte // BLOCK_BYTES
    count = int(blocks[block])
    count += int(np.bitwise_count(sieve[block * BLOCK_BYTES : byte]).sum())
    count += int(sieve[byte] & ((2 << bit) - 1)).bit_count()
    return 1 + count


def pi_lucy(x: int) -> int:
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


def count_segment(lo: int, hi: int) -> int:
    """Number of primes in [lo, hi] (inclusive) by a segmented sieve of the odd numbers."""
    if hi < lo:
        return 0
    count = 1 if lo <= 2 <= hi else 0
    first = lo | 1
    total = (hi - first) // 2 + 1 if hi >= first else 0
    for k in range(0, total, SEGMENT):
        count += int(np.count_nonzero(odd_segment(first + 2 * k, min(SEGMENT, total - k))))
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
    for k0 in range(0, total, SEGMENT):
        n = min(SEGMENT, total - k0)
        counts = np.cumsum(odd_segment(first + 2 * k0, n), dtype=np.int64)
        inside = (upto > k0) & (upto <= k0 + n)
        cum[inside] = running + counts[upto[inside] - k0 - 1]
        running += int(counts[-1])
    if lo <= 2 <= hi:  # the one even prime
        cum += np.array([x >= 2 for x in xs], dtype=np.int64)
    return cum.tolist()


def _sieve_cost(gap: int, hi: int) -> float:
    """Seconds to sieve a gap of `gap` integers below hi (measured on the 2-core dev machine)."""
    segments = gap // (2 * SEGMENT) + 1
    return 2e-9 * gap + segments * 1e-6 * math.isqrt(hi) / max(math.log(hi), 1.0) / 2


def _lucy_cost(x: int) -> float:
    return 8e-9 * x**0.75


@functools.cache
def primecount():
    """primecountpy's prime_pi, or None when the wheel is not installed.

    primecountpy imports cysignals, whose initialisation installs signal handlers, which Python
    allows only in the main thread: imported first from a Streamlit page (a script thread) it
    raises "signal only works in main thread". There the import runs with signal.signal made a
    no-op; the only loss is that Ctrl-C cannot interrupt a count running in that thread.
    """
    with _import_lock:
        in_main = threading.current_thread() is threading.main_thread()
        real = signal.signal
        if not in_main:
            signal.signal = lambda *args, **kwargs: signal.SIG_DFL
        try:
            from primecountpy import prime_pi as pc_pi  # cysignals: see the docstring
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
    if primecount() is not None:
        return "primecount", _primecount_cost(x)
    return "lucy", _lucy_cost(x)


def sieve_reach() -> int:
    """pi is a lookup for x < this: the big sieve when loadable, else the small one."""
    if big_sieve() is None and sieve_cached():
        ensure_sieve(build=False)
    return SIEVE_LIMIT + 1 if big_sieve() is not None else SMALL_LIMIT


_pi_memo: dict[int, int] = {}  # pi(x) for x above the sieves' reach, however computed
_PI_MEMO_MAX = 100_000


def plan(xs: list[int], relative: bool, reach: int) -> tuple[list, float]:
    """How pi_many computes pi at the sorted distinct xs: ("segment" | method, x) steps and the
    estimated seconds. "relative" sieves the whole span from its lowest value (see pi_many)."""
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


def is_memoised(x: int) -> bool:
    """True when pi(x) above the sieves is already known (counting it again costs nothing)."""
    return x in _pi_memo


def count_seconds(xs) -> float:
    """Estimated seconds for pi at every x of xs (0 for values already known or below the sieves)."""
    return plan([int(x) for x in xs], False, sieve_reach())[1]


def pi_many(xs: list[int], relative: bool = False) -> list[int]:
    """pi(x) for each x in -1 <= x <= MAX_DENSITY_HI, sharing work between nearby values.

    Values the sieves reach are lookups. Above, values are taken in ascending order and each is
    either sieved up from the previous one or computed afresh (primecount, else Lucy's
    algorithm), whichever the cost model says is cheaper; results are memoised. With
    relative=True the results may all be off by one common constant (callers that only take
    differences allow it), which lets a narrow range far above the sieves be sieved outright.
    """
    reach = sieve_reach()
    lookup = pi_sieve if reach > SMALL_LIMIT else pi_small
    steps, _ = plan(xs, relative, reach)
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
            value = prev_pi + count_segment(prev_x + 1, x)
        elif method == "primecount":
            value = int(primecount()(x))
        elif method == "lucy":
            value = pi_lucy(x)
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
    x = require_int("prime_pi", "x", x, 0, limits.MAX_DENSITY_HI)
    _check_cost("prime_pi", [x], max_seconds)
    return pi_many([x])[0]


def count_primes(lo: int, hi: int, max_seconds: float | None = None) -> int:
    """The number of primes in [lo, hi] (both included), 0 <= lo <= hi <= 10**18; ValueError
    if the estimated time exceeds max_seconds (default limits.MAX_COUNT_SECONDS)."""
    lo, hi = check_count_range("count_primes", lo, hi)
    if plan([lo - 1, hi], True, sieve_reach())[1] > (limits.MAX_COUNT_SECONDS if max_seconds is None else max_seconds):
        _check_cost("count_primes", [lo - 1, hi], max_seconds)
    below, top = pi_many([lo - 1, hi], relative=True)
    return top - below


def check_count_range(func: str, lo, hi) -> tuple[int, int]:
    """(lo, hi) as ints with 0 <= lo <= hi <= 10**18 (what can be counted), or ValueError
    naming `func`: `validate.check_range` with the counting bounds."""
    return validate.check_range(lo, hi, hi_max=limits.MAX_DENSITY_HI, func=func)
