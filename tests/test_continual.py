"""Continual-learning methods as plugins: every registered method through the interface, SI and
replay against fine-tuning on a tiny two-task problem, the shipped models' EWC state in the
plugins, and the README's example plugin run through the forgetting benchmark."""

import re
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from optimus import continual  # noqa: E402
from optimus.experiments import forgetting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIM = 4


def _learner(seed=0):
    """A logistic regression on DIM features: variables, likelihood, loss and sample spec."""
    rng = np.random.default_rng(seed)
    w = tf.Variable(rng.normal(size=(DIM, 1)).astype(np.float32) * 0.1)
    b = tf.Variable(np.zeros(1, np.float32))

    def logits(x):
        return tf.reshape(tf.matmul(x, w) + b, (-1,))

    def log_likelihood(x, y):
        return -tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits(x))

    def loss(x, y):
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits(x))

    spec = (tf.TensorSpec([DIM], tf.float32), tf.TensorSpec([], tf.float32))
    return continual.Learner([w, b], log_likelihood, loss=loss, sample_spec=spec)


def _task(t, n, rng):
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x, (x[:, t % DIM] > 0).astype(np.float32)


def _compiled_step(method, learner, optimizer, traces):
    @tf.function
    def step(x, y):
        traces.append(1)
        with tf.GradientTape(persistent=True) as tape:
            loss = tf.reduce_mean(learner.loss(x, y))
            total = loss + method.penalty()
        grads = tape.gradient(total, learner.variables)
        task_grads = tape.gradient(loss, learner.variables)
        optimizer.apply_gradients(zip(grads, learner.variables, strict=True))
        method.after_step(task_grads)
        return total

    return step


def test_the_registry_lists_every_method_and_the_benchmark_offers_them():
    names = continual.names()
    assert names[:6] == ("none", "ewc", "online-ewc", "l2", "si", "replay")
    assert forgetting.METHODS == names + ("joint", "gln")
    assert set(forgetting.PENALTY_METHODS) == {"ewc", "online-ewc", "l2", "si", "replay"}
    assert all(forgetting.method_summary(m) for m in forgetting.METHODS)
    assert all(m in forgetting.LAMBDA_GRIDS for m in forgetting.PENALTY_METHODS)
    with pytest.raises(ValueError, match="unknown continual-learning method 'sometimes'"):
        continual.create("sometimes", _learner())


@pytest.mark.parametrize("name", continual.names())
def test_every_method_through_the_interface(name, tmp_path):
    learner = _learner()
    method = continual.create(name, learner, lam=2.0)
    assert float(method.penalty()) == 0.0 and method.tasks_seen == 0  # nothing to protect yet
    optimizer = keras.optimizers.SGD(0.5)
    traces = []
    step = _compiled_step(method, learner, optimizer, traces)
    rng = np.random.default_rng(1)
    for t in range(2):
        for _ in range(5):
            step(*_task(t, 32, rng))
        method.after_task(*_task(t, 64, rng))
    for _ in range(3):
        step(*_task(2, 32, rng))  # move away from the anchors
    value = float(method.penalty())
    assert value >= 0.0 and method.tasks_seen == 2
    if method.uses_lambda:
        assert value > 0.0
        method.lam = 4.0
        assert float(method.penalty()) == pytest.approx(2 * value, rel=1e-5)
        method.lam = 2.0
    step(*_task(2, 32, rng))
    assert len(traces) == 1  # after_task, load_state and lam write variables: no retrace

    np.savez(tmp_path / "state.npz", **method.state())
    restored = continual.create(name, learner, lam=2.0)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as saved:
        restored.load_state(saved)
    assert restored.tasks_seen == 2
    assert float(restored.penalty()) == pytest.approx(float(method.penalty()), rel=1e-6)

    method.reset()
    assert float(method.penalty()) == 0.0 and method.tasks_seen == 0
    step(*_task(2, 32, rng))
    assert float(method.penalty()) == 0.0 and len(traces) == 1


@pytest.mark.parametrize("source, target", [("si", "ewc"), ("replay", "si"), ("ewc", "l2"), ("none", "replay")])
def test_another_methods_state_is_refused_with_what_is_wrong(source, target):
    learner = _learner()
    state = continual.create(source, learner).state()
    method = continual.create(target, learner)
    with pytest.raises(ValueError, match=f"{target} state: .*mode is .* but this method is"):
        method.load_state(state)
    assert method.tasks_seen == 0


def test_ewc_none_and_online_ewc_convert_between_each_other():
    learner = _learner()
    ewc = continual.create("ewc", learner, lam=3.0)
    rng = np.random.default_rng(2)
    for t in range(2):
        ewc.after_task(*_task(t, 64, rng))
        learner.variables[0].assign_add(tf.ones_like(learner.variables[0]))
    online = continual.create("online-ewc", learner, lam=3.0)
    online.load_state(ewc.state())
    assert online.tasks_seen == 2 and float(online.penalty()) > 0.0
    none = continual.create("none", learner)
    none.load_state(online.state())
    assert none.tasks_seen == 2


def test_bad_states_and_learners_are_refused():
    learner = _learner()
    si = continual.create("si", learner)
    state = si.state()
    with pytest.raises(ValueError, match=r"si state: omega_0 has shape \(3,\)"):
        si.load_state(dict(state, omega_0=np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="si state: path_1 has non-finite values"):
        si.load_state(dict(state, path_1=np.array([np.nan], np.float32)))
    with pytest.raises(ValueError, match="missing 'anchor_0'"):
        si.load_state({k: v for k, v in state.items() if k != "anchor_0"})
    with pytest.raises(ValueError, match="Learner.loss"):
        continual.create("replay", continual.Learner(learner.variables, learner.log_likelihood))
    with pytest.raises(ValueError, match="sample_spec"):
        continual.create("replay", continual.Learner(learner.variables, learner.log_likelihood, loss=learner.loss))
    with pytest.raises(ValueError, match="lambda must be >= 0"):
        continual.create("si", learner, lam=-1.0)


def test_replay_buffers_fit_their_byte_budget(monkeypatch):
    """A buffer never outgrows optimus.limits.MAX_REPLAY_BYTES (the checkpoint's cap counts on
    it): capacity shrinks to fit; a single sample past the budget is refused."""
    from optimus import limits

    learner = _learner()
    sample = DIM * 4 + 4  # float32 features and label
    monkeypatch.setattr(limits, "MAX_REPLAY_BYTES", 10 * sample)
    assert continual.create("replay", learner, capacity=500).capacity == 10
    monkeypatch.setattr(limits, "MAX_REPLAY_BYTES", sample)
    assert continual.create("replay", learner, capacity=500).capacity == 1
    monkeypatch.setattr(limits, "MAX_REPLAY_BYTES", sample - 1)
    with pytest.raises(ValueError, match="one sample is"):
        continual.create("replay", learner)


def test_replay_keeps_a_uniform_reservoir_of_every_task():
    learner = _learner()
    replay = continual.create("replay", learner, capacity=100, seed=3)
    for t in range(4):
        x = np.full((500, DIM), float(t), np.float32)  # each task's samples carry its index
        replay.after_task(x, np.zeros(500, np.float32))
    stored = replay.state()["buffer_0"][:, 0]
    assert int(replay.state()["filled"]) == 100 and int(replay.state()["offered"]) == 2000
    counts = np.bincount(stored.astype(int), minlength=4)
    assert np.all(counts >= 10), counts  # expected 25 each: algorithm R keeps every task


def _two_task_accuracies(name, lam):
    """Two tasks in different regions of input space, each labelled by its own hyperplane:
    fine-tuning overwrites the shared MLP's first task."""
    dim = 10
    rng = np.random.default_rng(0)
    offsets = rng.standard_normal((2, dim))
    offsets *= 4.0 / np.linalg.norm(offsets, axis=1, keepdims=True)
    directions = rng.standard_normal((2, dim))

    def data(t, n, gen):
        z = gen.standard_normal((n, dim)).astype(np.float32)
        return (offsets[t] + z).astype(np.float32), (z @ directions[t] > 0).astype(np.float32)

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)

    def loss(x, y):
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=model(x, training=False)[:, 0])

    learner = continual.Learner(model.trainable_variables, lambda x, y: -loss(x, y), loss=loss,
                                sample_spec=(tf.TensorSpec([dim], tf.float32), tf.TensorSpec([], tf.float32)))
    method = continual.create(name, learner, lam=lam)
    step = _compiled_step(method, learner, optimizer, [])
    gen = np.random.default_rng(2)
    tests = [data(t, 1000, np.random.default_rng(100 + t)) for t in range(2)]
    for t in range(2):
        for _ in range(150):
            step(*data(t, 64, gen))
        method.after_task(*data(t, 256, gen))
    return [float(np.mean((model(x).numpy()[:, 0] > 0) == y)) for x, y in tests]


# Measured (first task, second task): none [0.526, 0.925]; si lam 3 [0.648, 0.849], 10 [0.781,
# 0.732], 30 [0.892, 0.513] (SI trades the new task for the old); replay lam 1 [0.961, 0.905].
@pytest.mark.slow
@pytest.mark.parametrize("name, lam", [("si", 10.0), ("replay", 1.0)])
def test_si_and_replay_remember_the_first_task_that_fine_tuning_forgets(name, lam):
    protected = _two_task_accuracies(name, lam)
    fine_tuned = _two_task_accuracies("none", 0.0)
    assert protected[0] > fine_tuned[0] + 0.2, (protected, fine_tuned)
    assert np.mean(protected) > np.mean(fine_tuned), (protected, fine_tuned)


@pytest.mark.parametrize("model", ["seed", "default"])
def test_the_shipped_models_ewc_state_loads_into_the_plugins(model):
    """state.npz of the shipped models holds `ewc_g/...` and `ewc_d/...` in the format written
    before the plugins; the plugin of the method their config names must load and rewrite it."""
    from optimus.config import LEGACY_EWC_MODES

    path = ROOT / "models" / model / "state.npz"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    with np.load(path, allow_pickle=False) as saved:
        files = {k: saved[k] for k in saved.files}
    for prefix in ("ewc_g/", "ewc_d/"):
        state = {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)}
        mode = str(state["mode"])
        count = int(state["variables"])
        first = "fisher_{}" if mode != "off" else None
        shapes = [state[first.format(i)].shape for i in range(count)] if first else [(1,)] * count
        variables = [tf.Variable(np.zeros(s, np.float32)) for s in shapes]
        method = continual.create(LEGACY_EWC_MODES[mode], variables, lam=float(state["lam"]), gamma=float(state["gamma"]))
        method.load_state(state)
        assert method.tasks_seen == int(state["tasks_seen"]) > 0
        again = method.state()
        assert set(again) == set(state)
        for key, value in state.items():
            np.testing.assert_array_equal(np.asarray(again[key]), np.asarray(value), err_msg=f"{model} {prefix}{key}")
        for other in ("ewc", "online-ewc", "none"):  # continuing under another EWC mode converts
            continual.create(other, variables, gamma=0.9).load_state(state)


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Add a continual-learning method", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_plugin_runs_in_the_forgetting_benchmark():
    """The README's "Add a continual-learning method" code, executed as written: registered,
    offered by the benchmark, run through its MLP learner with a tuned lambda."""
    namespace = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    try:
        name = namespace["Shrink"].name
        assert name in continual.names() and name in forgetting.METHODS and name in forgetting.PENALTY_METHODS
        result = forgetting.run_benchmark(family="factor", tasks=[3, 5], methods=["none", name], steps_per_task=3,
                                          batch_size=16, test_size=32, val_size=32, fisher_samples=16)
        assert result["tuning"][name]["grid"] == list(forgetting.DEFAULT_LAMBDA_GRID)
        assert np.asarray(result["methods"][name]["R"]).shape == (2, 2)
        method = continual.create(name, _learner(), lam=1.0)
        assert float(method.penalty()) == 0.0
        method.after_task()
        assert float(method.penalty()) > 0.0
    finally:
        continual.unregister(namespace["Shrink"].name)
    assert name not in forgetting.METHODS


def test_from_config_takes_the_method_lambda_and_gamma_of_a_train_config():
    from optimus.config import TrainConfig

    cfg = TrainConfig(method="online-ewc", method_lambda=3.0, method_gamma=0.5)
    method = continual.from_config(cfg, _learner())
    assert method.name == "online-ewc" and method.lam == 3.0 and method.gamma == 0.5
    assert continual.from_config(TrainConfig(method="si", method_lambda=0.5), _learner()).lam == 0.5
