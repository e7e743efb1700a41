"""The one small interface every continual-learning method implements.

A method protects some trainable variables of a network while that network learns a stream of
tasks (in the GAN trainer: one online batch = one task; in the forgetting benchmark: one
primality task). The trainer (the GAN's `train_step`, or the benchmark's learner) calls:

- `penalty()` inside its GradientTape, and adds it to the loss (a float32 scalar >= 0);
- `after_step(grads)` after each optimiser step (in-graph; e.g. Synaptic Intelligence's
  path integral), with the gradients of the *task* loss, one per variable;
- `after_task(*tensors)` once a task ends, with a sample of that task: the same tensors the
  `Learner`'s `log_likelihood` / `loss` take (EWC computes its Fisher there, replay stores them).

`state()` / `load_state()` carry everything across a checkpoint as plain arrays (np.savez,
no pickle). `reset()` forgets every task (the benchmark's lambda search reuses one method).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Learner:
    """What a method may see of the network it protects."""

    variables: list  # the trainable variables to protect
    # (*tensors) -> [B] log p(y_i | x_i) per sample, the model run with training=False (the
    # Fisher's likelihood; tensors share their first axis B).
    log_likelihood: Callable
    # (*tensors) -> [B] the training loss per sample (what replay re-applies to stored samples);
    # None: a method that needs it refuses this learner.
    loss: Callable | None = None
    # Dense layers that take the Fisher's per-example shortcut (optimus.fisher.dense_layers_of).
    dense_layers: Sequence = field(default_factory=tuple)


class ContinualMethod:
    """Base class: no penalty, no hooks. Subclasses set `name` and register themselves."""

    name: str = ""  # the registry key, as the CLI, config.json and the pages spell it
    summary: str = ""  # one line for menus and the README
    uses_lambda: bool = True  # whether `lam` means anything (the benchmark tunes it if so)

    def __init__(self, learner: Learner, lam: float = 1.0, **options):
        if not lam >= 0.0:
            raise ValueError(f"{self.name}: lambda must be >= 0, got {lam}")
        self.learner = learner
        self.variables = list(learner.variables)
        self._lam = float(lam)

    @property
    def lam(self) -> float:
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        if not value >= 0.0:
            raise ValueError(f"{self.name}: lambda must be >= 0, got {value}")
        self._lam = float(value)

    def penalty(self):
        import tensorflow as tf

        return tf.zeros([], tf.float32)

    def after_step(self, grads) -> None:
        """Called after each optimiser step (inside the compiled step); default: nothing."""

    def after_task(self, *tensors) -> None:
        """Called when a task ends, with a sample of it; default: nothing."""

    def state(self) -> dict[str, np.ndarray]:
        return {"method": np.array(self.name)}

    def load_state(self, state) -> None:
        """Restore `state()`; ValueError naming what is wrong (the method stays untouched)."""

    def reset(self) -> None:
        """Forget every task (lambda stays)."""
