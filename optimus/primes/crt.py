"""Groups of consecutive primes whose product m stays under a bound (Chinese remainder tables).

By the CRT, n mod m determines n mod p for every p in a group, so one table indexed by n mod m
answers for the whole group: trial division tests a value against a group with one floor
division by m (primality), and the generator's sampler reads a window's logits for a group from
one table row (optimus.sampling.sieve). The bound keeps each table within the cache.
"""

from __future__ import annotations


def product_groups(primes, limit: int) -> list[list[int]]:
    """Consecutive `primes` (ascending ints) in groups whose product is at most `limit`; a prime
    that alone exceeds it gets a group of its own."""
    groups, current, product = [], [], 1
    for p in (int(p) for p in primes):
        if current and product * p > limit:
            groups.append(current)
            current, product = [], 1
        current.append(p)
        product *= p
    if current:
        groups.append(current)
    return groups
