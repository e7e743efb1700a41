"""Prime densities over ranges and bins: exact counts, odd-prime densities and the tables the
density page and the CLI print.

Ranges are written [lo, hi] when both ends are included and [lo, hi) when hi is excluded.
Counts are exact (optimus.primes.counting) up to 10**18; a request whose estimated counting time
exceeds its bound is refused up front with the estimate, or, when the caller asks for it, its
costly bins are Li(x) estimates marked as such. The baselines of every lift figure
(`odd_prime_density_binned`) count exactly up to BASELINE_EXACT_HI and estimate with Li(x) above.
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np

from optimus import limits
from optimus.primes.bins import bin_layout, linear_edges, log_edges
from optimus.primes.counting import (
    check_count_range,
    count_primes,
    count_seconds,
    is_memoised,
    pi_many,
    plan,
    sieve_reach,
)
from optimus.primes.li import li_estimate, x_over_ln_x
from optimus.primes.odd import odd_count
from optimus.validate import require_int

# odd_prime_density_binned (the baselines of every lift figure) counts exactly up to here and
# estimates with Li(x) above: baselines are computed every training batch, so they must stay cheap
BASELINE_EXACT_HI = 10**10


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
    lo, hi, bins, log = bin_layout(func, lo, hi, bins, log)
    edges = log_edges(lo, hi, bins) if log else linear_edges(lo, hi, bins)
    # pi just below each bin's first integer, and pi(hi) for the end of the last bin
    xs = [e - 1 for e in edges[:-1]] + [hi]
    bound = limits.MAX_COUNT_SECONDS if max_seconds is None else max_seconds
    reach = sieve_reach()
    _, cost = plan(xs, True, reach)
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
            step = count_seconds([x]) if not is_memoised(x) else 0.0
            if spent + step > bound:
                break
            spent += step
            exact_x.add(x)
    exact_xs = [x for x in xs if x in exact_x]
    # only differences of counted edges are used, so one common offset (relative) is harmless
    known = dict(zip(exact_xs, pi_many(exact_xs, relative=True), strict=True)) if exact_xs else {}
    est_at = li_estimate(np.array(xs, dtype=np.float64))
    exact = [a in exact_x and b in exact_x for a, b in zip(xs[:-1], xs[1:], strict=True)]
    counts = [known[b] - known[a] if ok else max(int(round(float(eb - ea))), 0)
              for a, b, ea, eb, ok in zip(xs[:-1], xs[1:], est_at[:-1], est_at[1:], exact, strict=True)]
    widths = [b - a for a, b in zip(edges[:-2], edges[1:-1], strict=True)] + [hi - edges[-2] + 1]
    at_edges = np.array(edges, dtype=np.float64)
    ref_x = x_over_ln_x(at_edges)
    ref_li = li_estimate(at_edges)
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


def odd_prime_density(lo: int, hi: int) -> float:
    """P(prime) for a uniformly random odd integer in [lo, hi] (inclusive), exactly:
    (odd primes in [lo, hi]) / (odd integers in [lo, hi]). 0 <= lo <= hi <= 10**10; ValueError
    if the range holds no odd integer (e.g. [2, 2]).
    """
    lo, hi = check_count_range("odd_prime_density", lo, hi)
    odd = odd_count(lo, hi)
    if odd == 0:
        raise ValueError(f"odd_prime_density: [{lo}, {hi}] contains no odd integer")
    return (count_primes(lo, hi) - (lo <= 2 <= hi)) / odd


EXACT_COUNT_HI = 10**12  # odd_prime_density_any counts exactly up to here (primecount: ~10 ms)


@functools.lru_cache(maxsize=64)
def odd_prime_density_any(lo: int, hi: int) -> tuple[float, bool]:
    """(share of odd integers in [lo, hi] that are prime, exact?) for ranges of any size below
    2^4096: `odd_prime_density` (an exact count, 2 excluded) up to EXACT_COUNT_HI, else
    estimated with li(x): (li(hi) - li(lo)) / (odd integers in [lo, hi]), or (width / ln mid) /
    (odd integers) for ranges narrower than 10^6. ValueError if the range holds no odd integer.
    Cached (a pure function of the range; li at 100 digits ~0.13 ms, a count to 10^12 ~10 ms,
    once per sampling request)."""
    odd = odd_count(lo, hi)
    if odd == 0:
        raise ValueError(f"[{lo}, {hi}] contains no odd integer" if hi < 10**24 else
                         "the range contains no odd integer")
    if hi <= EXACT_COUNT_HI:
        return odd_prime_density(lo, hi), True
    # li(hi) - li(lo) loses the digits the two share: 30 significant digits of the difference
    # need 30 more than hi has beyond the width (at 30 in all, [10^120, 10^120 + 10^60] held 0)
    with mpmath.workdps(30 + max(0, len(str(hi)) - len(str(hi - lo + 1)))):
        if lo == 0:
            count = mpmath.li(mpmath.mpf(hi)) - mpmath.li(2)
        elif hi - lo < 10**6:
            count = mpmath.mpf(hi - lo + 1) / mpmath.log(mpmath.mpf(lo + (hi - lo) // 2))
        else:
            count = mpmath.li(mpmath.mpf(hi)) - mpmath.li(mpmath.mpf(lo))
        return float(count / odd), False


def odd_prime_density_binned(edges, include_last: bool = True, estimate_above: bool = False):
    """Exact odd-prime density of each bin [edges[i], edges[i+1]) as a float64 array.

    `edges`: strictly increasing integers >= 0. With include_last (the default, matching
    binned_prime_counts) the last bin also includes edges[-1], and may then be just that one
    integer (edges[-2] == edges[-1]). A bin with no odd integer has
    density 0. Bins must lie within [0, 10**10]; with estimate_above=True, bins reaching above
    10**10 use the Li(x) estimate instead (relative error far below 1e-3 there), since exact
    counts would take hours.
    """
    e = [require_int("odd_prime_density_binned", "edge", v, 0) for v in np.asarray(edges).tolist()]
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
        pis = pi_many(xs, relative=True)
        k = int(exact.sum())
        counts[exact] = np.array(pis[k:]) - np.array(pis[:k])
    if (~exact).any():
        lo_f, hi_f = firsts[~exact].astype(np.float64), lasts[~exact].astype(np.float64)
        counts[~exact] = li_estimate(hi_f) - li_estimate(lo_f - 1)
    counts -= (firsts <= 2) & (lasts >= 2)  # the even prime
    odd = (lasts + 1) // 2 - firsts // 2
    return np.divide(counts, odd, out=np.zeros_like(counts), where=odd > 0)


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
        odd = odd_count(first, last)
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
    odd = odd_count(binned["lo"], binned["hi"])
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
