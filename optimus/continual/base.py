"""The one small interface every continual-learning method implements.

A method protects some trainable variables of a network while that network learns a stream of
tasks (in the GAN trainer: one online batch = one task; in the forgetting benchmark: one
primality task). The trainer (the GAN's `train_step`, or the benchmark's learner) calls:

- `penalty()` inside its GradientTape, and adds it to the loss (a scalar >= 0, in the dtype of
  the protected variables);
- `after_step(grads)` after each optimiser step (in-graph; e.g. Synaptic Intelligence's
  path integral), with the gradients of the *task* loss, one per variable. Only methods with
  `needs_step_gradients` use them: a trainer may skip computing them otherwise;
- `after_task(*tensors)` once a task ends, with a sample of that task: the same tensors the
  `Learner`'s `log_likelihood` / `loss` take (EWC computes its Fisher there, replay stores them).

`state()` / `load_state()` carry everything across a checkpoint as plain arrays (np.savez,
no pickle). `reset()` forgets every task (the benchmark's lambda search reuses one method).

Every piece of state is a tf.Variable created in `__init__` (lambda included), so a
tf.function calling `penalty()` / `after_step()` is traced once and sees every later
`after_task`, `load_state`, `reset` or change of `lam`.

The method modules import TensorFlow inside their methods, not at their top: the registry
imports every one of them to list the methods, and the config check (`TrainConfig.validate`)
and the pages, processes that must not load TensorFlow, ask it for names and summaries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# The "mode" a state file records for each method. EWC's three were written before the
# plugins (shipped models' state.npz hold them), so they keep their old spelling; any other
# method records its registry name.
STATE_MODES = {"ewc": "separate", "online-ewc": "online", "none": "off"}


@dataclass
class Learner:
    """What a method may see of the network it protects."""

    variables: list  # the trainable variables to protect
    # (*tensors) -> [B] log p(y_i | x_i) per sample, the model run with training=False (the
    # Fisher's likelihood; tensors share their first axis B). None: methods that need it
    # (EWC) refuse `after_task` with tensors; they can still be given importances directly.
    log_likelihood: Callable | None = None
    # (*tensors) -> [B] the training loss per sample (what replay re-applies to stored samples);
    # None: a method that needs it refuses this learner.
    loss: Callable | None = None
    # Dense layers that take the Fisher's per-example shortcut (optimus.continual.fisher.dense_layers_of).
    dense_layers: Sequence = field(default_factory=tuple)
    # One tf.TensorSpec per tensor `after_task` receives, *without* the batch axis (replay
    # allocates its buffers from them up front, so a compiled penalty is traced once).
    sample_spec: Sequence = field(default_factory=tuple)


class ContinualMethod:
    """Base class and the "no protection" behaviour: no penalty, hooks that only count tasks.

    A subclass sets `name` (and `summary`), declares its options with their defaults in
    `options`, creates its tf.Variables in `__init__`, lists the ones `state()` saves in
    `_arrays()`, and overrides what it needs of `penalty`, `after_step`, `after_task`.
    """

    name: str = ""  # the registry key, as the CLI, config.json and the pages spell it
    summary: str = ""  # one line for menus and the README
    uses_lambda: bool = True  # whether `lam` means anything (the benchmark tunes it if so)
    needs_step_gradients: bool = False  # whether `after_step` reads its `grads`
    # Options this method reads, with defaults. Options it does not name are ignored, so one
    # TrainConfig (which carries e.g. online EWC's gamma) can create any method.
    options: dict = {}

    def __init__(self, learner, lam: float = 1.0, **options):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        from optimus.continual.fisher import as_tf_variable  # imports TensorFlow: as above

        if not isinstance(learner, Learner):
            learner = Learner(list(learner))  # bare variables: importances are given directly
        if not lam >= 0.0:
            raise ValueError(f"{self.name}: lambda must be >= 0, got {lam}")
        self.learner = learner
        self.variables = [as_tf_variable(v) for v in learner.variables]
        self.options = {k: options.get(k, default) for k, default in type(self).options.items()}
        self.dtype = self.variables[0].dtype if self.variables else tf.float32
        self._lam = tf.Variable(float(lam), dtype=tf.float64, trainable=False, name=f"{self.name}_lambda")
        self._tasks_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{self.name}_tasks_seen")

    @property
    def mode(self) -> str:
        """What `state()` records as "mode" (see STATE_MODES)."""
        return STATE_MODES.get(self.name, self.name)

    @property
    def lam(self) -> float:
        return float(self._lam.numpy())

    @lam.setter
    def lam(self, value: float) -> None:
        if not value >= 0.0:
            raise ValueError(f"{self.name}: lambda must be >= 0, got {value}")
        self._lam.assign(float(value))

    @property
    def tasks_seen(self) -> int:
        return int(self._tasks_seen.numpy())

    # -- the three calls a trainer makes
    def penalty(self):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        return tf.zeros([], self.dtype)

    def after_step(self, grads) -> None:
        """Called after each optimiser step (inside the compiled step); default: nothing."""
        del grads  # a body AutoGraph can convert (a docstring alone makes it warn)

    def after_task(self, *tensors) -> None:
        """Called when a task ends, with a sample of it. Subclasses do their work, then call this."""
        self._tasks_seen.assign_add(1)

    def _per_variable(self, name: str, dtype=None, copy: bool = False) -> list:
        """One non-trainable tf.Variable per protected variable, named `{name}_{i}`: zeros (of
        `dtype`, default the variable's), or a copy of its current value. Created once, in
        __init__, so a tf.function that reads them traces once."""
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        return [tf.Variable(tf.identity(v) if copy else tf.zeros(v.shape, dtype or v.dtype), trainable=False,
                            name=f"{name}_{i}") for i, v in enumerate(self.variables)]

    # -- checkpointing: a flat dict of arrays for np.savez, loadable with allow_pickle=False
    def _arrays(self) -> dict:
        """name -> tf.Variable: the method's state beyond the task count (none here)."""
        return {}

    def _scalars(self) -> dict[str, np.ndarray]:
        """Recorded but not restored: they belong to the run's config."""
        return {"lam": np.array(self.lam, dtype=np.float64)}

    def _converted(self, state, mode: str):
        """`state` of another method (its "mode" is `mode`) as this method's, or ValueError."""
        raise ValueError(f"{self.name} state: mode is {mode!r} but this method is {self.mode!r}; "
                         f"a model continues under another method only between ewc, online-ewc and none")

    def _loaded(self) -> None:
        """Called after load_state assigned the arrays (derived quantities refresh here)."""

    def state(self) -> dict[str, np.ndarray]:
        out = {
            "mode": np.array(self.mode),  # 0-d unicode array: loads with allow_pickle=False
            "tasks_seen": np.array(self.tasks_seen, dtype=np.int64),
            "variables": np.array(len(self.variables), dtype=np.int64),
            **self._scalars(),
        }
        for key, var in self._arrays().items():
            out[key] = var.numpy()
        return out

    def load_state(self, state) -> None:
        """Restore `state()`'s output (a dict or an NpzFile); ValueError names what is wrong,
        and a bad state leaves the method untouched (everything is checked before anything is
        assigned)."""
        def get(key):
            if key not in state:
                raise ValueError(f"{self.name} state: missing {key!r}")
            return np.asarray(state[key])

        mode = str(get("mode"))
        if mode != self.mode:
            state = self._converted(state, mode)
        count = int(get("variables"))
        if count != len(self.variables):
            raise ValueError(f"{self.name} state: {count} variables but this method has {len(self.variables)}")
        tasks = int(get("tasks_seen"))
        if tasks < 0:
            raise ValueError(f"{self.name} state: tasks_seen is {tasks}")
        arrays = {}
        for key, var in self._arrays().items():
            value = get(key)
            if value.shape != tuple(var.shape):
                raise ValueError(f"{self.name} state: {key} has shape {value.shape} but variable has {tuple(var.shape)}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{self.name} state: {key} has non-finite values")
            arrays[key] = value
        for key, var in self._arrays().items():
            var.assign(arrays[key].astype(var.dtype.as_numpy_dtype))
        self._tasks_seen.assign(tasks)
        self._loaded()

    def reset(self) -> None:
        """Forget every task (lambda and the options stay)."""
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        for var in self._arrays().values():
            var.assign(tf.zeros_like(var))
        self._tasks_seen.assign(0)
        self._loaded()
