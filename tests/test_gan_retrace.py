"""The compiled training step and the consolidation are traced once per run, not once per
online batch.

A retrace costs far more than a batch of a tiny model (tracing plus graph optimisation), and a
shape that changes from batch to batch also makes `reduce_retracing` fall back to an unknown
batch size, which turns off the per-example Dense shortcut in the Fisher (optimus.continual.fisher).

The GAN's step is one tf.function (`gan.train_function`): its tracing count. The
consolidation belongs to the continual-learning method, which compiles it as it likes; what
the GAN controls is that the likelihoods it hands over see the same shapes every batch, so
their Python bodies run while tracing only: counted by wrapping them.
"""

import functools

import keras
import pytest

from optimus.nets.networks import build_discriminator, build_generator
from optimus.store import storage
from optimus.training import gan as gan_module
from optimus.training import loop as training
from tests.helpers import tiny

LIKELIHOODS = ("d_log_likelihood", "g_log_likelihood")


@pytest.fixture
def python_calls(monkeypatch):
    """How often each likelihood's Python body ran (once per trace, never per batch)."""
    calls = dict.fromkeys(LIKELIHOODS, 0)
    for name in LIKELIHOODS:
        real = getattr(gan_module.PrimeGAN, name)

        @functools.wraps(real)
        def counted(self, *tensors, _real=real, _name=name):
            calls[_name] += 1
            return _real(self, *tensors)

        monkeypatch.setattr(gan_module.PrimeGAN, name, counted)
    return calls


def compiled_gan(cfg):
    keras.utils.set_random_seed(cfg.seed)
    return training.build_gan(cfg, build_generator(cfg), build_discriminator(cfg))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "seed"])
def test_online_batches_trace_each_step_once(name, python_calls):
    cfg = tiny(name)
    gan = compiled_gan(cfg)
    training.run_online_batch(gan, cfg, 1)
    after_first = dict(python_calls)
    assert all(after_first.values()), after_first  # the consolidation used both likelihoods
    for batch in (2, 3):
        training.run_online_batch(gan, cfg, batch)
        assert gan.train_function.experimental_get_tracing_count() == 1, f"after batch {batch}"
        assert python_calls == after_first, f"after batch {batch}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "seed"])
def test_train_traces_each_step_once(name, tmp_path, monkeypatch, python_calls):
    """The same through train(): checkpoints, TensorBoard and status writes in between."""
    made = []
    real = training.build_gan

    def recorded(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(training, "build_gan", recorded)
    status = training.train(tiny(name, batches=3), tmp_path / "one", progress=False, log=lambda *_: None)
    assert status["state"] == "done" and status["batches_done"] == 3
    assert made[0].train_function.experimental_get_tracing_count() == 1
    per_run = dict(python_calls)
    status = training.train(tiny(name, batches=6), tmp_path / "two", progress=False, log=lambda *_: None)
    assert status["state"] == "done"
    # A second run traces anew (new variables), but no more than the first for twice the batches.
    assert {k: v - per_run[k] for k, v in python_calls.items()} == per_run


@pytest.mark.slow
def test_d_fisher_keeps_its_shape_when_fisher_samples_exceed_the_batch(python_calls):
    cfg = tiny("default", fisher_samples=256)  # about 80 undersampled candidates per batch
    gan = compiled_gan(cfg)
    training.run_online_batch(gan, cfg, 1)
    after_first = python_calls["d_log_likelihood"]
    for batch in (2, 3):
        training.run_online_batch(gan, cfg, batch)
    assert python_calls["d_log_likelihood"] == after_first


def _numbers(model_dir):
    return [{k: v for k, v in r.items() if k not in ("time", "seconds")}
            for r in storage.read_jsonl(model_dir / storage.HISTORY)]


@pytest.mark.slow
def test_a_prewarmed_gan_is_taken_once_and_steps_without_tracing_again(tmp_path):
    """The warm trainer's head start (`loop.prewarm`): a new run whose config differs only in
    WARM_FREE_FIELDS (here the generator's learning rate, the steps and the batches) takes the
    GAN traced ahead, its step and batch graph are not traced again, and it trains the numbers
    a run that built its own GAN trains; a config with other shapes builds its own."""
    small = {"disc_prime_max": 31_623}  # the default's: its band below the exact bound, one graph per batch
    cfg = tiny("default", batches=2, **small)
    training.train(cfg, tmp_path / "cold", progress=False, log=lambda *_: None)

    assert training.prewarm(tiny("default", lr_generator=0.5, steps=7, batches=9, **small))
    warm = training._warm["gan"]
    logs = []
    training.train(cfg, tmp_path / "warm", progress=False, log=logs.append)
    assert training.WARM_LOG in logs and not training._warm  # taken, once
    assert warm.train_function.experimental_get_tracing_count() == 1
    assert warm.batches.tracing_counts()["whole"] == 1
    assert _numbers(tmp_path / "warm") == _numbers(tmp_path / "cold") and len(_numbers(tmp_path / "cold")) == 2

    assert training.prewarm(tiny("default", window=16, **small))
    logs.clear()
    training.train(cfg, tmp_path / "other", progress=False, log=logs.append)
    assert training.WARM_LOG not in logs and not training._warm
    assert _numbers(tmp_path / "other") == _numbers(tmp_path / "cold")
