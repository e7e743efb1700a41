"""Exact primality of integers below 2**53: `is_prime`, vectorised over NumPy arrays.

Three tiers answer, chosen per value: the small sieve below 2**22, the big sieve below 2**30
when it is in memory (or on disk and worth loading: see optimus.primes.sieve), and for anything
else below 2**53 vectorised trial division by the odd primes up to TRIAL_LIMIT (removes about
85% of odd composites), then a vectorised deterministic Miller-Rabin: base 2 for every survivor,
then the rest of a proven base set (MR_BASES, as sympy.isprime uses) for the base-2 strong
probable primes. Products mod n are exact in plain int64/float64 arithmetic (see Mod53), so no
long double is needed and results do not depend on the platform. Short arrays (a few hundred
values) take the same test with Python ints instead (`is_prime_int`), which is faster than
NumPy's per-call overhead there.

The building blocks (`Mod53`, `strong_probable_prime`, `miller_rabin`, `is_prime_int`,
`is_prime_large`) are public so the tests can check each one against sympy.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from optimus import limits
from optimus.primes.crt import product_groups
from optimus.primes.sieve import (
    SIEVE_LIMIT,
    SMALL_LIMIT,
    big_for_lookup,
    big_sieve,
    lookup_big,
    lookup_small,
    small_odd_primes,
    small_sieve,
)
from optimus.validate import exact_int_array

EXACT_LIMIT = limits.EXACT_LIMIT  # 2**53: is_prime and to_odd answer below this
TRIAL_LIMIT = 300  # trial division by odd primes <= this before Miller-Rabin
_CHUNK = 1 << 15  # values per Miller-Rabin chunk: keeps the working arrays in L2

# Deterministic Miller-Rabin base sets: every composite n below the bound fails at least one base
# (reduced mod n; a reduced base of 0 or 1 is skipped). Jaeschke (1993) for the first; the others
# are the best known sets from https://miller-rabin.appspot.com/, as used by sympy.isprime.
MR_BASES = (
    (4_759_123_141, (2, 7, 61)),
    (350_269_456_337, (4230279247111683200, 14694767155120705706, 16641139526367750375)),
    (55_245_642_489_451, (2, 141889084524735, 1199124725622454117, 11096072698276303650)),
    (7_999_252_175_582_851,
     (2, 4130806001517, 149795463772692060, 186635894390467037, 3967304179347715805)),
    (585_226_005_592_931_977,
     (2, 123635709730000, 9233062284813009, 43835965440333360, 761179012939631437,
      1263739024124850375)),
)


@functools.cache
def _trial_tables() -> tuple[tuple[int, np.ndarray], ...]:
    """Groups of odd primes <= TRIAL_LIMIT as (product M, flags "r is coprime to M" for r < M).

    One floor division by M (NumPy divides by a scalar with libdivide, unlike its `%`) and one
    table lookup test a value against the whole group.
    """
    groups = product_groups(small_odd_primes(TRIAL_LIMIT), 1 << 18)  # each table (bytes) within L2
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


class Mod53:
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


class Mod32:
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


def strong_probable_prime(n: np.ndarray, base, big: bool) -> np.ndarray:
    """Miller-Rabin: True where odd n > 2 is a strong probable prime to `base`.

    `base` is 2 (fast path: the multiplications by 2 are shifts) or a uint64 array with one base
    per element. `big` selects the float-assisted arithmetic needed once some n >= 2**32.
    """
    kind = Mod53 if big else Mod32
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


def miller_rabin(n: np.ndarray) -> np.ndarray:
    """Deterministic primality of odd int64 n in [3, 2**53), sorted ascending, vectorised."""
    if len(n) == 0:
        return np.zeros(0, dtype=bool)
    # Base 2 first for everyone: the cheapest base, and it removes almost every composite.
    prime = _chunked(lambda part, big: strong_probable_prime(part, 2, big), n)
    # The remaining bases only see base-2 strong probable primes (nearly all of them prime, so
    # nearly all need every base anyway): all (value, base) pairs go through in one batch, which
    # keeps the arrays long enough for NumPy to be efficient.
    cand = np.flatnonzero(prime)
    lo = 0
    for hi, bases in MR_BASES:
        sel = cand[(n[cand] >= lo) & (n[cand] < hi)]
        lo = hi
        others = np.array([b for b in bases if b != 2], dtype=np.uint64)
        if not len(sel) or not len(others):
            continue
        pairs_n = np.tile(n[sel], len(others))
        pairs_base = np.repeat(others, len(sel))
        ok = _chunked(strong_probable_prime, pairs_n, pairs_base)
        prime[sel] = ok.reshape(len(others), len(sel)).all(axis=0)
    return prime


def is_prime_int(n: int) -> bool:
    """is_prime for one Python int in [SMALL_LIMIT, 2**53): the same trial division and
    deterministic Miller-Rabin, with Python's pow. A few hundred NumPy calls on one-element
    arrays would take a millisecond; this takes microseconds.
    """
    if n % 2 == 0 or math.gcd(n, _trial_product()) != 1:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    bases = next(bases for bound, bases in MR_BASES if n < bound)
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


def is_prime_large(a: np.ndarray) -> np.ndarray:
    """is_prime for int64 values in [SMALL_LIMIT, 2**53) by trial division and Miller-Rabin."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    if len(a) <= (_PYTHON_MAX_32 if a.max() < 2**32 else _PYTHON_MAX_53):
        return np.array([is_prime_int(n) for n in a.tolist()], dtype=bool)
    prime = np.zeros(len(a), dtype=bool)
    odd = np.flatnonzero(a & 1)
    survivors = odd[_trial_survivors(a[odd])]
    if len(survivors):
        # sorting by size keeps the cheap 32-bit arithmetic for the values that allow it
        order = survivors[np.argsort(a[survivors], kind="stable")]
        prime[order] = miller_rabin(a[order])
    return prime


def _is_prime_flat(a: np.ndarray) -> np.ndarray:
    """is_prime for a 1-D int64 array of validated values in [0, 2**53)."""
    if a.size == 0:
        return np.zeros(0, dtype=bool)
    top = int(a.max())
    big = big_for_lookup(a) if top >= SMALL_LIMIT else None
    fast_limit = SIEVE_LIMIT if big is not None else SMALL_LIMIT
    lookup = (lambda v: lookup_big(v, big)) if big is not None else lookup_small
    if top < fast_limit:
        return lookup(a)
    prime = np.zeros(a.shape, dtype=bool)
    low = a < fast_limit
    if low.any():
        prime[low] = lookup(a[low])
    rest = np.flatnonzero(~low)
    prime[rest] = is_prime_large(a[rest])
    return prime


def _is_prime_scalar(n: int) -> bool:
    if n < SMALL_LIMIT:
        return n == 2 or (n % 2 == 1 and bool(small_sieve()[0][n >> 1]))
    big = big_sieve()
    if big is not None and n < SIEVE_LIMIT:
        return n % 2 == 1 and bool((int(big[0][n >> 4]) >> ((n >> 1) & 7)) & 1)
    return is_prime_int(n)


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
    arr, scalar = exact_int_array(values, "is_prime")
    flat = _is_prime_flat(arr.ravel())
    return bool(flat[0]) if scalar else flat.reshape(arr.shape)

