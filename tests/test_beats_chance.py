"""The default design's mechanism: exact residue machinery, and a short run that beats chance."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from optimus import primes
from optimus.evaluation import generator_report, load_models, sample
from optimus.layers import DivisibilityEncoding, SieveWindow, odd_from_real
from optimus.training import train
from tests.helpers import tiny

ODD_BELOW_2_53 = st.integers(min_value=0, max_value=2**52 - 1).map(lambda k: 2 * k + 1)
ENCODING = DivisibilityEncoding(200)
SIEVE = SieveWindow(1e6, 1e9, window=4, prime_max=31)
SMALL_PRIMES = [int(p) for p in ENCODING._primes.numpy()]


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


def test_a_short_run_beats_chance(tmp_path):
    """Seconds of training on [10^5, 10^6] lift the generator well above chance (1.0)."""
    cfg = tiny("default", batches=6, batch_size=256, steps=10, window=16, out_lo=1e5, out_hi=1e6,
               disc_prime_max=1000, lr_generator=0.05)
    untrained = tmp_path / "untrained"
    train(cfg.replace(batches=1, steps=1, lr_generator=1e-9), untrained, progress=False, log=lambda *_: None)
    before = generator_report(sample(load_models(untrained), 4000, seed=1)["n"].to_numpy())
    train(cfg, tmp_path / "m", progress=False, log=lambda *_: None)
    after = generator_report(sample(load_models(tmp_path / "m"), 4000, seed=1)["n"].to_numpy())
    assert before["lift"] < 1.3, before
    assert after["lift"] > 1.5, after
    assert after["distinct_rate"] > 0.95, after
