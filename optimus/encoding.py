"""Input encodings of odd integers for discriminators, in NumPy (exact, no TensorFlow).

The seed fed the discriminator the raw real x; a network cannot read divisibility from a single
float, and float32 cannot even resolve integers above 2**24. These encodings expose exact
residues instead, computed in int64 (exact for every n < 2**53).
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("scalar", "residue")


def odd_primes_upto(limit: int) -> np.ndarray:
    """Odd primes p with 3 <= p <= limit (int64), by a small sieve."""
    if limit < 3:
        return np.zeros(0, dtype=np.int64)
    flags = np.ones(limit + 1, dtype=bool)
    flags[:2] = False
    for p in range(2, int(limit**0.5) + 1):
        if flags[p]:
            flags[p * p :: p] = False
    primes = np.flatnonzero(flags)
    return primes[primes > 2].astype(np.int64)


def residues(n, primes) -> np.ndarray:
    """n mod p for every n (rows) and every p (columns), exact in int64."""
    n = np.asarray(n, dtype=np.int64).reshape(-1, 1)
    return np.mod(n, np.asarray(primes, dtype=np.int64).reshape(1, -1))


def fourier_features(n, primes) -> np.ndarray:
    """[cos(2 pi r/p), sin(2 pi r/p)] per prime: a smooth, periodic view of each residue."""
    r = residues(n, primes).astype(np.float64)
    angle = 2.0 * np.pi * r / np.asarray(primes, dtype=np.float64)
    return np.concatenate([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)


def divisibility_features(n, primes) -> np.ndarray:
    """1 where p divides n. By Dirichlet's theorem the non-zero residues of a large n carry no
    information about its primality, so this one bit per prime is all a residue says."""
    return (residues(n, primes) == 0).astype(np.float32)


def log_magnitude(n, lo: float = 1.0, hi: float = 2.0**53) -> np.ndarray:
    """log(n) scaled to about [0, 1] over [lo, hi]: prime density falls like 1/ln n."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    return ((np.log(n) - np.log(lo)) / (np.log(hi) - np.log(lo))).astype(np.float32).reshape(-1, 1)


def scalar_features(n, scale: float = 1e9) -> np.ndarray:
    """The seed's view: the integer itself as one real, scaled to O(1)."""
    return (np.asarray(n, dtype=np.float64) / scale).astype(np.float32).reshape(-1, 1)


def encode(n, encoding: str, prime_max: int = 97) -> np.ndarray:
    """Features for `n` under a named encoding: 'scalar' or 'residue' (Fourier + log size)."""
    if encoding == "scalar":
        return scalar_features(n)
    if encoding == "residue":
        primes = odd_primes_upto(prime_max)
        return np.concatenate([fourier_features(n, primes), log_magnitude(n)], axis=1)
    raise ValueError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
