"""Big integers: exact residues, BPSW and the certainty it carries, for Python ints of any size.

Everything else in `optimus.primes` works below 2**53 in NumPy; this module is what sizes up to
4096 bits need (the any-size sampler, `optimus.sampling.anysize`):

* `residues(values, moduli)`: values mod many small moduli at once, exactly, as one float64
  matrix product over 30-bit limbs (proof of exactness in its docstring);
* `bpsw` / `is_prime_any` / `certainty`: strong Baillie-PSW through gmpy2 (GMP), proven below
  2**64 and labelled "probable prime (BPSW ...)" above; composites are always proven composite;
* `strong_prp2` and `confirm`: BPSW in two steps, for callers that sieve their candidates first
  and run the cheap base-2 test on every survivor before the full test on the few that pass.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import math
import os
import threading

import gmpy2
import numpy as np

from optimus.primes.primality import EXACT_LIMIT, is_prime
from optimus.primes.sieve import small_odd_primes

LIMB_BITS = 30
RESIDUE_ROWS = 64  # values per block of `residues`: its [rows, K] working arrays stay in L2
MAX_RESIDUE_PRIME = 1 << 22  # see residues(): keeps at least two limbs per exact float64 block
PROVEN_LIMIT = 2**64  # BPSW has no counterexample below this, by exhaustive verification

CERT_PROVEN = "proven prime"
CERT_PROBABLE = "probable prime (BPSW, no known counterexample)"
CERT_COMPOSITE = "composite"

# Trial division before BPSW on unsieved values: one gcd with the product of the odd primes up
# to this bound (measured, 2048-bit odd n: the gcd costs ~50 us, one base-2 strong test ~2 ms,
# and ~40% of the candidates a sieve to 97 lets through have a factor in (97, 2^16]).
_GCD_BOUND_SMALL, _GCD_BOUND_BIG = 2_000, 1 << 16


@functools.lru_cache(maxsize=1)
def _openblas():
    """(get, set) of the OpenBLAS thread count NumPy loaded, or None where it is not found."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", "")):
            get, put = (getattr(lib, f"{prefix}_{what}_num_threads{suffix}", None) for what in ("get", "set"))
            if get is not None and put is not None:
                return get, put
    return None


_blas_lock = threading.Lock()
_blas_users = 0


@contextlib.contextmanager
def one_blas_thread():
    """OpenBLAS on one thread inside: the small matrix products of `ResidueTable` ([64, 12] x
    [12, 3,400] at 100 digits) took 65-150 ns per entry with OpenBLAS's default threads on the
    shared 2-core machine under load (its threads spin waiting for each other) and 0.7 ns on one
    thread (measured in one process). A no-op where NumPy's OpenBLAS is not found."""
    global _blas_users
    api = _openblas()
    if api is None:
        yield
        return
    get, put = api
    with _blas_lock:
        if _blas_users == 0:
            one_blas_thread.previous = int(get())
            put(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                put(one_blas_thread.previous)


def limbs(values: list[int], bits: int = LIMB_BITS) -> np.ndarray:
    """int64 [B, L]: the `bits`-bit limbs (bits <= 32) of non-negative Python ints, least
    significant first."""
    top = max(values).bit_length() if values else 0
    count = max(1, -(-top // bits))
    width = (count * bits + 7) // 8 + 8  # bytes, with room for the 5-byte reads below
    raw = np.frombuffer(b"".join(v.to_bytes(width, "little") for v in values), dtype=np.uint8)
    raw = raw.reshape(len(values), width).astype(np.uint64)
    start = np.arange(count) * bits
    byte, shift = start // 8, (start % 8).astype(np.uint64)
    # limb k = bits [bits k, bits (k + 1)): within the 5 bytes from byte (bits k) // 8
    word = np.zeros((len(values), count), dtype=np.uint64)
    for j in range(5):
        word |= raw[:, byte + j] << np.uint64(8 * j)
    return ((word >> shift) & np.uint64((1 << bits) - 1)).astype(np.int64)


class ResidueTable:
    """values x factor mod p for many small moduli p at once, exactly, in one float64 matrix
    product and one reduction (the residues of many window starts, `optimus.sampling.anysize`).

    Values of up to `bits` bits are split into b-bit limbs a_i (n = sum_i a_i 2^(b i)) and
    n f mod p = (sum_i a_i t_i) mod p with t_i = 2^(b i) f mod p < p. The limb size b is the
    largest (<= 30) with L (2^b - 1)(p_max - 1) + p_max <= 2^53 for the L limbs of `bits`:
    then every product and every partial sum of the product, in whatever order the BLAS adds
    and with or without fused multiply-adds, is an integer below 2^53, so exact. The reduction
    A mod p is q = floor(A * (1/p)), A - q p: the rounded quotient is off by at most one (A/p <
    2^52), q p <= A + p <= 2^53 is exact, and one correction each way makes it exact. Measured
    on 1,024 x 3,400 100-digit residues (2-core machine, loaded, one BLAS thread): 5-10 ns per
    residue, int64 conversion included; the product itself 0.7 ns per entry.
    """

    def __init__(self, moduli, bits: int, factor=None):
        self.moduli = np.asarray(moduli, dtype=np.int64).reshape(-1)
        if self.moduli.size and (self.moduli.min() < 1 or self.moduli.max() >= MAX_RESIDUE_PRIME):
            raise ValueError(f"residues: moduli must lie in [1, {MAX_RESIDUE_PRIME})")
        pmax = int(self.moduli.max()) if self.moduli.size else 1
        self.bits = max(1, int(bits))
        b = LIMB_BITS
        while b > 1 and -(-self.bits // b) * ((1 << b) - 1) * max(pmax - 1, 1) + pmax > 2**53:
            b -= 1
        self.limb_bits = b
        self.count = max(1, -(-self.bits // b))
        f = np.ones_like(self.moduli) if factor is None else np.asarray(factor, dtype=np.int64) % self.moduli
        table = np.empty((self.count, self.moduli.size), dtype=np.float64)
        row = f % self.moduli
        for i in range(self.count):
            table[i] = row
            row = (row << b) % self.moduli  # < 2^22 * 2^30: exact in int64
        self.table = table
        self.p = self.moduli.astype(np.float64)
        self.inverse = 1.0 / self.p

    def limbs(self, values: list[int]) -> np.ndarray:
        """float64 [B, L] limbs of values (each < 2^bits) for `reduce`."""
        out = limbs(values, self.limb_bits).astype(np.float64)
        if out.shape[1] > self.count:
            raise ValueError(f"residues: a value has more than {self.bits} bits")
        if out.shape[1] < self.count:
            out = np.pad(out, ((0, 0), (0, self.count - out.shape[1])))
        return out

    def reduce(self, limb_rows: np.ndarray) -> np.ndarray:
        """float64 [R, K]: the exact residues of the values whose limbs these are."""
        acc = limb_rows @ self.table
        q = acc * self.inverse
        np.floor(q, out=q)
        q *= self.p
        acc -= q
        np.add(acc, self.p, out=acc, where=acc < 0)
        np.subtract(acc, self.p, out=acc, where=acc >= self.p)
        return acc


@functools.lru_cache(maxsize=32)
def _table(moduli_bytes: bytes, bits: int, factor_bytes: bytes | None) -> ResidueTable:
    factor = None if factor_bytes is None else np.frombuffer(factor_bytes, dtype=np.int64)
    return ResidueTable(np.frombuffer(moduli_bytes, dtype=np.int64), bits, factor)


def residue_table(moduli, bits: int, factor=None) -> ResidueTable:
    """A cached `ResidueTable` (the same moduli and sizes come back batch after batch); bits are
    rounded up to a multiple of 64 so that nearby sizes share one."""
    moduli = np.ascontiguousarray(moduli, dtype=np.int64)
    f = None if factor is None else np.ascontiguousarray(factor, dtype=np.int64).tobytes()
    return _table(moduli.tobytes(), -(-max(int(bits), 1) // 64) * 64, f)


def residues(values, moduli) -> np.ndarray:
    """int64 [B, K]: values[b] mod moduli[k], exactly, for integers of any size.

    `values`: non-negative Python ints (or an integer array, whose entries, negative ones too,
    get NumPy's non-negative int64 `%`: the residues the encodings read, `nets.encoding`);
    `moduli`: K integers in [1, MAX_RESIDUE_PRIME) (any positive int64 for an integer array). Values below
    2^63 take NumPy's int64 `%`; larger ones a `ResidueTable` (its docstring proves it exact),
    in blocks of RESIDUE_ROWS values so that the [rows, K] working arrays stay in L2.
    """
    moduli = np.asarray(moduli, dtype=np.int64).reshape(-1)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":  # int64: any positive moduli
        return values.astype(np.int64).reshape(-1, 1) % moduli
    if moduli.size and (moduli.min() < 1 or moduli.max() >= MAX_RESIDUE_PRIME):
        raise ValueError(f"residues: moduli must lie in [1, {MAX_RESIDUE_PRIME})")
    values = [int(v) for v in values]
    if not values:
        return np.zeros((0, moduli.size), dtype=np.int64)
    if min(values) < 0:
        raise ValueError("residues: values must be >= 0")
    if max(values) < 2**63:
        return np.array(values, dtype=np.int64).reshape(-1, 1) % moduli
    table = residue_table(moduli, max(values).bit_length())
    out = np.empty((len(values), moduli.size), dtype=np.int64)
    with one_blas_thread():
        for r in range(0, len(values), RESIDUE_ROWS):
            out[r : r + RESIDUE_ROWS] = table.reduce(table.limbs(values[r : r + RESIDUE_ROWS]))
    return out


# --------------------------------------------------------------------------------------------
# Primality at any size


@functools.lru_cache(maxsize=2)
def _trial_product(bound: int) -> gmpy2.mpz:
    return gmpy2.mpz(math.prod(small_odd_primes(bound).tolist()))


def strong_prp2(n: int) -> bool:
    """The base-2 strong probable-prime test (GMP): the cheap half of BPSW, for odd n > 2."""
    return bool(gmpy2.is_strong_prp(n, 2))


# GMP's mpz_probab_prime_p(n, reps): trial division, then BPSW (base-2 strong + strong Lucas) and
# reps - 24 more Miller-Rabin rounds with random bases (GMP >= 6.2, mpz/millerrabin.c). 25: BPSW
# (the test every "probable prime (BPSW)" here states; sympy.isprime runs the same) plus the one
# random-base round GMP's next_prime runs on each prime it returns, so that `bench anysize`
# compares equal certainty. 24 (BPSW alone) saves ~20 us of a 100-digit prime's ~120 us: measured
# 1.07-1.11x next_prime's speed at 100 digits against 1.04x with 25 (`bench anysize --quick`).
CONFIRM_REPS = 25


def confirm(n: int) -> bool:
    """BPSW for an odd n (after `strong_prp2`, or alone: one GMP call that stops at its base-2
    test on a composite): GMP's mpz_probab_prime_p(n, CONFIRM_REPS), which since GMP 6.2 is
    trial division by a few small primes, then BPSW (base-2 strong + strong Lucas with
    Selfridge's parameters). GMP's Lucas test is faster than gmpy2's `is_strong_selfridge_prp`
    (measured 2-8x on 332-2048-bit primes, loaded machine)."""
    return bool(gmpy2.is_prime(n, CONFIRM_REPS))


def bpsw(n: int) -> bool:
    """Strong Baillie-PSW for an odd integer n > 2^22: trial division by one gcd, a base-2
    strong probable-prime test, then a strong Lucas test with Selfridge's parameters (gmpy2).
    Proven correct below 2^64; above, no counterexample is known."""
    bound = _GCD_BOUND_SMALL if n.bit_length() < 512 else _GCD_BOUND_BIG
    if gmpy2.gcd(n, _trial_product(bound)) != 1:
        return False
    return bool(gmpy2.is_strong_prp(n, 2) and gmpy2.is_strong_selfridge_prp(n))


def certainty(n: int, prime: bool) -> str:
    """How sure `prime` is: proven below 2^64, BPSW-probable above; composites are proven."""
    if not prime:
        return CERT_COMPOSITE
    return CERT_PROVEN if n < PROVEN_LIMIT else CERT_PROBABLE


def range_certainty(lo: int, hi: int) -> str:
    """What a prime found in [lo, hi] can claim."""
    if hi < PROVEN_LIMIT:
        return CERT_PROVEN
    return CERT_PROBABLE if lo >= PROVEN_LIMIT else f"{CERT_PROVEN} below 2^64, {CERT_PROBABLE} above"


def is_prime_any(values) -> np.ndarray:
    """bool [B]: primality of non-negative ints of any size (exact below 2^64; BPSW above).

    Values below 2^53 go to `is_prime` (vectorised, deterministic); the rest to `bpsw`.
    """
    values = [int(v) for v in values]
    out = np.zeros(len(values), dtype=bool)
    small = [i for i, v in enumerate(values) if v < EXACT_LIMIT]
    if small:
        out[small] = is_prime(np.array([values[i] for i in small], dtype=np.int64))
    # even values above 2^53 are composite; odd ones take BPSW (a gcd per value measured faster
    # than vectorised trial division by residues: 32,768 x 300 fmods cost more than 32,768 gcds)
    for i, v in enumerate(values):
        if v >= EXACT_LIMIT:
            out[i] = bool(v & 1) and bpsw(v)
    return out


def survivor_share(sieve_primes) -> float:
    """Share of odd integers coprime to every one of these odd primes: prod (1 - 1/p)."""
    return float(np.prod(1.0 - 1.0 / np.asarray(sieve_primes, dtype=np.float64)))
