"""`bench density` (exact counts in 100 log bins, in every state the big sieve can be in) and
`bench count` (pi(x): primecount against Lucy's algorithm and the sieve lookup)."""

from __future__ import annotations

import os
import tempfile
import time

from optimus import primes
from optimus.bench.timing import best_time, met
from optimus.primes import counting

DENSITY_TARGET_S = 2.0  # 100 log bins over [1, 10**9]
DENSITY_BINS = 100


def _binned_seconds(hi: int) -> float:
    """binned_prime_counts(1, hi, 100, log=True), cold (no memoised counts), in seconds."""
    primes.clear_count_cache()
    start = time.perf_counter()
    primes.binned_prime_counts(1, hi, DENSITY_BINS, log=True)
    return time.perf_counter() - start


def bench_density(quick: bool = False) -> dict:
    """Exact prime counts in 100 log bins over [1, 10**9] and [1, 10**10], cold, in the three
    states a process can find the big sieve in: in memory; only in the disk cache (loaded by
    the count, as in a fresh app process); absent (no cache file: a fresh machine).

    quick: one timing per figure instead of the best of three."""
    repeat = 1 if quick else 3
    results: dict = {"quick": quick, "bins": DENSITY_BINS, "target_s": DENSITY_TARGET_S}
    start = time.perf_counter()
    results["sieve_setup"] = primes.ensure_sieve()
    results["sieve_setup_s"] = time.perf_counter() - start
    for label, hi in (("1e9", 10**9), ("1e10", 10**10)):
        results[f"memory_{label}_s"] = min(_binned_seconds(hi) for _ in range(repeat))
        times = []
        for _ in range(repeat):
            primes.release_sieve()
            times.append(_binned_seconds(hi))
        results[f"disk_{label}_s"] = min(times)
        old = os.environ.get("OPTIMUS_CACHE_DIR")
        with tempfile.TemporaryDirectory() as empty:
            os.environ["OPTIMUS_CACHE_DIR"] = empty
            try:
                primes.release_sieve()
                results[f"no_sieve_{label}_s"] = min(_binned_seconds(hi) for _ in range(repeat))
            finally:
                if old is None:
                    os.environ.pop("OPTIMUS_CACHE_DIR", None)
                else:
                    os.environ["OPTIMUS_CACHE_DIR"] = old
        primes.ensure_sieve()
    worst = max(results[f"{state}_1e9_s"] for state in ("memory", "disk", "no_sieve"))
    results["met"] = worst <= DENSITY_TARGET_S
    return results


def _format_density(r: dict) -> list[str]:
    lines = [f"  set-up: sieve ({r['sieve_setup']}) {r['sieve_setup_s']:.3f} s",
             f"  binned_prime_counts(1, hi, {r['bins']}, log=True), cold:  sieve in memory | from disk cache | no sieve"]
    for label, shown in (("1e9", "10**9 "), ("1e10", "10**10")):
        ratio = f" {r['target_s'] / r[f'no_sieve_{label}_s']:.1f}x under the target" if label == "1e9" else ""
        lines.append(f"    hi = {shown}: {r[f'memory_{label}_s']:8.3f} s | {r[f'disk_{label}_s']:8.3f} s | "
                     f"{r[f'no_sieve_{label}_s']:8.3f} s")
        if ratio:
            lines[-1] += f"  (worst case{ratio})"
    lines.append(f"  target <= {r['target_s']:g} s over [1, 10**9]: {met(r['met'])}")
    return lines


# --- prime counting: primecount against the hand-written routines ---------------------------------


def bench_count(quick: bool = False) -> dict:
    """pi(x) by primecount, by Lucy's algorithm (hand-written, vectorised) and by the sieve
    lookup, cold, at the same x; and 100 log bins to 10^12 and 10^15 as density_table counts them.

    quick: Lucy only to 10^10, primecount to 10^14."""
    primes.ensure_sieve()
    pc = counting.primecount()
    out: dict = {"quick": quick, "primecount": pc is not None, "pi": {}}
    top = 14 if quick else 16
    for e in range(9, top + 1):
        x = 10**e
        row = {}
        if pc is not None:
            row["primecount_s"], v1 = best_time(lambda x=x: int(pc(x)), 1 if e > 13 else 3)
        if e <= (10 if quick else 11):
            row["lucy_s"], v2 = best_time(lambda x=x: counting.pi_lucy(x), 1)
            if pc is not None:
                row["agree"] = v1 == v2
        if x < primes.SIEVE_LIMIT:
            row["sieve_lookup_s"], _ = best_time(lambda x=x: counting.pi_sieve(x), 3)
        out["pi"][f"1e{e}"] = row
    for label, hi in (("1e12", 10**12), ("1e15", 10**15)):
        primes.clear_count_cache()
        out[f"bins100_{label}_s"], _ = best_time(lambda hi=hi: primes.binned_prime_counts(1, hi, 100, log=True), 1)
    return out


def _format_count(r: dict) -> list[str]:
    lines = ["  pi(x), cold:      primecount |       Lucy | sieve lookup"]
    for label, row in r["pi"].items():
        cells = [f"{row[k]:10.4f} s" if k in row else " " * 12 for k in ("primecount_s", "lucy_s", "sieve_lookup_s")]
        ratio = f"  primecount {row['lucy_s'] / row['primecount_s']:.0f}x faster than Lucy" if "lucy_s" in row and "primecount_s" in row else ""
        lines.append(f"    x = {label:>5}: {' | '.join(cells)}{ratio}")
    lines.append(f"  100 log bins to 10^12: {r['bins100_1e12_s']:.3f} s; to 10^15: {r['bins100_1e15_s']:.2f} s")
    return lines
