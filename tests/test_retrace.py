"""The compiled training steps are traced once per run, not once per online batch.

A retrace costs far more than a batch of a tiny model (tracing plus graph optimisation), and a
shape that changes from batch to batch also makes `reduce_retracing` fall back to an unknown
batch size, which turns off the per-example Dense shortcut in the Fisher (optimus.ewc).
"""

import keras
import pytest

from optimus import training
from optimus.models import build_discriminator, build_generator
from optimus.training import _Networks, _online_batch
from tests.helpers import tiny

STEPS = ("d_step", "g_step", "d_fisher", "g_fisher")


def tracing_counts(nets) -> dict:
    return {name: getattr(nets, name).experimental_get_tracing_count() for name in STEPS}


def networks(cfg) -> _Networks:
    keras.utils.set_random_seed(cfg.seed)
    return _Networks(cfg, build_generator(cfg), build_discriminator(cfg))


@pytest.mark.parametrize("name", ["default", "seed"])
def test_online_batches_trace_each_step_once(name):
    cfg = tiny(name)
    nets = networks(cfg)
    for batch in (1, 2, 3):
        _online_batch(nets, cfg, batch, lambda: False)
        assert tracing_counts(nets) == dict.fromkeys(STEPS, 1), f"after batch {batch}"


@pytest.mark.parametrize("name", ["default", "seed"])
def test_train_traces_each_step_once(name, tmp_path, monkeypatch):
    """The same through train(): checkpoints, TensorBoard and status writes in between."""
    made = []

    class Recorded(_Networks):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(training, "_Networks", Recorded)
    status = training.train(tiny(name, batches=3), tmp_path / name, progress=False, log=lambda *_: None)
    assert status["state"] == "done" and status["batches_done"] == 3
    assert tracing_counts(made[0]) == dict.fromkeys(STEPS, 1)


def test_d_fisher_keeps_its_shape_when_fisher_samples_exceed_the_batch():
    cfg = tiny("default", fisher_samples=256)  # about 80 undersampled candidates per batch
    nets = networks(cfg)
    for batch in (1, 2, 3):
        _online_batch(nets, cfg, batch, lambda: False)
    assert tracing_counts(nets)["d_fisher"] == 1
