"""optimus.primes against sympy: exact primality, prime counting, densities and references.

Every test runs with OPTIMUS_CACHE_DIR pointing at an empty temporary directory and without the
big sieve, so the small-sieve and Miller-Rabin paths are what is tested, unless it asks for the
`big_sieve` fixture (built once per session into its own temporary directory, about 2 s).
"""

from __future__ import annotations

import math
import mmap
import re

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimus import limits
from optimus import primes as P
from optimus.evaluation import metrics
from optimus.primes import counting, primality, sieve

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOP = 2**53 - 1

CARMICHAEL = [561, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 62745, 825265, 321197185,
              5394826801, 232250619601, 9746347772161]
# strong pseudoprimes to base 2 and, for the later ones, to every prime base up to 7, 11, 13, 17
STRONG_PSEUDOPRIMES = [2047, 3277, 4033, 4681, 8321, 15841, 29341, 42799, 49141, 52633, 65281,
                       74665, 80581, 85489, 88357, 90751, 1373653, 25326001, 3215031751,
                       2152302898747, 3474749660383, 341550071728321]


def sympy_flags(values) -> np.ndarray:
    return np.array([sympy.isprime(int(v)) for v in np.ravel(values)], dtype=bool).reshape(np.shape(values))


@pytest.fixture(scope="session")
def built_sieve(tmp_path_factory):
    """The big sieve, built once into a session temporary cache directory."""
    path = tmp_path_factory.mktemp("sieve-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("OPTIMUS_CACHE_DIR", str(path))
    saved = sieve.big_sieve()
    sieve.set_sieve(None)
    assert P.ensure_sieve() == "built"
    cache = sieve.big_sieve()
    sieve.set_sieve(saved)
    mp.undo()
    return path, cache


@pytest.fixture(autouse=True)
def no_big_sieve(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(tmp_path / "empty-cache"))
    saved = sieve.big_sieve()
    sieve.set_sieve(None)
    P.clear_count_cache()
    yield
    P.clear_count_cache()
    sieve.set_sieve(saved)


@pytest.fixture
def big_sieve(built_sieve, monkeypatch):
    path, cache = built_sieve
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(path))
    sieve.set_sieve(cache)  # no_big_sieve (autouse) puts back what was there before
    return cache


# --- is_prime: known values -----------------------------------------------------------------


def test_boundaries_and_famous_values():
    assert [P.is_prime(n) for n in (0, 1, 2, 3, 4)] == [False, False, True, True, False]
    assert P.is_prime(2**31 - 1) is True
    assert P.is_prime(2**53 - 111) is True  # the largest prime below 2**53
    assert P.is_prime(2**53 - 1) is False  # 6361 * 69431 * 20394401
    assert P.is_prime(10**9 + 7) is True
    assert P.is_prime(2**30 - 35) is True  # the largest prime below the sieve limit
    assert sympy.isprime(2**53 - 111) and not any(sympy.isprime(n) for n in range(2**53 - 110, 2**53))


@pytest.mark.slow
@pytest.mark.parametrize("with_sieve", [False, True])
def test_hard_composites(with_sieve, request):
    if with_sieve:
        request.getfixturevalue("big_sieve")
    p, q = sympy.prevprime(2**26), sympy.nextprime(2**26)
    r = sympy.prevprime(math.isqrt(2**53))
    semiprimes = [p * q, p * p, q * q, r * r, p * sympy.nextprime(q), 3 * sympy.prevprime(2**51)]
    values = CARMICHAEL + STRONG_PSEUDOPRIMES + semiprimes
    assert all(v < 2**53 for v in values)
    assert not P.is_prime(values).any()
    assert not sympy_flags(values).any()


def test_miller_rabin_alone_on_hard_composites():
    """The Miller-Rabin path on its own, including values the sieves would normally answer."""
    values = np.array(sorted(v for v in CARMICHAEL + STRONG_PSEUDOPRIMES if v % 2), dtype=np.int64)
    assert not primality.miller_rabin(values).any()


def test_chernick_carmichael_numbers_below_2p53():
    """(6k+1)(12k+1)(18k+1) with three prime factors: Carmichael numbers, up to 2**53."""
    values = []
    for k in range(1, 20_000):
        factors = (6 * k + 1, 12 * k + 1, 18 * k + 1)
        if math.prod(factors) >= 2**53:
            break
        if all(sympy.isprime(f) for f in factors):
            values.append(math.prod(factors))
    values = np.array(values, dtype=np.int64)
    assert len(values) > 200
    assert not primality.miller_rabin(values).any()
    assert not any(primality.is_prime_int(int(v)) for v in values if v >= P.SMALL_LIMIT)
    assert not P.is_prime(values).any()


def test_miller_rabin_alone_on_small_odd_numbers():
    n = np.arange(3, 200_001, 2, dtype=np.int64)
    assert np.array_equal(primality.miller_rabin(n), sympy_flags(n))


def test_both_arithmetics_agree_below_2p32():
    rng = np.random.default_rng(7)
    n = np.sort(rng.integers(2**20, 2**31, 20_000) * 2 + 1)
    assert np.array_equal(primality.strong_probable_prime(n, 2, False), primality.strong_probable_prime(n, 2, True))
    base = np.full(len(n), 1795265022, dtype=np.uint64)
    assert np.array_equal(primality.strong_probable_prime(n, base, False), primality.strong_probable_prime(n, base, True))


def test_mod53_products_are_exact_at_the_extremes():
    rng = np.random.default_rng(3)
    n = np.concatenate([[TOP, TOP - 2, 2**53 - 111, 2**52 + 1, 2**40 + 1], rng.integers(2**51, 2**52, 2000) * 2 + 1])
    mod = primality.Mod53(n)
    half = n // 2
    for a, b in [(half + 4, half + 4), (-half - 4, half + 4), (-half - 4, -half - 4),
                 (rng.integers(-(2**62), 2**62, len(n)) % n - half, rng.integers(-(2**62), 2**62, len(n)) % n - half)]:
        out = np.empty(len(n), dtype=np.int64)
        mod.mul(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64), out)
        for ai, bi, ni, oi in zip(np.asarray(a).tolist(), np.asarray(b).tolist(), n.tolist(), out.tolist(), strict=True):
            assert (ai * bi - oi) % ni == 0 and abs(oi) <= ni // 2 + 4


def test_python_and_vectorised_paths_agree():
    rng = np.random.default_rng(13)
    values = np.concatenate([rng.integers(2**22, 2**32, 3000), rng.integers(2**32, 2**53, 3000)]) | 1
    values = np.concatenate([values, np.array([v for v in STRONG_PSEUDOPRIMES + CARMICHAEL if v >= 2**22])])
    vectorised = primality.is_prime_large(values)
    assert [primality.is_prime_int(int(v)) for v in values] == vectorised.tolist()
    assert np.array_equal(vectorised, sympy_flags(values))


def test_deterministic_bases_match_sympy_source():
    """The base sets are copied from sympy.isprime; a typo would let rare composites through."""
    import inspect

    from sympy.ntheory import primetest

    source = inspect.getsource(primetest.isprime)
    for bound, bases in primality.MR_BASES[1:]:
        assert str(bound) in source
        assert all(str(b) in source for b in bases)


# --- is_prime: against sympy -----------------------------------------------------------------


@pytest.mark.parametrize("lo,hi", [(0, 10**6), (10**6, 2**30), (2**30, 2**32 + 10**6),
                                   (2**32, 2**40), (2**40, 2**53)])
def test_random_bulk_against_sympy(lo, hi):
    rng = np.random.default_rng(lo % 1000 + 11)
    values = rng.integers(lo, hi, 20_000)
    values[::2] |= 1  # half odd, so plenty of Miller-Rabin work
    assert np.array_equal(P.is_prime(values), sympy_flags(values))


def test_bulk_with_the_sieve_against_sympy(big_sieve):
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.integers(0, 2**30, 100_000), rng.integers(2**30, 2**53, 5_000),
                             np.arange(2**30 - 2000, 2**30 + 2000), np.arange(10**9 - 2000, 10**9 + 2000)])
    assert np.array_equal(P.is_prime(values), sympy_flags(values))


def test_sieve_and_small_sieve_agree(big_sieve):
    n = np.arange(0, P.SMALL_LIMIT, dtype=np.int64)
    assert np.array_equal(sieve.lookup_big(n, big_sieve[0]), sieve.lookup_small(n))


small_ints = st.integers(0, 10**6)
near_sieve = st.one_of(st.integers(10**9 - 10**5, 10**9 + 10**5), st.integers(2**30 - 10**4, 2**30 + 10**4),
                       st.integers(2**32 - 10**4, 2**32 + 10**4))
large_ints = st.one_of(st.integers(2**40, TOP), st.integers(TOP - 10**6, TOP), st.integers(0, TOP))


@SETTINGS
@given(st.one_of(small_ints, near_sieve, large_ints))
def test_scalar_matches_sympy(n):
    assert P.is_prime(n) is sympy.isprime(n)


@SETTINGS
@given(st.lists(st.one_of(small_ints, near_sieve, large_ints), min_size=1, max_size=60))
def test_array_matches_sympy(values):
    arr = np.array(values, dtype=np.int64)
    got = P.is_prime(arr)
    assert got.dtype == bool and got.shape == arr.shape
    assert np.array_equal(got, sympy_flags(arr))
    assert P.is_prime(values).tolist() == got.tolist()


@SETTINGS
@given(st.lists(st.one_of(small_ints, near_sieve, large_ints), min_size=1, max_size=40))
def test_array_matches_sympy_with_sieve(big_sieve, values):
    arr = np.array(values, dtype=np.uint64)
    assert np.array_equal(P.is_prime(arr), sympy_flags(arr))


def test_input_kinds_and_shapes():
    assert P.is_prime(np.int64(7)) is True
    assert P.is_prime(7.0) is True
    assert P.is_prime(np.array([[2, 4], [5, 9]], dtype=np.uint8)).tolist() == [[True, False], [True, False]]
    assert P.is_prime(np.array([7.0, 8.0])).tolist() == [True, False]
    assert P.is_prime([]).shape == (0,)
    assert P.is_prime(np.array(5)).shape == ()
    assert P.is_prime([[3], [4]]).tolist() == [[True], [False]]


@pytest.mark.parametrize("bad,message", [
    (-3, "is_prime: -3 is negative"),
    (2**53, "is_prime: 9007199254740992 is >= 2**53"),
    (float("nan"), "is_prime: nan is not a finite number"),
    (float("inf"), "is_prime: inf is not a finite number"),
    (2.5, "is_prime: 2.5 is not an integer"),
    ("7", "is_prime: '7' is not an integer"),
    (True, "is_prime: True is not an integer"),
    (None, "is_prime: None is not an integer"),
    ([5, 7, -1, -2], "is_prime: -1 is negative"),
    ([1, 2**80], "is_prime: 1208925819614629174706176 is >= 2**53"),
    ([3, "x"], "is_prime: 'x' is not an integer"),
    (np.array([1.0, np.nan]), "is_prime: nan is not a finite number"),
    (np.array([1.0, 2.5]), "is_prime: 2.5 is not an integer"),
    (np.array([2**63], dtype=np.uint64), "is_prime: 9223372036854775808 is >= 2**53"),
    (np.array([4, -9]), "is_prime: -9 is negative"),
])
def test_errors_name_the_first_offender(bad, message):
    with pytest.raises(ValueError) as info:
        P.is_prime(bad)
    assert str(info.value) == message


# --- sieve cache -------------------------------------------------------------------------------


def test_sieve_cache_file_is_complete_and_reloads(built_sieve, monkeypatch):
    path, cache = built_sieve
    files = sorted(p.name for p in path.iterdir())
    assert files == [sieve.CACHE_NAME]  # no temp file left behind
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(path))
    assert P.sieve_cached() and not P.sieve_ready()
    assert P.ensure_sieve(build=False) == "loaded"
    assert np.array_equal(sieve.big_sieve()[0], cache[0])
    assert P.ensure_sieve() == "memory"


def test_corrupt_cache_file_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(tmp_path))
    np.save(tmp_path / sieve.CACHE_NAME, np.zeros(sieve.SIEVE_BYTES, dtype=np.uint8))
    assert P.ensure_sieve(build=False) == "missing"
    (tmp_path / sieve.CACHE_NAME).write_bytes(b"not a numpy file")
    assert P.ensure_sieve(build=False) == "missing"
    values = np.arange(2**22, 2**22 + 200_000)  # enough to try to load it; must fall back
    assert np.array_equal(P.is_prime(values), sympy_flags(values))


def test_small_calls_do_not_build_the_sieve():
    P.is_prime(np.arange(10**6, 10**6 + 50_000))
    assert P.count_primes(0, 10**9) == 50_847_534
    assert not P.sieve_ready() and not P.sieve_cached()


# --- counting ------------------------------------------------------------------------------------


def test_prime_pi_known_values():
    known = {0: 0, 1: 0, 2: 1, 3: 2, 10: 4, 100: 25, 2**22 - 1: 295947, 2**22: 295947,
             10**7: 664579, 2**30: 54_400_028, 10**9: 50_847_534, 10**10: 455_052_511}
    for x, pi in known.items():
        assert P.prime_pi(x) == pi, x


def test_lucy_against_the_small_sieve():
    for x in list(range(0, 2000)) + [10**5 + k for k in range(-50, 50)]:
        assert counting.pi_lucy(x) == counting.pi_small(x)


@pytest.mark.slow
def test_segment_counts_against_sympy():
    for lo, hi in [(0, 0), (0, 2), (2, 2), (3, 100), (10**9 - 10**5, 10**9 + 10**5), (10**10 - 10**6, 10**10)]:
        assert counting.count_segment(lo, hi) == sympy.primepi(hi) - sympy.primepi(lo - 1), (lo, hi)


@pytest.mark.slow
@pytest.mark.parametrize("with_sieve", [False, True])
def test_count_primes_random_intervals(with_sieve, request):
    if with_sieve:
        request.getfixturevalue("big_sieve")
    rng = np.random.default_rng(9 + with_sieve)
    for top in (10**3, 10**6, 2**30, 10**9, 3 * 10**9):
        for _ in range(3):
            lo, hi = sorted(int(v) for v in rng.integers(0, top, 2))
            assert P.count_primes(lo, hi) == sympy.primepi(hi) - sympy.primepi(lo - 1), (lo, hi)
    assert P.count_primes(7, 7) == 1 and P.count_primes(8, 8) == 0


def test_count_primes_up_to_1e10(big_sieve):
    assert P.count_primes(0, 10**10) == sympy.primepi(10**10)
    assert P.count_primes(5 * 10**9, 10**10) == 455_052_511 - sympy.primepi(5 * 10**9 - 1)
    assert P.count_primes(10**10 - 1000, 10**10) == sum(sympy.isprime(n) for n in range(10**10 - 1000, 10**10 + 1))


@pytest.mark.parametrize("args,message", [
    ((5, 4), "count_primes: lo > hi (5 > 4)"),
    ((-1, 4), "count_primes: lo must be >= 0, got -1"),
    ((0, 10**18 + 1), "count_primes: hi must be <= 1000000000000000000, got 1000000000000000001"),
    ((0.5, 4), "count_primes: lo must be an integer, got 0.5"),
])
def test_count_primes_errors(args, message):
    with pytest.raises(ValueError) as info:
        P.count_primes(*args)
    assert str(info.value) == message


# --- binned counts and references ---------------------------------------------------------------


@pytest.mark.parametrize("lo,hi,bins,log", [(0, 100, 7, False), (1, 10**6, 30, True), (0, 10**6, 30, True),
                                            (10, 10, 1, False), (0, 9, 10, False), (1, 10, 10, True),
                                            (2**30 - 10**6, 2**30 + 10**6, 13, False),
                                            (10**9, 3 * 10**9, 5, True)])
def test_binned_counts_partition_the_range(lo, hi, bins, log):
    r = P.binned_prime_counts(lo, hi, bins, log=log)
    edges, counts, widths = r["edges"], r["counts"], r["widths"]
    first = 1 if (log and lo == 0) else lo
    assert r["lo"] == first and edges[0] == first and edges[-1] == hi and len(edges) == bins + 1
    assert all(a < b for a, b in zip(edges[:-2], edges[1:-1], strict=True)) and edges[-2] <= hi
    assert sum(widths) == hi - first + 1
    assert sum(counts) == r["total"] == P.count_primes(lo, hi)
    for i, c in enumerate(counts):
        last = edges[i + 1] - 1 if i < bins - 1 else hi
        if last - edges[i] < 5000:
            assert c == P.is_prime(np.arange(edges[i], last + 1)).sum()
    assert r["density"] == [c / w for c, w in zip(counts, widths, strict=True)]
    assert len(r["expected_li"]) == len(r["expected_x_ln_x"]) == bins
    assert len(r["ref_li_at_edges"]) == len(r["ref_x_ln_x_at_edges"]) == bins + 1
    assert np.allclose(np.diff(r["ref_li_at_edges"]), r["expected_li"])
    assert r["li"] == r["expected_li"] and r["x_over_ln_x"] == r["expected_x_ln_x"]


def test_binned_reference_curves_track_the_counts():
    r = P.binned_prime_counts(10**6, 10**9, 20, log=True)
    counts = np.array(r["counts"], dtype=float)
    assert np.all(np.abs(np.array(r["expected_li"]) / counts - 1) < 1e-2)
    assert np.all(np.abs(np.array(r["expected_x_ln_x"]) / counts - 1) < 0.1)


def test_binned_log_over_1e9_counts_every_prime(big_sieve):
    # Its speed is a figure of `python -m optimus bench density`, not an assertion here.
    r = P.binned_prime_counts(1, 10**9, 100, log=True)
    assert r["total"] == 50_847_534


@pytest.mark.parametrize("args,message", [
    ((5, 4, 1), "binned_prime_counts: lo > hi (5 > 4)"),
    ((0, 10, 0), "binned_prime_counts: bins must be >= 1, got 0"),
    ((0, 10**6, limits.MAX_BINS + 1), f"binned_prime_counts: bins must be <= {limits.MAX_BINS}, got {limits.MAX_BINS + 1}"),
    ((0, 9, 11), "binned_prime_counts: 11 bins do not fit in [0, 9]; use at most 10"),
    ((0, 2 * 10**18, 3), "binned_prime_counts: hi must be <= 1000000000000000000, got 2000000000000000000"),
    ((0, 0, 1, True), "binned_prime_counts: log spacing needs hi >= 1"),
])
def test_binned_errors(args, message):
    with pytest.raises(ValueError) as info:
        P.binned_prime_counts(*args)
    assert str(info.value) == message


def test_li_against_mpmath():
    xs = np.array([0.5, 1.5, 2.0, 10.0, 1e3, 1e6, 1e9, 1e10, 2.0**53])
    ours = P.li(xs)
    for x, v in zip(xs, ours, strict=True):
        assert v == pytest.approx(float(mpmath.li(x)), rel=1e-12)
    assert P.li(2) == pytest.approx(1.045163780117492784, rel=1e-14)
    assert P.li(0) == 0.0 and P.li(1) == -math.inf
    assert P.li(10**10, offset=True) == pytest.approx(float(mpmath.li(1e10) - mpmath.li(2)), rel=1e-12)
    assert isinstance(P.li(5), float) and P.li([2, 3]).shape == (2,)
    with pytest.raises(ValueError, match="li: -1.0 is negative"):
        P.li([1, -1])
    with pytest.raises(ValueError, match="li: nan is not a finite number"):
        P.li(float("nan"))


def test_x_over_ln_x():
    assert P.x_over_ln_x(math.e**2) == pytest.approx(math.e**2 / 2)
    assert P.x_over_ln_x(1.5) == 0.0 and P.x_over_ln_x(2) == pytest.approx(2 / math.log(2))
    assert P.x_over_ln_x([10.0, 100.0]).tolist() == pytest.approx([10 / math.log(10), 100 / math.log(100)])
    with pytest.raises(ValueError, match="x_over_ln_x: -2.0 is negative"):
        P.x_over_ln_x(-2)


# --- odd integers and densities ----------------------------------------------------------------


def test_to_odd_is_exact_near_2p52():
    assert P.to_odd(0) == 1 and P.to_odd(0.999) == 1 and P.to_odd(3) == 7
    assert P.to_odd(2.0**52 - 0.5) == 2**53 - 1
    assert P.to_odd(2**52 - 1) == 2**53 - 1
    assert P.to_odd(2.0**51 + 0.5) == 2**52 + 1
    x = np.array([2.0**52 - 1, 2.0**52 - 1.5, 2.0**50 + 0.25, 0.0])
    got = P.to_odd(x)
    assert got.dtype == np.int64
    assert got.tolist() == [2**53 - 1, 2**53 - 3, 2**51 + 1, 1]
    assert P.to_odd([[0.5, 1.5]]).tolist() == [[1, 3]]
    for bad, why in [(-0.5, "is negative"), (float("nan"), "is not a finite number"), (float("inf"), "is not a finite number"),
                     (2.0**52, "gives 2*floor(x)+1 >= 2**53"), (2**60, "gives 2*floor(x)+1 >= 2**53"), ("3", "is not a number")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            P.to_odd(bad)
    with pytest.raises(ValueError, match=r"to_odd: -1\.0 is negative"):
        P.to_odd(np.array([1.0, -1.0]))


@SETTINGS
@given(st.integers(0, 3000), st.integers(0, 3000))
def test_odd_prime_density_against_a_direct_count(a, b):
    lo, hi = min(a, b), max(a, b)
    odd = [n for n in range(lo, hi + 1) if n % 2]
    if not odd:
        with pytest.raises(ValueError, match="contains no odd integer"):
            P.odd_prime_density(lo, hi)
        return
    assert P.odd_prime_density(lo, hi) == sum(sympy.isprime(n) for n in odd) / len(odd)


def test_odd_prime_density_binned():
    d = P.odd_prime_density_binned([1, 11, 21])  # {1,3,5,7,9}: 3 primes; {11,...,21}: 11,13,17,19
    assert d.tolist() == [3 / 5, 4 / 6]
    assert P.odd_prime_density_binned([1, 11, 21], include_last=False).tolist() == [3 / 5, 4 / 5]
    assert P.odd_prime_density_binned([2, 3]).tolist() == [1.0]  # just 3
    assert P.odd_prime_density_binned([2, 3], include_last=False).tolist() == [0.0]  # no odd integer
    assert P.odd_prime_density_binned([5, 5]).tolist() == [1.0]  # the closed bin [5, 5]
    for bad in ([5, 4], [1, 5, 5, 9], [7]):
        with pytest.raises(ValueError, match="strictly increasing"):
            P.odd_prime_density_binned(bad)
    with pytest.raises(ValueError, match="strictly increasing"):
        P.odd_prime_density_binned([5, 5], include_last=False)
    with pytest.raises(ValueError, match="must be <= 10000000000"):
        P.odd_prime_density_binned([10, 2 * 10**10])
    est = P.odd_prime_density_binned([10**11, 10**11 + 10**9], estimate_above=True)[0]
    assert est == pytest.approx(2 / math.log(10**11), rel=0.01)


def test_magnitude_matched_baseline_by_hand():
    # values 3, 4, 9 with 2 log bins over [3, 9]: edges 3, round(sqrt(27)) = 5, 9.
    # bin [3, 5) has odd {3}: density 1; bin [5, 9] has odd {5, 7, 9}: density 2/3.
    # shares 2/3 and 1/3 -> 2/3 * 1 + 1/3 * 2/3 = 8/9
    assert P.log_edges(3, 9, 2) == [3, 5, 9]
    assert metrics.magnitude_matched_baseline([3, 4, 9], bins=2) == pytest.approx(8 / 9)
    assert metrics.magnitude_matched_baseline(np.array([1, 10]), bins=1) == pytest.approx(3 / 5)
    assert metrics.magnitude_matched_baseline([7, 7, 7]) == 1.0
    assert metrics.magnitude_matched_baseline([9]) == 0.0
    assert metrics.magnitude_matched_baseline([0, 1]) == 0.0
    big = metrics.magnitude_matched_baseline(np.array([10**6, 10**9, 10**12]), bins=20)
    assert 0 < big < 1
    with pytest.raises(ValueError, match="no values"):
        metrics.magnitude_matched_baseline([])
    with pytest.raises(ValueError, match="is negative"):
        metrics.magnitude_matched_baseline([3, -5])


def test_magnitude_matched_baseline_tracks_random_odd_integers():
    rng = np.random.default_rng(1)
    values = rng.integers(10**5, 10**7, 200_000) * 2 + 1
    expected = P.is_prime(values).mean()
    assert metrics.magnitude_matched_baseline(values) == pytest.approx(expected, abs=0.004)


def test_density_table_rows_and_validation():
    t = P.density_table(0, 100, 4, False)
    assert [(r["lo"], r["hi"], r["count"]) for r in t["rows"]] == [(0, 24, 9), (25, 49, 6), (50, 74, 6), (75, 100, 4)]
    assert t["total"] == 25 and t["odd_prime_density"] == 24 / 50
    assert t["rows"][0]["odd_prime_density"] == 8 / 12 and t["rows"][0]["width"] == 25
    assert set(t["rows"][0]) >= {"lo", "hi", "count", "density", "expected_x_ln_x", "expected_li"}
    log = P.density_table(0, 1000, 5, True)
    assert log["lo"] == 1 and log["rows"][0]["lo"] == 1 and log["total"] == 168
    assert P.density_table(2, 2, 1, False)["odd_prime_density"] is None
    for args, message in [((10, 5, 3, False), "lo > hi"), ((0, 10**19, 3, False), "hi must be <="),
                          ((0, 10, 0, True), "bins must be >= 1"), ((-5, 10, 3, False), "lo must be >= 0"),
                          ((0, 100, limits.MAX_BINS + 1, False), "bins must be <="), ((0, 100, 3, "yes"), "log must be")]:
        with pytest.raises(ValueError, match="^density_table: " + message):
            P.density_table(*args)


def test_small_odd_primes():
    assert P.small_odd_primes(30).tolist() == [3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert P.small_odd_primes(2).tolist() == [] and P.small_odd_primes(3).tolist() == [3]
    big = P.small_odd_primes(5 * 10**6)
    assert len(big) == sympy.primepi(5 * 10**6) - 1 and big[-1] == sympy.prevprime(5 * 10**6 + 1)
    with pytest.raises(ValueError, match="limit must be <="):
        P.small_odd_primes(2**31)


def test_uniform_odd_is_inclusive_and_reproduces_the_seeded_streams():
    rng = np.random.default_rng(0)
    draws = P.uniform_odd(4, 9, 2_000, rng)
    assert set(draws.tolist()) == {5, 7, 9}  # both ends of [lo, hi] reachable, only odd values
    assert P.uniform_odd(7, 7, 3, rng).tolist() == [7, 7, 7]
    # the stream of the draws it replaced: one rng.integers(0, odd count) call
    expected = 2**40 + 1 + 2 * np.random.default_rng([1, 104729]).integers(0, 2**52 - 2**39, size=50)
    assert np.array_equal(P.uniform_odd(2**40, 2**53 - 1, 50, np.random.default_rng([1, 104729])), expected)
    for lo, hi, message in [(2, 2, "contains no odd integer"), (0, 9, "lo must be >= 1"), (9, 5, "hi must be >= 9"),
                            (1, 2**53, "hi must be <=")]:
        with pytest.raises(ValueError, match=message):
            P.uniform_odd(lo, hi, 1, rng)


def test_loaded_sieve_is_mapped_and_its_pages_can_be_dropped(built_sieve, monkeypatch):
    """The server maps the cache file (shared page cache) and drops its pages from its resident
    set after each page run (app.py); lookups then fault back in and still answer."""
    path, cache = built_sieve
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(path))
    assert P.ensure_sieve(build=False) == "loaded"
    loaded = sieve.big_sieve()[0]
    assert isinstance(loaded.base.obj, mmap.mmap) and not loaded.flags.writeable
    values = np.arange(2**22, 2**22 + 200_000)
    before = P.is_prime(values)
    sieve.release_sieve_pages()
    assert np.array_equal(P.is_prime(values), before)
    assert np.array_equal(before, sympy_flags(values))
    assert np.array_equal(loaded, cache[0])
