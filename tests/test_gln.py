"""Bernoulli GLN: gating, mixing and the local update against NumPy; online learning; .keras."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from optimus.nets.gln import BernoulliGLN, build_gln  # noqa: E402


def _tiny(**options):
    gln = build_gln(3, layer_sizes=(2,), context_dim=2, seed=7, w_max=1.5, learning_rate=0.1, **options)
    rng = np.random.default_rng(0)
    for w in gln.neuron_weights:  # random weights, so mixing is not the trivial geometric mean
        w.assign(rng.uniform(-1.0, 1.0, size=tuple(w.shape)).astype(np.float32))
    return gln


def _numpy_forward(gln, z):
    """Direct NumPy GLN: per layer, input logits, contexts and output logits."""
    L = np.log((1 - gln.eps) / gln.eps)
    x = np.concatenate([np.clip(z, -L, L), np.full((len(z), 1), gln.bias_logit)], axis=1)
    out = []
    for W, H, b in zip(gln.neuron_weights, gln.hyperplanes, gln.context_offsets, strict=True):
        W, H, b = np.asarray(W), np.asarray(H), np.asarray(b)
        n_neurons = W.shape[0]
        ctx = np.zeros((len(z), n_neurons), dtype=int)
        logits = np.zeros((len(z), n_neurons))
        for s in range(len(z)):
            for k in range(n_neurons):
                bits = [int(H[k, j] @ z[s] > b[k, j]) for j in range(H.shape[1])]
                ctx[s, k] = sum(bit << j for j, bit in enumerate(bits))
                logits[s, k] = np.clip(W[k, ctx[s, k]] @ x[s], -L, L)
        out.append((x, ctx, logits))
        x = np.concatenate([logits, np.full((len(z), 1), gln.bias_logit)], axis=1)
    return out


def test_gating_and_geometric_mixing_match_numpy():
    gln = _tiny()
    z = np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)
    expected = _numpy_forward(gln, z)
    contexts = {tuple(row) for row in expected[0][1]}
    assert len(contexts) > 2  # the test exercises several contexts
    got = gln(z).numpy()
    sigmoid = 1 / (1 + np.exp(-expected[-1][2]))
    np.testing.assert_allclose(got, sigmoid, rtol=1e-5, atol=1e-6)
    for (_, ctx, logits), (_, tctx, tlogits) in zip(expected, gln.layer_trace(z), strict=True):
        np.testing.assert_array_equal(ctx, tctx.numpy())
        np.testing.assert_allclose(logits, tlogits.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_local_update_matches_numpy(reduction):
    gln = _tiny(batch_reduction=reduction)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((12, 3)).astype(np.float32)
    y = (rng.random(12) > 0.5).astype(np.float32)
    before = [np.asarray(w).copy() for w in gln.neuron_weights]
    trace = _numpy_forward(gln, z)
    p_out = np.clip(1 / (1 + np.exp(-trace[-1][2][:, 0])), gln.eps, 1 - gln.eps)
    expected_loss = -np.mean(y * np.log(p_out) + (1 - y) * np.log(1 - p_out))

    loss = gln.update(z, y)

    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
    for W, (x, ctx, logits), got in zip(before, trace, gln.neuron_weights, strict=True):
        step = np.zeros_like(W)
        count = np.zeros(W.shape[:2])
        p = 1 / (1 + np.exp(-logits))
        for s in range(len(z)):  # each sample steps the weight vector of its own context
            for k in range(W.shape[0]):
                step[k, ctx[s, k]] += (p[s, k] - y[s]) * x[s]
                count[k, ctx[s, k]] += 1
        if reduction == "mean":
            step /= np.maximum(count, 1)[..., None]
        expected = np.clip(W - 0.1 * step, -1.5, 1.5)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
    assert gln.samples_seen == 12


def test_learning_rate_schedule_is_min_of_eta_max_and_c_over_t():
    gln = build_gln(2, (2,), 1, learning_rate=0.5, decay_constant=10.0)
    assert float(gln.learning_rate_at(tf.constant(5.0))) == pytest.approx(0.5)
    assert float(gln.learning_rate_at(tf.constant(100.0))) == pytest.approx(0.1)


def test_learns_a_linearly_separable_stream_online():
    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5, 0.0, 1.0])
    x = rng.standard_normal((12_000, 5)).astype(np.float32)
    y = (x @ w > 0).astype(np.float32)
    gln = build_gln(5, layer_sizes=(16, 8), context_dim=3, seed=0)
    for start in range(0, 10_000, 50):
        gln.update(x[start : start + 50], y[start : start + 50])
    accuracy = np.mean((gln(x[10_000:]).numpy()[:, 0] > 0.5) == y[10_000:])
    assert accuracy > 0.9
    assert gln.update_traces == 1


def test_keras_file_round_trip_with_safe_mode(tmp_path):
    gln = build_gln(4, layer_sizes=(6, 3), context_dim=3, seed=3, context_sparsity=1)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    gln.update(x, (x[:, 0] > 0).astype(np.float32))
    path = tmp_path / "gln.keras"
    gln.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, BernoulliGLN)
    assert loaded.get_config() == gln.get_config()
    np.testing.assert_array_equal(loaded(x).numpy(), gln(x).numpy())
    # and it keeps learning the same way
    y = (x[:, 1] > 0).astype(np.float32)
    assert float(loaded.update(x, y)) == pytest.approx(float(gln.update(x, y)), rel=1e-6)
    np.testing.assert_allclose(loaded(x).numpy(), gln(x).numpy(), rtol=1e-6)


def test_output_is_a_probability_column_and_no_weight_is_trainable():
    gln = build_gln(3, (4,), 2)
    p = gln(np.zeros((5, 3), np.float32)).numpy()
    assert p.shape == (5, 1) and np.all((p > 0) & (p < 1))
    assert gln.trainable_weights == []


@pytest.mark.parametrize("kwargs, match", [
    ({"input_dim": 0}, "input_dim"),
    ({"layer_sizes": (4, 0)}, "layer sizes"),
    ({"context_dim": 17}, "context_dim"),
    ({"eps": 0.7}, "eps"),
    ({"batch_reduction": "max"}, "batch_reduction"),
])
def test_bad_options_raise(kwargs, match):
    args = {"input_dim": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        BernoulliGLN(**args)


def test_all_context_and_gather_paths_agree(monkeypatch):
    """The two equivalent ways of evaluating and updating active weights give the same numbers."""
    from optimus.nets.gln import BernoulliGLN

    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (rng.random(64) < 0.5).astype(np.float32)
    results = []
    for few in (True, False):
        monkeypatch.setattr(BernoulliGLN, "ALL_CONTEXTS_MAX_DIM", 3 if few else 0)  # context_dim=3 below
        gln = build_gln(6, layer_sizes=(5, 3), context_dim=3, seed=2, learning_rate=0.05)
        before = np.asarray(gln(x))
        gln.update(x, y)
        results.append((before, np.asarray(gln(x)), [np.asarray(w) for w in gln.neuron_weights]))
    (b1, a1, w1), (b2, a2, w2) = results
    np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a1, a2, rtol=1e-5, atol=1e-6)
    for p, q in zip(w1, w2, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
