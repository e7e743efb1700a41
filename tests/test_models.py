import keras
import numpy as np
import pytest
import tensorflow as tf

from optimus import primes
from optimus.config import preset
from optimus.layers import DivisibilityEncoding, OppositeL2, SieveWindow, odd_from_real
from optimus.models import build_discriminator, build_generator, generate, residue_preferences
from tests.helpers import tiny


@pytest.mark.parametrize("name", ["default", "seed"])
def test_build_and_keras_round_trip_safe_mode(name, tmp_path):
    cfg = preset(name)
    g, d = build_generator(cfg), build_discriminator(cfg)
    z = np.arange(1, 257)
    x = generate(g, z, np.random.default_rng(0))
    assert x.shape == (256,) and np.all(x > 0)
    g.save(tmp_path / "g.keras")
    d.save(tmp_path / "d.keras")
    g2 = keras.saving.load_model(tmp_path / "g.keras", safe_mode=True)
    d2 = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    assert np.array_equal(generate(g2, z, np.random.default_rng(0)), x)
    np.testing.assert_allclose(np.asarray(d2(x.reshape(-1, 1))), np.asarray(d(x.reshape(-1, 1))))


def test_opposite_l2_value_and_gradient():
    reg = OppositeL2(1e6)
    w = tf.Variable([[1.0, -2.0], [0.5, 0.0]])
    with tf.GradientTape() as tape:
        value = reg(w)
    assert float(value) == pytest.approx(-1e6 * (1 + 4 + 0.25))
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), -2e6 * w.numpy())
    assert OppositeL2.from_config(reg.get_config()).coefficient == 1e6


def test_seed_generator_is_positively_homogeneous():
    # The documented flaw: no biases + LeakyReLU => G(z) = z * G(1) for z > 0.
    g = build_generator(preset("seed"))
    z = np.array([[1.0], [3.0], [1000.0]], dtype=np.float32)
    out = np.asarray(g(z)).ravel()
    np.testing.assert_allclose(out, z.ravel() * out[0], rtol=1e-4)


def test_odd_from_real_is_exact_below_2_53():
    x = np.array([0.5, 1.0, 2**51 - 0.5, 2**52 - 1.0, 123456789.999], dtype=np.float64)
    got = odd_from_real(tf.constant(x)).numpy()
    want = [2 * int(np.floor(v)) + 1 for v in x]
    assert got.tolist() == want
    assert got.tolist() == primes.to_odd(x).tolist()


def test_divisibility_encoding_matches_python_integers():
    layer = DivisibilityEncoding(100)
    n = np.array([3, 9, 15, 97, 9409, 2**52 + 1, 1_000_000_007], dtype=np.int64)
    x = (n - 1) // 2 + 0.5
    feats = layer(tf.constant(x.reshape(-1, 1))).numpy()
    ps = [p for p in range(3, 101) if primes.is_prime(p)]
    for row, v in zip(feats, n, strict=True):
        want = [1.0 if (int(v) % p == 0 and int(v) != p) else 0.0 for p in ps]
        assert row[:-1].tolist() == want


def test_sieve_window_candidates_are_consecutive_odds_in_range():
    layer = SieveWindow(1e6, 1e9, window=16, prime_max=31)
    z = tf.constant(np.arange(1, 2001, dtype=np.float64).reshape(-1, 1))
    n = layer.candidates(z).numpy()
    assert np.all(n % 2 == 1)
    assert np.all(np.diff(n, axis=1) == 2)
    assert n[:, 0].min() >= 1e6 - 1 and n[:, -1].max() < 1e9 + 40
    reals, logits = layer(z)
    assert np.array_equal(primes.to_odd(reals.numpy().ravel()), n.ravel())
    # The index into the score table is offset + (n mod p), exact against Python integers.
    idx = layer.residue_index(tf.constant(n[:3])).numpy()
    offsets = np.concatenate([[0], np.cumsum(layer.primes)[:-1]])
    for i in range(3):
        for j in range(16):
            assert idx[i, j].tolist() == [int(o + int(n[i, j]) % int(p)) for p, o in zip(layer.primes, offsets, strict=True)]


def test_residue_preferences_exposed():
    g = build_generator(tiny("default"))
    prefs = residue_preferences(g)
    assert sorted(prefs)[:3] == [3, 5, 7] and all(len(v) == p for p, v in prefs.items())
    assert residue_preferences(build_generator(tiny("seed"))) is None
