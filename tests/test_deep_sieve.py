"""The batched deep sieve (`optimus.sampling.deep_sieve`) against gmpy2 and Python's `%`."""

import random

import numpy as np
import pytest
import sympy

from optimus.sampling import deep_sieve as D

# (bits, bound, width): small bounds keep the brute-force checks quick; the digit size and the
# exactness margin are what the real sizes use (24-bit digits to 2^22, fewer above)
CASES = [(80, 5_000, 64), (333, 50_000, 1_856), (1_000, 300_000, 5_526), (2_048, 40_000, 11_360),
         (4_096, 30_000, 22_720),
         # primes beyond 2^24 (fewer, smaller digits): a minute of brute force, so slow tier
         pytest.param(4_096, (1 << 24) + 1_000, 300, marks=pytest.mark.slow)]


def _starts(bits: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    out = [rng.randrange(1 << (bits - 1), 1 << bits) | 1 for _ in range(count - 2)]
    return out + [(1 << (bits - 1)) + 1, (1 << bits) - 1]  # the extremes: digits 0 and all ones


@pytest.mark.parametrize("bits, bound, width", CASES)
def test_first_multiples_equal_python_modulo(bits, bound, width):
    """j = -s/2 mod m for every start s and modulus m (the wheel, every prime), exactly."""
    sieve = D.DeepSieve(bits, bound, width)
    starts = _starts(bits, 12, bits)
    j = sieve.first_multiples(starts)
    moduli = sieve.moduli.tolist()
    cols = sorted(set(range(0, len(moduli), max(1, len(moduli) // 3000))) | {len(moduli) - 1})
    for k, s in enumerate(starts):
        for c in cols:
            m = moduli[c]
            assert j[k, c] == (-s * pow(2, -1, m)) % m


def _struck_by_python(s: int, moduli: list[int], width: int) -> np.ndarray:
    """bool [width]: candidate s + 2 i has a factor among `moduli`, from Python's `%` alone."""
    struck = np.zeros(width, dtype=bool)
    for p in moduli:
        r = s % p  # s + 2 i = 0 mod p  <=>  i = (p - r) (p + 1)/2 mod p
        struck[((p - r) * ((p + 1) // 2)) % p :: p] = True
    return struck


@pytest.mark.parametrize("bits, bound, width", CASES)
def test_survivors_are_exactly_the_candidates_coprime_to_the_sieve_primes(bits, bound, width):
    """Every struck candidate has a factor <= bound and every survivor none (so every prime of
    a window survives), against an oracle built from Python's `%` prime by prime."""
    sieve = D.DeepSieve(bits, bound, width)
    moduli = [*D.WHEEL_PRIMES, *sieve.primes.tolist()]
    starts = _starts(bits, 4, bits + 1)
    alive = sieve.survivors(starts)
    assert alive.shape == (len(starts), width)
    for k, s in enumerate(starts[:3]):
        np.testing.assert_array_equal(alive[k], ~_struck_by_python(s, moduli, width))
        some = [i for i in range(0, width, max(1, width // 50))]
        for i in some:  # and spot checks with gcd: a survivor has no factor <= bound
            if alive[k, i] and bound < 10**6:
                assert all((s + 2 * i) % p for p in moduli)
    assert abs(alive.mean() - sieve.share()) < 0.1 * sieve.share() + 0.02


def test_every_prime_of_a_window_survives_and_the_share_matches():
    sieve = D.DeepSieve(200, 100_000, 2_000)
    rng = random.Random(7)
    starts = [rng.randrange(1 << 199, 1 << 200) | 1 for _ in range(40)]
    alive = sieve.survivors(starts)
    for k, s in enumerate(starts):
        prime_at = [i for i in range(2_000) if sympy.isprime(s + 2 * i)]
        assert prime_at and alive[k, prime_at].all()
    assert alive.mean() == pytest.approx(sieve.share(), rel=0.05)


def test_the_digit_size_keeps_every_partial_sum_exact():
    for bits in (64, 333, 2048, 4096):
        for pmax in (1 << 16, 1 << 22, 1 << 25, D.MAX_DEEP_PRIME - 1):
            b = D.digit_bits(bits, pmax)
            count = -(-bits // b)
            assert count * ((1 << b) - 1) * (pmax - 1) + D.MARGIN + pmax <= 2**53
    with pytest.raises(ValueError):
        D.DeepSieve(333, 10, 100)
    with pytest.raises(ValueError):
        D.DeepSieve(333, 1000, D.WHEEL + 1)


def test_blocks_built_per_batch_equal_the_cached_table(monkeypatch):
    starts = _starts(1_000, 5, 3)
    cached = D.DeepSieve(1_000, 20_000, 700)
    assert cached._cache is not None
    monkeypatch.setattr(D, "TABLE_CACHE_BYTES", 0)
    monkeypatch.setattr(D, "TABLE_BLOCK_BYTES", 1 << 16)  # many small blocks
    built = D.DeepSieve(1_000, 20_000, 700)
    assert built._cache is None
    np.testing.assert_array_equal(cached.survivors(starts), built.survivors(starts))
    np.testing.assert_array_equal(cached.first_multiples(starts), built.first_multiples(starts))


@pytest.mark.parametrize("built", [False, True])
def test_the_column_block_does_not_change_the_survivors(monkeypatch, built):
    """A batch of k windows runs [k, NB x ROWS / k] blocks (1 window: 128 x NB columns, past the
    end of a table block): each window alone, a few together and more than ROWS agree."""
    if built:
        monkeypatch.setattr(D, "TABLE_CACHE_BYTES", 0)
        monkeypatch.setattr(D, "TABLE_BLOCK_BYTES", 1 << 18)
    sieve = D.DeepSieve(1_000, 300_000, 700)
    starts = _starts(1_000, D.ROWS + 3, 11)
    together = sieve.survivors(starts)
    np.testing.assert_array_equal(sieve.survivors(starts[:3]), together[:3])
    for k in (0, 1, D.ROWS + 2):
        np.testing.assert_array_equal(sieve.survivors([starts[k]])[0], together[k])


@pytest.mark.parametrize("bits, bound, width", [(333, 50_000, 1_856), (1_000, 300_000, 700)])
def test_multiples_at_the_window_edges_in_the_first_and_last_rows(bits, bound, width):
    """Windows built so that a wide prime (or a narrow one) divides the candidate just before,
    at, or just after each end of the window, across more than ROWS windows (the first and the
    last rows take the strikes that land in the padding between rows): equal to Python's `%`."""
    sieve = D.DeepSieve(bits, bound, width)
    primes = sieve.primes.tolist()
    narrow, wide = primes[: sieve.multi - 1], primes[sieve.multi - 1 :]
    rng = random.Random(bits)
    starts = []
    for k in range(D.ROWS + 6):
        p = rng.choice(wide[-50:] if k % 3 else wide[:50]) if k % 4 else rng.choice(narrow)
        i0 = rng.choice([-2, -1, 0, 1, width - 2, width - 1, width, width + 1])
        m = rng.randrange(1 << (bits - 2), 1 << (bits - 1)) // p | 1  # odd: s = m p - 2 i0 is odd
        starts.append(m * p - 2 * i0)  # s + 2 i0 = m p
    moduli = [*D.WHEEL_PRIMES, *primes]
    for chunk in (starts, starts[:1], starts[-3:]):
        alive = sieve.survivors(chunk)
        for k in sorted({0, len(chunk) - 1, *range(1, len(chunk), 7)}):
            np.testing.assert_array_equal(alive[k], ~_struck_by_python(chunk[k], moduli, width))


@pytest.mark.parametrize("bits, bound, width, count", [(333, 50_000, 1_856, D.ROWS + 5), (1_000, 300_000, 700, 1),
                                                       (2_048, 40_000, 11_360, 3)])
def test_survivor_offsets_are_the_survivors_window_by_window(bits, bound, width, count):
    sieve = D.DeepSieve(bits, bound, width)
    starts = _starts(bits, count, 5)
    offsets, ends = sieve.survivor_offsets(starts)
    rows, cols = np.nonzero(sieve.survivors(starts))
    np.testing.assert_array_equal(offsets, cols)
    np.testing.assert_array_equal(ends, np.cumsum(np.bincount(rows, minlength=count)))
