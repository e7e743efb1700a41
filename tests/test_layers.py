"""optimus.nets.layers: the exact residue machinery (real <-> odd, divisibility bits, sieve windows)."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from optimus import primes
from optimus.nets.layers import DivisibilityEncoding, SieveWindow, odd_from_real

ODD_BELOW_2_53 = st.integers(min_value=0, max_value=2**52 - 1).map(lambda k: 2 * k + 1)


ENCODING = DivisibilityEncoding(200)


SIEVE = SieveWindow(1e6, 1e9, window=4, prime_max=31)


SMALL_PRIMES = [int(p) for p in primes.small_odd_primes(200)]  # what DivisibilityEncoding(200) reads


@settings(max_examples=200, deadline=None)
@given(st.lists(ODD_BELOW_2_53, min_size=1, max_size=20))
def test_real_to_odd_round_trip_is_exact_below_2_53(ns):
    n = np.array(ns, dtype=np.int64)
    x = (n - 1) // 2 + 0.5  # the real the discriminator is fed for n
    assert odd_from_real(tf.constant(x)).numpy().tolist() == ns
    assert primes.to_odd(x).tolist() == ns


@settings(max_examples=100, deadline=None)
@given(st.lists(ODD_BELOW_2_53, min_size=1, max_size=10))
def test_divisibility_bits_match_python_integers(ns):
    n = np.array(ns, dtype=np.int64)
    bits = ENCODING(tf.constant(((n - 1) // 2 + 0.5).reshape(-1, 1))).numpy()
    for row, v in zip(bits, ns, strict=True):
        assert row[:-1].tolist() == [float(v % p == 0 and v != p) for p in SMALL_PRIMES]


@settings(max_examples=100, deadline=None)
@given(st.lists(ODD_BELOW_2_53, min_size=1, max_size=10))
def test_sieve_residue_index_matches_python_integers(ns):
    n = tf.constant(np.array(ns, dtype=np.int64).reshape(-1, 1))
    idx = SIEVE.residue_index(n).numpy()[:, 0, :]
    offsets = np.concatenate([[0], np.cumsum(SIEVE.primes)[:-1]])
    for row, v in zip(idx, ns, strict=True):
        assert row.tolist() == [int(o) + v % int(p) for p, o in zip(SIEVE.primes, offsets, strict=True)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=50))
def test_sieve_candidates_are_odd_consecutive_and_in_range(zs):
    n = SIEVE.candidates(tf.constant(np.array(zs, dtype=np.float64).reshape(-1, 1))).numpy()
    assert np.all(n % 2 == 1) and np.all(np.diff(n, axis=1) == 2)
    assert n.min() >= 1e6 - 1 and n.max() < 1e9 + 2 * SIEVE.window + 2
