"""EWC (optimus.continual.ewc) and the Fisher (optimus.continual.fisher): penalty values by hand,
vectorised Fisher against the loop, state files, no retracing, and a small synthetic
continual-learning benchmark where EWC must beat fine-tuning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optimus.store import runs, storage
from tests.helpers import _optimus

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from optimus.continual import create  # noqa: E402
from optimus.continual.ewc import ewc_for_mode as EWC  # noqa: E402
from optimus.continual.fisher import fisher_diagonal, fisher_diagonal_loop  # noqa: E402

SHAPES = [(3,), (2, 2)]


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]


def _set(variables, values):
    for v, x in zip(variables, values, strict=True):
        v.assign(x)


def _random(rng, positive=False):
    out = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    return [np.abs(x) for x in out] if positive else out


def test_separate_penalty_is_the_sum_of_per_task_penalties():
    rng = np.random.default_rng(1)
    variables = _variables()
    ewc = EWC(variables, mode="separate", lam=3.0)
    tasks = []
    for _ in range(3):
        anchor, fisher = _random(rng), _random(rng, positive=True)
        _set(variables, anchor)
        ewc.consolidate([tf.constant(f) for f in fisher])
        tasks.append((anchor, fisher))
    theta = _random(rng)
    _set(variables, theta)
    expected = sum(3.0 / 2 * sum(np.sum(f * (t - a) ** 2) for t, a, f in zip(theta, anchor, fisher, strict=True))
                   for anchor, fisher in tasks)
    with tf.GradientTape() as tape:
        value = ewc.penalty()
    assert float(value) == pytest.approx(expected, rel=1e-5)
    grads = tape.gradient(value, variables)
    for i, g in enumerate(grads):
        expected_grad = sum(3.0 * f[i] * (theta[i] - a[i]) for a, f in tasks)
        np.testing.assert_allclose(g.numpy(), expected_grad, rtol=1e-5, atol=1e-6)
    assert ewc.tasks_seen == 3


def test_separate_penalty_is_zero_at_a_single_anchor_and_never_negative():
    rng = np.random.default_rng(2)
    variables = _variables()
    ewc = EWC(variables, mode="separate", lam=1e6)
    anchor = [x * 1e3 for x in _random(rng)]  # large weights: the expanded form would cancel badly
    _set(variables, anchor)
    for _ in range(5):
        ewc.consolidate([tf.constant(f) for f in _random(rng, positive=True)])
    assert float(ewc.penalty()) == pytest.approx(0.0, abs=1e-3)
    assert float(ewc.penalty()) >= 0.0


def test_online_mode_decays_the_fisher_and_keeps_the_last_anchor():
    rng = np.random.default_rng(3)
    variables = _variables()
    ewc = EWC(variables, mode="online", lam=2.0, gamma=0.5)
    a1, f1 = _random(rng), _random(rng, positive=True)
    a2, f2 = _random(rng), _random(rng, positive=True)
    _set(variables, a1)
    ewc.consolidate(f1)
    _set(variables, a2)
    ewc.consolidate(f2)
    theta = _random(rng)
    _set(variables, theta)
    expected = 2.0 / 2 * sum(np.sum((0.5 * x1 + x2) * (t - b) ** 2) for t, b, x1, x2 in zip(theta, a2, f1, f2, strict=True))
    assert float(ewc.penalty()) == pytest.approx(expected, rel=1e-5)


def test_off_is_zero_and_l2_pulls_to_the_last_weights():
    rng = np.random.default_rng(4)
    variables = _variables()
    off = EWC(variables, mode="off")
    off.after_task()
    assert float(off.penalty()) == 0.0 and off.tasks_seen == 1
    l2 = create("l2", variables, lam=4.0)
    assert float(l2.penalty()) == 0.0  # nothing anchored yet
    anchor = _random(rng)
    _set(variables, anchor)
    l2.after_task()
    theta = _random(rng)
    _set(variables, theta)
    assert float(l2.penalty()) == pytest.approx(2.0 * sum(np.sum((t - a) ** 2) for t, a in zip(theta, anchor, strict=True)), rel=1e-5)


def test_bad_arguments_raise():
    variables = _variables()
    with pytest.raises(ValueError, match="mode"):
        EWC(variables, mode="sometimes")
    with pytest.raises(ValueError, match="unknown continual-learning method 'sometimes'"):
        create("sometimes", variables)
    with pytest.raises(ValueError, match="gamma"):
        EWC(variables, mode="online", gamma=0.0)
    with pytest.raises(ValueError, match="one Fisher tensor per variable"):
        EWC(variables).consolidate(None)
    with pytest.raises(ValueError, match=r"fisher 1 has shape \(4,\)"):
        EWC(variables).consolidate([np.zeros(3, np.float32), np.zeros(4, np.float32)])


# --- Fisher ---------------------------------------------------------------------------------

def _net():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(1)])
    unused = tf.Variable(np.ones((2, 3), np.float32))  # reached by no gradient: zeros

    def log_likelihood(x, y):
        logits = model(x, training=False)[:, 0]
        return -tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)

    return model, [*model.trainable_variables, unused], log_likelihood


def _batch(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype(np.float32), (rng.random(n) > 0.5).astype(np.float32)


@pytest.mark.slow
def test_vectorised_fisher_equals_the_loop_of_single_sample_tapes():
    _, variables, log_likelihood = _net()
    x, y = _batch()
    fast = fisher_diagonal(log_likelihood, variables, x, y)
    chunked = fisher_diagonal(log_likelihood, variables, x, y, max_bytes=8 * 4 * 60)  # a few samples per chunk
    slow = fisher_diagonal_loop(log_likelihood, variables, x, y)
    assert len(fast) == len(variables)
    for f, c, s in zip(fast, chunked, slow, strict=True):
        np.testing.assert_allclose(f.numpy(), s.numpy(), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(c.numpy(), s.numpy(), rtol=1e-5, atol=1e-9)
    assert np.all(fast[-1].numpy() == 0.0)
    assert any(np.any(f.numpy() > 0) for f in fast[:-1])


def test_fisher_is_the_mean_of_squared_per_sample_gradients_not_of_the_batch_gradient():
    _, variables, log_likelihood = _net()
    x, y = _batch()
    with tf.GradientTape() as tape:
        total = tf.reduce_mean(log_likelihood(x, y))
    batch_grad_sq = [tf.square(g) for g in tape.gradient(total, variables[:-1])]
    fisher = fisher_diagonal(log_likelihood, variables, x, y)[:-1]  # the unused variable has no batch gradient
    # Jensen: the mean of squares is at least the square of the mean, strictly here.
    assert all(np.all(f.numpy() >= b.numpy() - 1e-9) for f, b in zip(fisher, batch_grad_sq, strict=True))
    assert sum(float(tf.reduce_sum(f - b)) for f, b in zip(fisher, batch_grad_sq, strict=True)) > 1e-6


@pytest.mark.slow
def test_fisher_does_not_retrace_for_repeated_shapes_and_works_inside_tf_function():
    _, variables, log_likelihood = _net()
    traces = []

    def counted(x, y):
        traces.append(1)
        return log_likelihood(x, y)

    for seed in range(3):
        fisher_diagonal(counted, variables, *_batch(seed=seed))
    assert len(traces) == 1

    @tf.function
    def inside(x, y):
        return fisher_diagonal(log_likelihood, variables, x, y)

    x, y = _batch()
    for a, b in zip(inside(x, y), fisher_diagonal_loop(log_likelihood, variables, x, y), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-9)


# --- state and graphs -----------------------------------------------------------------------

def _method(mode, variables, **kwargs):
    return create("l2", variables, **kwargs) if mode == "l2" else EWC(variables, mode=mode, **kwargs)


def _end_task(method, fisher):
    method.consolidate(fisher) if hasattr(method, "consolidate") else method.after_task()


@pytest.mark.parametrize("mode", ["separate", "online", "off", "l2"])
def test_state_round_trips_through_npz_without_pickle(tmp_path, mode):
    rng = np.random.default_rng(5)
    variables = _variables()
    ewc = _method(mode, variables, lam=2.5, gamma=0.9)
    for _ in range(2):
        _set(variables, _random(rng))
        _end_task(ewc, _random(rng, positive=True))
    _set(variables, _random(rng))
    np.savez(tmp_path / "ewc.npz", **ewc.state())
    with np.load(tmp_path / "ewc.npz", allow_pickle=False) as saved:
        restored = _method(mode, variables, lam=2.5, gamma=0.9)
        restored.load_state(saved)
    assert restored.tasks_seen == 2
    assert float(restored.penalty()) == pytest.approx(float(ewc.penalty()), rel=1e-6)


def test_load_state_names_what_is_wrong():
    variables = _variables()
    state = EWC(variables, mode="online").state()
    bad = dict(state, fisher_1=np.zeros((10,), np.float32))
    with pytest.raises(ValueError, match=r"online-ewc state: fisher_1 has shape \(10,\) but variable has \(2, 2\)"):
        EWC(variables, mode="online").load_state(bad)
    with pytest.raises(ValueError, match="mode is 'online' but this method is 'l2'"):
        create("l2", variables).load_state(state)  # training modes convert (test_ewc_state_converts_keeping_the_penalty_gradient)
    with pytest.raises(ValueError, match="missing 'anchor_0'"):
        EWC(variables, mode="online").load_state({k: v for k, v in state.items() if k != "anchor_0"})
    with pytest.raises(ValueError, match="2 variables but this method has 1"):
        EWC(variables[:1], mode="online").load_state(state)


@pytest.mark.parametrize("mode", ["separate", "online", "l2"])
def test_penalty_in_a_tf_function_is_traced_once_across_consolidations(mode):
    rng = np.random.default_rng(6)
    variables = _variables()
    ewc = _method(mode, variables, lam=1.0)
    traces = []

    @tf.function
    def penalty():
        traces.append(1)
        return ewc.penalty()

    values = []
    for _ in range(4):
        _set(variables, _random(rng))
        _end_task(ewc, _random(rng, positive=True))
        _set(variables, _random(rng))
        values.append(float(penalty()))
        assert float(penalty()) == pytest.approx(float(ewc.penalty()), rel=1e-6)
    ewc.lam = 10.0
    assert float(penalty()) == pytest.approx(10.0 * values[-1], rel=1e-5)
    assert len(traces) == 1
    assert len(set(values)) == 4


# --- a standard continual-learning check on synthetic data ------------------------------------

@pytest.mark.slow
def test_ewc_remembers_old_tasks_that_fine_tuning_forgets():
    """Three tasks in different regions of input space, each labelled by its own hyperplane
    (a Gaussian analogue of split/permuted benchmarks): fine-tuning overwrites the shared MLP,
    EWC keeps the old tasks."""
    dim, tasks = 10, 3
    rng = np.random.default_rng(0)
    offsets = rng.standard_normal((tasks, dim))
    offsets *= 4.0 / np.linalg.norm(offsets, axis=1, keepdims=True)
    directions = rng.standard_normal((tasks, dim))

    def data(t, n, gen):
        z = gen.standard_normal((n, dim)).astype(np.float32)
        return (offsets[t] + z).astype(np.float32), (z @ directions[t] > 0).astype(np.float32)

    def accuracies(lam):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
        opt = keras.optimizers.Adam(1e-2)
        opt.build(model.trainable_variables)
        ewc = EWC(model.trainable_variables, mode="separate" if lam else "off", lam=lam)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)[:, 0]
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
                loss += ewc.penalty()
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        def log_likelihood(x, y):
            return -tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=model(x, training=False)[:, 0])

        gen = np.random.default_rng(2)
        tests = [data(t, 1000, np.random.default_rng(100 + t)) for t in range(tasks)]
        for t in range(tasks):
            for _ in range(200):
                step(*data(t, 64, gen))
            _end_task(ewc, fisher_diagonal(log_likelihood, model.trainable_variables, *data(t, 256, gen)))
        return [float(np.mean((model(x).numpy()[:, 0] > 0) == y)) for x, y in tests]

    tuned = accuracies(100.0)
    fine_tuned = accuracies(0.0)
    old_ewc, old_ft = np.mean(tuned[:-1]), np.mean(fine_tuned[:-1])
    assert old_ewc > old_ft + 0.15, (tuned, fine_tuned)
    assert np.mean(tuned) > np.mean(fine_tuned) + 0.05, (tuned, fine_tuned)


def test_dense_shortcut_equals_the_loop():
    """The per-example trick for Dense layers gives the same Fisher as one tape per sample."""
    import keras

    from optimus.continual.fisher import dense_layers_of

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(9, activation="tanh"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    x = tf.constant(np.random.default_rng(0).normal(size=(40, 7)).astype(np.float32))
    y = tf.constant((np.random.default_rng(1).random(40) < 0.5).astype(np.float32))

    def log_likelihood(xb, yb):
        p = tf.clip_by_value(tf.reshape(model(xb, training=False), (-1,)), 1e-6, 1 - 1e-6)
        return yb * tf.math.log(p) + (1 - yb) * tf.math.log(1 - p)

    fast = fisher_diagonal(log_likelihood, model.trainable_variables, x, y, dense_layers=dense_layers_of(model))
    slow = fisher_diagonal_loop(log_likelihood, model.trainable_variables, x, y)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-8)
    assert type(model.layers[0]).call is keras.layers.Dense.call and "call" not in vars(model.layers[0])


def test_dense_shortcut_falls_back_when_rows_are_not_samples():
    import keras

    from optimus.continual.fisher import dense_layers_of

    keras.utils.set_random_seed(4)
    head = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    x = tf.constant(np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32))  # 5 rows per sample

    def log_likelihood(xb):
        return tf.reduce_sum(tf.reshape(head(tf.reshape(xb, (-1, 3))), (-1, 5)), axis=1)

    fast = fisher_diagonal(log_likelihood, head.trainable_variables, x, dense_layers=dense_layers_of(head))
    slow = fisher_diagonal_loop(log_likelihood, head.trainable_variables, x)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-8)


# --- EWC mode conversion (defect 9) ----------------------------------------------------------


def _ewc_pair(mode, seed=0):
    tf = pytest.importorskip("tensorflow")
    from optimus.continual.ewc import ewc_for_mode as EWC

    rng = np.random.default_rng(seed)
    variables = [tf.Variable(rng.normal(size=(3, 2)).astype(np.float32)), tf.Variable(rng.normal(size=(2,)).astype(np.float32))]
    ewc = EWC(variables, mode=mode, lam=3.0, gamma=0.8)
    for _ in range(3):
        for v in variables:
            v.assign(rng.normal(size=v.shape).astype(np.float32))
        ewc.consolidate([tf.constant(rng.uniform(0.1, 2.0, size=v.shape).astype(np.float32)) for v in variables])
    for v in variables:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    return ewc, variables


def _penalty_and_gradient(ewc, variables):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        p = ewc.penalty()
    return float(p), [g.numpy() for g in tape.gradient(p, variables)]


@pytest.mark.parametrize("source, target", [("separate", "online"), ("online", "separate")])
def test_ewc_state_converts_keeping_the_penalty_gradient(source, target):
    from optimus.continual.ewc import ewc_for_mode as EWC

    ewc, variables = _ewc_pair(source)
    converted = EWC(variables, mode=target, lam=3.0, gamma=0.8)
    converted.load_state(ewc.state())  # before: "EWC state: mode is ... but this EWC is ..."
    assert converted.tasks_seen == 3
    (p0, g0), (p1, g1) = _penalty_and_gradient(ewc, variables), _penalty_and_gradient(converted, variables)
    for a, b in zip(g0, g1, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if source == "online":
        assert p1 == pytest.approx(p0, rel=1e-5)  # one task: the same penalty exactly
    else:
        assert 0 <= p1 <= p0 + 1e-6  # the separate penalty's constant K is dropped


@pytest.mark.parametrize("source", ["separate", "online"])
def test_ewc_off_keeps_nothing_and_back_on_starts_fresh(source):
    from optimus.continual.ewc import ewc_for_mode as EWC

    ewc, variables = _ewc_pair(source)
    off = EWC(variables, mode="off", lam=3.0)
    off.load_state(ewc.state())
    assert float(off.penalty()) == 0.0 and off.tasks_seen == 3
    on = EWC(variables, mode=source, lam=3.0, gamma=0.8)
    on.load_state(off.state())
    assert float(on.penalty()) == 0.0 and on.tasks_seen == 3


@pytest.mark.slow
def test_continue_a_model_under_every_ewc_mode_and_a_damaged_runs_file(tmp_path):
    from optimus.config import LEGACY_EWC_MODES

    """`--ewc-mode` changes when continuing (before: refused with a traceback-free but fatal
    "EWC state: mode is 'online' but this EWC is 'separate'"), and a runs.jsonl holding `[1]`
    or `{"event": "end"}` lines no longer crashes the resume (before: a traceback)."""
    model = tmp_path / "m"
    base = ("--batches", "1", "--batch-size", "64", "--steps", "1", "--quiet")
    code, _, err, _ = _optimus("train", "--model-dir", model, "--ewc-mode", "online", *base)
    assert code == 0, err[-2000:]
    with open(model / storage.RUNS, "a") as fh:
        fh.write('[1]\n{"event": "end"}\n"text"\n')
    for mode in ("separate", "off", "online"):
        code, out, err, _ = _optimus("train", "--model-dir", model, "--ewc-mode", mode, *base)
        assert code == 0, (mode, err[-2000:])
        assert json.loads(out.splitlines()[-1])["state"] == "done"
        assert json.loads((model / storage.CONFIG).read_text())["method"] == LEGACY_EWC_MODES[mode]
    table = runs.read_runs(model)
    assert list(table["status"]) == ["done"] * 4
    assert runs.last_failure(model) is None
