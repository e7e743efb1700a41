"""Online training of the GAN, batch after batch.

* `gan`: the GAN as a `keras.Model` (`PrimeGAN`: `compile`, `train_step`);
* `online_batch`: one online batch's data as one compiled graph;
* `loop`: the online loop `train`, read top to bottom (`build_gan`, `prepare_batch`,
  `run_online_batch`, the NaN guard);
* `callbacks`: a run's bookkeeping as Keras callbacks (history, status, stop, checkpoint, ...);
* `distribute`: `--device` to a `tf.distribute` strategy.
"""

from optimus.training.loop import (
    SIEVE_CHART_PRIMES,
    TrainingDiverged,
    build_gan,
    prepare_batch,
    run_online_batch,
    train,
)

__all__ = ["SIEVE_CHART_PRIMES", "TrainingDiverged", "build_gan", "prepare_batch",
           "run_online_batch", "train"]
