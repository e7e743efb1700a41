"""Exact primality, prime counting and prime-density references, in NumPy.

This package is the ground truth of the whole project (labels, baselines, the density page), so
every answer here is exact: no probabilistic test, no floating-point shortcut that could round.
It imports NumPy, the standard library and gmpy2 (GMP, for big integers), never TensorFlow, so it
is cheap to import from the CLI and the app. The one exception, `trial_division` (exact primality
inside a TensorFlow graph, for the online batch), imports TensorFlow and is not imported here.
One module per concept, each with the trick it uses and what it measured:

* `sieve`: the small in-memory sieve (below 2**22), the bit-packed 2**30 sieve and its disk
  cache, segmented sieving above, and `small_odd_primes`, the one list of odd primes;
* `primality`: `is_prime` below 2**53 (sieve lookups, trial division, deterministic
  Miller-Rabin with exact int64/float64 modular products);
* `counting`: pi(x) up to 10**18 (sieves, primecount, segmented sieve or Lucy's algorithm,
  chosen by a cost model) and the refusal of counts over their time bound;
* `li`: li(x), Li(x) and x / ln x, the reference curves;
* `odd`: `to_odd` (the seed's real -> odd integer map) and `uniform_odd` draws;
* `bins`: linear and log-spaced integer bin edges;
* `density`: binned counts, odd-prime densities (exact, or estimated at any size) and the density table;
* `bigint`: integers of any size: exact residues by many small moduli (one matrix product), BPSW
  with the certainty it carries (proven below 2**64), its two halves for sieved candidates.

Everything public below is importable from `optimus.primes` itself; the building blocks each
module exposes beyond that (e.g. `counting.pi_lucy`) are for the bench and the tests.
Ranges are written [lo, hi] when both ends are included and [lo, hi) when hi is excluded.
"""

from __future__ import annotations

from optimus.primes.bigint import (
    CERT_COMPOSITE,
    CERT_PROBABLE,
    CERT_PROVEN,
    PROVEN_LIMIT,
    bpsw,
    certainty,
    is_prime_any,
    residues,
)
from optimus.primes.bins import linear_edges, log_edges
from optimus.primes.counting import clear_count_cache, count_primes, count_seconds, prime_pi
from optimus.primes.density import (
    BASELINE_EXACT_HI,
    binned_prime_counts,
    density_table,
    odd_prime_density,
    odd_prime_density_any,
    odd_prime_density_binned,
)
from optimus.primes.li import li, x_over_ln_x
from optimus.primes.odd import to_odd, uniform_odd
from optimus.primes.primality import EXACT_LIMIT, TRIAL_LIMIT, is_prime
from optimus.primes.sieve import (
    AUTOLOAD_MIN,
    PI_SIEVE_LIMIT,
    SIEVE_CHART_PRIMES,
    SIEVE_LIMIT,
    SMALL_LIMIT,
    cache_dir,
    ensure_sieve,
    release_sieve,
    sieve_cache_path,
    sieve_cached,
    sieve_ready,
    small_odd_primes,
)

__all__ = [
    "AUTOLOAD_MIN", "BASELINE_EXACT_HI", "CERT_COMPOSITE", "CERT_PROBABLE", "CERT_PROVEN", "EXACT_LIMIT",
    "PI_SIEVE_LIMIT", "PROVEN_LIMIT", "SIEVE_CHART_PRIMES", "SIEVE_LIMIT", "SMALL_LIMIT", "bpsw", "certainty",
    "is_prime_any", "odd_prime_density_any", "residues",
    "TRIAL_LIMIT", "binned_prime_counts", "cache_dir", "clear_count_cache", "count_primes",
    "count_seconds", "density_table", "ensure_sieve", "is_prime", "li", "linear_edges", "log_edges",
    "odd_prime_density", "odd_prime_density_binned", "prime_pi",
    "release_sieve", "sieve_cache_path", "sieve_cached", "sieve_ready", "small_odd_primes", "to_odd",
    "uniform_odd", "x_over_ln_x",
]
