"""The fast sampling path (optimus.sampling.sieve) draws exactly what the Keras forward draws."""

import numpy as np
import pytest

from optimus import primes
from optimus.config import preset
from optimus.nets.networks import build_generator, choose, generate, propose
from optimus.sampling import sieve as sampling


def trained_like(seed: int = 0, **overrides):
    """A sieve generator whose residue scores (and wide "divides" weights) are random, with a
    trained model's spread."""
    generator = build_generator(preset("default", **overrides))
    layer = generator.get_layer("sieve")
    rng = np.random.default_rng(seed)
    layer.scores.assign(rng.normal(0.0, 2.0, size=layer.scores.shape).astype(np.float32))
    if layer.wide_weights is not None:
        layer.wide_weights.assign(rng.normal(-3.0, 2.0, size=2).astype(np.float32))
    return generator, layer


def latents_for(count: int, seed: int = 1) -> np.ndarray:
    edge = np.array([1, 2, 3, 10**9 - 1, 10**9])
    return np.concatenate([edge, np.random.default_rng(seed).integers(1, 10**9 + 1, size=count)])


@pytest.mark.parametrize("overrides", [{}, {"window": 8, "gen_prime_max": 200}, {"out_lo": 3.0, "out_hi": 2.0**40},
                                       {"window": 32, "gen_wide_prime_max": 0, "out_density_power": 1.0}])
def test_candidates_and_logits_match_the_layer(overrides):
    generator, layer = trained_like(**overrides)
    latents = latents_for(4000)
    reals, logits = propose(generator, latents)
    n0 = sampling.first_candidates(layer, latents)
    fast_logits = sampling.window_logits(layer, n0)
    assert np.array_equal(n0, primes.to_odd(reals[:, 0]))  # the same candidates, bit for bit
    assert np.array_equal(primes.to_odd(reals), n0[:, None] + 2 * np.arange(layer.window))
    # float32 sums in the layer, float64 in the tables: equal to float32 rounding
    np.testing.assert_allclose(fast_logits, logits, rtol=0, atol=1e-5 * max(1.0, np.abs(logits).max()))


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_fast_draws_are_the_reference_draws(temperature):
    generator, layer = trained_like(seed=int(temperature * 10))
    latents = latents_for(20_000, seed=2)
    rng_ref, rng_fast = np.random.default_rng(7), np.random.default_rng(7)
    reference = generate(generator, latents, rng_ref, temperature, fast=False)
    fast = generate(generator, latents, rng_fast, temperature)
    assert fast.dtype == np.float64 and fast.shape == reference.shape
    assert np.array_equal(fast, reference)
    # and the rng is left in the same state, so what follows a draw is unchanged too
    assert rng_ref.random() == rng_fast.random()
    # reference == choose(propose(...)), spelled out
    reals, logits = propose(generator, latents[:500])
    assert np.array_equal(choose(reals, logits, np.random.default_rng(3), temperature),
                          generate(generator, latents[:500], np.random.default_rng(3), temperature))


@pytest.mark.slow
def test_chunking_does_not_change_the_draws(monkeypatch):
    generator, layer = trained_like(seed=5)
    latents = latents_for(3000, seed=3)
    whole = sampling.choose_odd(layer, latents, np.random.default_rng(11))
    monkeypatch.setattr(sampling, "CHUNK", 7)
    assert np.array_equal(sampling.choose_odd(layer, latents, np.random.default_rng(11)), whole)
    monkeypatch.setattr(sampling, "WIDE_BLOCK", 50)  # wide-prime blocks that end mid-chunk
    assert np.array_equal(sampling.choose_odd(layer, latents, np.random.default_rng(11)), whole)


def test_tables_follow_the_weights():
    generator, layer = trained_like(seed=1)
    latents = latents_for(2000, seed=4)
    before = generate(generator, latents, np.random.default_rng(0))
    layer.scores.assign(-layer.scores.numpy())  # what a training step does, in the large
    after = generate(generator, latents, np.random.default_rng(0))
    assert not np.array_equal(before, after)
    assert np.array_equal(after, generate(generator, latents, np.random.default_rng(0), fast=False))


def test_empty_and_non_sieve_generators():
    generator, layer = trained_like()
    assert generate(generator, np.zeros(0, dtype=np.int64), np.random.default_rng(0)).shape == (0,)
    seed_generator = build_generator(preset("seed", gen_depth=2, gen_width=8, opposite_l2=0.0))
    assert sampling.sieve_layer(seed_generator) is None
    latents = np.arange(1, 50)
    assert np.array_equal(generate(seed_generator, latents, np.random.default_rng(0)),
                          generate(seed_generator, latents, np.random.default_rng(0), fast=False))


def test_prime_groups_cover_every_prime_once():
    ps = np.array([3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97])
    groups = sampling.prime_groups(ps, 32)
    assert [p for g in groups for p in g] == ps.tolist()
    assert all(len(g) == 1 or np.prod(g) * 32 * 8 <= sampling.TABLE_BYTES for g in groups)
    assert sampling.prime_groups(np.array([1009]), 256, table_bytes=1024) == [[1009]]  # alone, even if too big


def test_band_override_draws_what_the_layer_draws_there():
    generator, layer = trained_like(seed=6)
    latents = latents_for(3000, seed=5)
    reals, logits = propose(generator, latents, out_lo=1e12, out_hi=1e15)
    n0 = sampling.first_candidates(layer, latents, out_lo=1e12, out_hi=1e15)
    fast_logits = sampling.window_logits(layer, n0)
    assert np.array_equal(n0, primes.to_odd(reals[:, 0])) and n0.min() >= 1e12 - 1
    np.testing.assert_allclose(fast_logits, logits, rtol=0, atol=1e-5 * max(1.0, np.abs(logits).max()))
    draws = [generate(generator, latents, np.random.default_rng(4), fast=fast, out_lo=1e12, out_hi=1e15)
             for fast in (True, False)]
    assert np.array_equal(*draws)


@pytest.mark.slow
def test_learned_sieve_logits_match_the_layer_on_random_windows():
    generator, layer = trained_like(seed=8)
    sieve = sampling.learned_sieve(generator)
    assert np.all(np.diff(sieve.primes) > 0) and sieve.primes[0] == 3 and sieve.primes[-1] == 31_607
    assert sieve.window == layer.window
    latents = latents_for(300, seed=9)
    reals, logits = propose(generator, latents)
    n = primes.to_odd(reals.reshape(-1))
    residues = n[:, None] % sieve.primes[None, :]
    np.testing.assert_allclose(sieve.logits(residues), logits.reshape(-1), rtol=0,
                               atol=1e-5 * max(1.0, np.abs(logits).max()))
    scores = sieve.divides_scores()
    a, b = layer.wide_weights.numpy()
    wide = layer.wide_primes
    assert scores[-1] == pytest.approx(a + b, rel=1e-5)  # w_p at the largest wide prime
    assert scores[len(layer.primes)] == pytest.approx(a, rel=1e-5, abs=1e-6)  # and at the first
    assert len(scores) == len(layer.primes) + len(wide)


def test_one_window_logits_for_a_layer_and_for_its_learned_sieve_at_any_size():
    """sampling.window_logits is the one window-logit function: on the layer (int64 starts, the
    layer's float32 weights) and on its LearnedSieve (Python ints, any size) it agrees."""
    generator, layer = trained_like()
    n0 = sampling.first_candidates(layer, latents_for(500))
    on_layer = sampling.window_logits(layer, n0)
    sieve = sampling.learned_sieve(layer)
    on_sieve = sampling.window_logits(sieve, n0.tolist(), layer.window)
    np.testing.assert_allclose(on_sieve, on_layer, rtol=0, atol=1e-5 * max(1.0, np.abs(on_layer).max()))


def _wide_logits_by_division(n0: np.ndarray, window: int, wide_primes, weights) -> np.ndarray:
    """The wide logits spelled out: w_p added to every candidate n0 + 2j that p divides, the
    primes in order (the float sums in the order `_add_wide_logits` adds them)."""
    candidates = n0[:, None] + 2 * np.arange(window)
    logits = np.zeros(candidates.shape)
    for p, w in zip(wide_primes.tolist(), weights.tolist(), strict=True):
        logits[candidates % p == 0] += w
    return logits


@pytest.mark.parametrize("lo, hi", [(3, 2_000), (10**6, 10**9), (2**32 - 10**5, 2**32 + 10**5),
                                    (2**53 - 10**6, 2**53 - 100)])
def test_wide_logits_are_the_divisions_spelled_out(lo, hi):
    """uint32 (windows below 2**32) and uint64 paths; windows whose candidates two wide primes
    divide (101 * 103 * k), and windows at n0 = p * k (j = 0) and ending at one (j = W - 1)."""
    window = 16
    wide = np.array([p for p in range(101, 3_000) if primes.is_prime(np.array([p]))[0]], dtype=np.int64)
    weights = np.random.default_rng(0).normal(-3.0, 2.0, size=wide.size)
    rng = np.random.default_rng(1)
    n0 = rng.integers(lo, hi, size=3_000) | 1
    k = lo // (101 * 103) + 1
    n0[:4] = [101 * 103 * (2 * k + 1), 101 * 103 * (2 * k + 1) - 2 * (window - 1), 1009 * (2 * k + 1),
              1009 * (2 * k + 1) - 2 * (window - 1)]
    logits = np.zeros((n0.size, window))
    sampling._add_wide_logits(logits, n0, (wide, weights))
    expected = _wide_logits_by_division(n0, window, wide, weights)
    assert np.array_equal(logits, expected)
    assert (logits[:4] != 0).sum(axis=1).min() >= 1 and logits[0, 0] == expected[0, 0] != 0
