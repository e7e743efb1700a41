"""Online training of the GAN, batch after batch.

* `gan`: the GAN as a `keras.Model` (`PrimeGAN`: `compile`, `train_step`);
* `online_batch`: one online batch's data as one compiled graph;
* `loop`: the online loop `train`, read top to bottom (`build_gan`, `prepare_batch`,
  `run_online_batch`, the NaN guard);
* `callbacks`: a run's bookkeeping as Keras callbacks (history, status, stop, checkpoint, ...);
* `distribute`: `--device` to a `tf.distribute` strategy.

Every module here but `distribute` imports TensorFlow; the names below load `loop` on first
use, so the CLI can read `distribute.DEVICES` for its parser without TensorFlow.
"""

import importlib

from optimus.primes import SIEVE_CHART_PRIMES

_FROM_LOOP = ("TrainingDiverged", "build_gan", "prepare_batch", "run_online_batch", "train")

__all__ = ["SIEVE_CHART_PRIMES", *_FROM_LOOP]


def __getattr__(name: str):
    if name in _FROM_LOOP:  # TensorFlow on first use: see the module docstring
        return getattr(importlib.import_module("optimus.training.loop"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
