"""The online batch as one graph (optimus.training.online_batch) and exact trial division in TensorFlow
(optimus.primes.trial_division): exact labels, the same batch from the graph and the NumPy path,
deterministic per (seed, batch index), and the undersampling rule of the loop before it."""

import keras
import numpy as np
import pytest
import sympy
import tensorflow as tf

from optimus import primes
from optimus.nets.networks import build_discriminator, build_generator, discriminator_parts
from optimus.primes import small_odd_primes
from optimus.primes.trial_division import TrialDivision, first_prime_above
from optimus.training.online_batch import ExactRangeError, OnlineBatches, undersample
from tests.helpers import tiny

KEYS = ("latents", "z", "candidate_features", "n_pool", "labels", "chosen",
        "d_features", "d_labels", "d_weights", "d_total")


@pytest.fixture(scope="module")
def default_division():
    return TrialDivision()  # the discriminator's table: P = 31,607, bound 31,627**2


def _check(division, values):
    values = np.asarray(values, dtype=np.int64)
    ours = division(tf.constant(values)).numpy()
    np.testing.assert_array_equal(ours, primes.is_prime(values))
    np.testing.assert_array_equal(ours, [sympy.isprime(int(v)) for v in values])


def test_first_prime_above():
    assert [first_prime_above(p) for p in (1, 2, 3, 13, 31_607)] == [2, 3, 5, 17, 31_627]


def test_trial_division_every_integer_below_a_small_bound():
    division = TrialDivision(100)  # table 3..97, q = 101
    assert division.bound == 101**2
    values = np.arange(division.bound, dtype=np.int64)
    np.testing.assert_array_equal(division(tf.constant(values)).numpy(), primes.is_prime(values))


def test_trial_division_edges_near_the_default_bound(default_division):
    table = small_odd_primes(31_623)
    q = first_prime_above(int(table[-1]))
    assert default_division.bound == q * q == 1_000_267_129
    big = table[-6:]
    edges = [0, 1, 2, 3, 4, 5, 9, 15, 25, 49, q, q * q - 2, q * q - 1,
             *(p * p for p in table[:20]), *(p * p for p in big), *(big[i] * big[i + 1] for i in range(5)),
             *(int(table[-1]) * q - k for k in (0, 2)), int(table[-1]) * q]
    assert max(edges) < default_division.bound
    _check(default_division, edges)
    # One prime factor near sqrt(bound) and one just below: the largest products trial division must catch.
    near = [int(a) * int(b) for a in table[-40:] for b in table[-40:] if a * b < default_division.bound]
    _check(default_division, near[:200])


def test_trial_division_random_values_any_shape(default_division):
    rng = np.random.default_rng(13)
    values = rng.integers(0, default_division.bound, size=(40, 50), dtype=np.int64)
    ours = default_division(tf.constant(values)).numpy()
    assert ours.shape == values.shape
    np.testing.assert_array_equal(ours, primes.is_prime(values))
    _check(default_division, values.reshape(-1)[:300])
    assert default_division.in_range(default_division.bound - 1) and not default_division.in_range(default_division.bound)


def _builders(cfg, d_rows=None):
    keras.utils.set_random_seed(cfg.seed)
    generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    encoding, _ = discriminator_parts(discriminator)
    return (OnlineBatches(generator, encoding, cfg, d_rows=d_rows, graph=True),
            OnlineBatches(generator, encoding, cfg, d_rows=d_rows, graph=False))


def _numpy(batch) -> dict:
    return {k: batch[k].numpy() for k in KEYS}


def _assert_same(a, b):
    for k in KEYS:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_consistent(batch, cfg, d_rows):
    """Exact labels, and the undersampling rule (online_batch.undersample), then d_rows rows."""
    n, labels, chosen = batch["n_pool"], batch["labels"], batch["chosen"]
    np.testing.assert_array_equal(labels, primes.is_prime(n))
    assert np.all(n % 2 == 1)
    n_primes = int(labels.sum())
    keep = int(round(n_primes * (1 - cfg.prime_ratio) / cfg.prime_ratio))
    keep = min(max(keep, min(cfg.min_batch, n.size) - n_primes, 0), n.size - n_primes)
    assert chosen.size == min(n_primes + keep, d_rows)
    assert np.all(np.diff(chosen) > 0)
    if n_primes + keep <= d_rows:  # nothing subsampled: every prime kept
        assert set(np.flatnonzero(labels)) <= set(chosen)
    weights = batch["d_weights"]
    assert weights.shape == (d_rows,) and weights.sum() == chosen.size == int(batch["d_total"])
    np.testing.assert_array_equal(batch["d_features"][: chosen.size], batch["candidate_features"][chosen])
    np.testing.assert_array_equal(batch["d_labels"][: chosen.size], labels[chosen].astype(np.float32))
    np.testing.assert_array_equal(weights[chosen.size :], 0.0)


@pytest.mark.slow
def test_default_batch_is_one_graph_identical_to_the_numpy_path():
    cfg = tiny("default", disc_prime_max=31_623, batch_size=48)  # the default table: band < q**2
    d_rows = 200
    graph, numpy_path = _builders(cfg, d_rows)
    assert graph.band_fits
    a, b = graph(5), numpy_path(5)
    assert bool(a["graph"]) and not bool(b["graph"])
    a, b = _numpy(a), _numpy(b)
    _assert_same(a, b)
    _assert_consistent(a, cfg, d_rows)
    assert a["candidate_features"].shape == (cfg.batch_size * cfg.window, cfg.disc_factor_slots + 1)
    # The in-graph window factor lists are the layer's own output.
    np.testing.assert_array_equal(a["candidate_features"], graph.encoding(tf.constant((a["n_pool"] - 1) // 2, tf.float64)[:, None]).numpy())
    # Deterministic: a fresh builder, the same (seed, batch index); another index differs.
    _assert_same(a, _numpy(OnlineBatches(graph.generator, graph.encoding, cfg, d_rows=d_rows, graph=True)(5)))
    assert not np.array_equal(a["latents"], graph(6)["latents"].numpy())
    assert graph.tracing_counts()["whole"] == 1


def test_band_beyond_the_table_falls_back_to_numpy_labels():
    cfg = tiny("default")  # disc_prime_max 200: bound 211**2, far below the band's 1e9
    graph, numpy_path = _builders(cfg)
    assert not graph.band_fits
    a = graph(2)
    assert not bool(a["graph"])
    a = _numpy(a)
    _assert_same(a, _numpy(numpy_path(2)))
    _assert_consistent(a, cfg, cfg.batch_size * cfg.window)


def test_seed_batch_decided_per_batch_from_the_actual_maximum():
    cfg = tiny("seed")
    graph, numpy_path = _builders(cfg)
    out = np.asarray(graph.generator(tf.constant(np.arange(1, 5, dtype=np.float32)[:, None])))
    assert np.all(out < graph.bound)  # a fresh seed generator stays far below 31,627**2
    a = graph(1)
    assert bool(a["graph"])  # labels by trial division in the graph
    a = _numpy(a)
    _assert_same(a, _numpy(numpy_path(1)))
    _assert_consistent(a, cfg, cfg.batch_size)

    last = graph.generator.get_layer("out")
    kernel = last.kernel.numpy()
    last.kernel.assign(kernel * 1e6 / max(float(np.max(out)), 1e-3))  # G(z) = z * G(1): outputs up to ~1e12
    b = graph(1)
    assert not bool(b["graph"]) and b["n_pool"].numpy().max() > graph.bound
    _assert_consistent(_numpy(b), cfg, cfg.batch_size)
    last.kernel.assign(kernel * 1e15)
    with pytest.raises(ExactRangeError):
        graph(1)
    # Graph path and NumPy path share one trace of each piece (no retrace per batch).
    counts = graph.tracing_counts()
    assert counts["propose"] == counts["finish"] == 1


def test_bench_batch_table_shows_both_preparations_and_their_ratio():
    from optimus import bench

    fake = {"quick": True, "batch_shape": "512 latents x 64 candidates, 8192 discriminator rows, 20 steps",
            "prepare_numpy_s": 0.083, "prepare_graph_s": 0.035, "prepare_graph_vs_numpy": 0.42,
            "prepare_numpy_labels_graph_rest_s": 0.042, "online_numpy_s": 2.16, "online_graph_s": 2.02,
            "online_graph_vs_numpy": 0.94, "seed_graph_labels": True, "prepare_seed_numpy_s": 0.0151,
            "prepare_seed_graph_s": 0.0132, "prepare_seed_graph_vs_numpy": 0.874, "label_candidates": 32768, "label_primes": 3400,
            "trial_division_s": 0.26, "sieve_lookup_s": 0.008, "labels_identical": True}
    text = bench.format_table({"batch": fake})
    assert text.startswith("batch (quick)")
    assert "NumPy 83 ms, one graph 35 ms (graph/NumPy 0.42)" in text
    assert "NumPy prep 2.16 s, one graph 2.02 s (graph/NumPy 0.94)" in text
    assert "32,768 candidates: trial division by 3,400 primes 260 ms, sieve lookup 8.0 ms, identical: True" in text
    assert "seed preset preparation: NumPy 15.1 ms, graph 13.2 ms (graph/NumPy 0.87; labels in the graph: True)" in text
    assert "batch" in bench.BENCHES


SEED = tf.constant([0, 1], tf.int64)  # a stateless draw for the undersampling rule


@pytest.mark.parametrize("ratio,min_batch", [(0.5, 10), (0.25, 10), (0.5, 200), (0.9, 1)])
def test_undersample_invariants(ratio, min_batch):
    labels = np.random.default_rng(1).random(500) < 0.12
    idx = undersample(labels, ratio, min_batch, SEED).numpy()
    assert np.all(np.diff(idx) > 0)  # sorted, no duplicates
    assert set(np.flatnonzero(labels)) <= set(idx.tolist())  # only composites are dropped
    kept_primes = labels[idx].sum()
    if len(idx) > min_batch:
        assert kept_primes / len(idx) == pytest.approx(ratio, abs=0.02)
    else:
        assert len(idx) == min(min_batch, len(labels))


def test_undersample_all_primes_or_none():
    assert undersample(np.ones(10, bool), 0.5, 4, SEED).numpy().tolist() == list(range(10))
    assert len(undersample(np.zeros(10, bool), 0.5, 4, SEED)) == 4
