"""`bench primes`: the sieve's set-up and is_prime against sympy (binned counts: bench density)."""

from __future__ import annotations

import time

import numpy as np

from optimus import primes
from optimus.bench.timing import SEED, best_time
from optimus.primes import is_prime


def _versus_sympy(values: np.ndarray, repeats: int) -> dict:
    """is_prime against a sympy.isprime loop on the same values: elements/s, ratio, agreement."""
    import sympy  # sympy: 0.2 s to import; the CLI imports optimus.bench

    ours_s, ours = best_time(lambda: is_prime(values), repeats)
    # one run of the loop: it is slow, and variance matters far less at this length
    sympy_s, theirs = best_time(lambda: [sympy.isprime(int(n)) for n in values], 1)
    return {
        "n": int(values.size),
        "ours_s": ours_s,
        "sympy_s": sympy_s,
        "ours_per_s": values.size / ours_s,
        "sympy_per_s": values.size / sympy_s,
        "speedup": sympy_s / ours_s,
        "identical": bool(np.array_equal(ours, np.array(theirs, dtype=bool))),
    }


def bench_primes(quick: bool = False) -> dict:
    """The primes figures: sieve set-up, is_prime against sympy (binned counts: bench_density).

    quick: ten times fewer integers (100,000 below 10**9 and 10,000 in [2**40, 2**53), instead of
    1,000,000 and 100,000).
    """
    rng = np.random.default_rng(SEED)
    results: dict = {"quick": quick}

    start = time.perf_counter()
    how = primes.ensure_sieve()
    results["sieve_setup_s"] = time.perf_counter() - start
    results["sieve_setup"] = how  # "built", "loaded" (from the cache file) or "memory"
    results["sieve_cache"] = str(primes.sieve_cache_path())
    primes.is_prime(np.arange(100))  # the small sieve, so it is not in the first timing

    small = primes.uniform_odd(1, 10**9 - 1, 100_000 if quick else 1_000_000, rng)
    results["below_1e9"] = _versus_sympy(small, repeats=5)
    large = primes.uniform_odd(2**40 + 1, 2**53 - 1, 10_000 if quick else 100_000, rng)
    results["2p40_to_2p53"] = _versus_sympy(large, repeats=5)

    return results  # binned prime counts: see bench_density


def _format_primes(r: dict) -> list[str]:
    lines = [f"  sieve set-up ({r['sieve_setup']}): {r['sieve_setup_s']:.3f} s  [{r['sieve_cache']}]"]
    for key, label in (("below_1e9", "odd n < 10**9"), ("2p40_to_2p53", "odd n in [2**40, 2**53)")):
        v = r[key]
        lines.append(
            f"  is_prime, {v['n']:,} {label}: {v['ours_per_s']:,.0f}/s vs sympy "
            f"{v['sympy_per_s']:,.0f}/s = {v['speedup']:.1f}x, "
            f"{'identical' if v['identical'] else 'ANSWERS DIFFER'}"
        )
    return lines
