""""si": Synaptic Intelligence (Zenke, Poole & Ganguli 2017, "Continual learning through
synaptic intelligence").

Each weight's importance is how much it lowered the loss along its own training path: during a
task, w_i += -g_i * (theta_i(t+1) - theta_i(t)) after every step (a path integral of the task
loss's gradient), and when the task ends Omega_i += w_i / (Delta_i^2 + xi) with Delta_i the
weight's total move over the task. The penalty is lam sum_i Omega_i (theta_i - theta*_i)^2 with
theta* the weights after the latest task (the paper's c is lam). Unlike EWC it needs no
likelihood and no extra pass after a task: the importance is gathered for free from gradients
the trainer computes anyway.

One departure from the paper, for a penalty >= 0: a weight whose path integral is negative
over a task (it moved *against* its gradient on balance, which Adam's momentum can do) adds no
importance, instead of a negative importance that would reward drifting from the anchor.
"""

from __future__ import annotations

from optimus.continual.base import ContinualMethod
from optimus.continual.registry import register


@register
class SynapticIntelligence(ContinualMethod):
    name, summary = "si", "Synaptic Intelligence: importance from each weight's path integral (Zenke et al. 2017)"
    needs_step_gradients = True
    # xi keeps Omega finite for weights that end a task where they began; the paper's 1e-3.
    options = {"xi": 1e-3}

    def __init__(self, learner, lam: float = 1.0, **options):
        super().__init__(learner, lam=lam, **options)

        if not float(self.options["xi"]) > 0.0:
            raise ValueError(f"si: xi must be > 0, got {self.options['xi']}")

        self._omega = self._per_variable("si_omega")  # importance Omega
        self._path = self._per_variable("si_path")  # w, this task so far
        self._anchor = self._per_variable("si_anchor", copy=True)  # theta after the latest task
        self._start = self._per_variable("si_start", copy=True)  # theta when this task began
        self._previous = self._per_variable("si_previous", copy=True)  # theta before the last step

    def _arrays(self):
        out = {}
        for i in range(len(self.variables)):
            out.update({f"omega_{i}": self._omega[i], f"path_{i}": self._path[i], f"anchor_{i}": self._anchor[i],
                        f"start_{i}": self._start[i], f"previous_{i}": self._previous[i]})
        return out

    def penalty(self):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        if not self.variables:
            return tf.zeros([], self.dtype)
        total = tf.add_n([tf.reduce_sum(tf.cast(omega * tf.square(v - anchor), tf.float64))
                          for v, omega, anchor in zip(self.variables, self._omega, self._anchor, strict=True)])
        return tf.cast(self._lam * total, self.dtype)

    def after_step(self, grads) -> None:
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        for g, v, path, previous in zip(grads, self.variables, self._path, self._previous, strict=True):
            if g is not None:
                path.assign_sub(tf.convert_to_tensor(g) * (v - previous))  # densifies IndexedSlices
            previous.assign(v)

    def after_task(self, *tensors) -> None:
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        xi = float(self.options["xi"])
        for v, omega, path, anchor, start, previous in zip(self.variables, self._omega, self._path, self._anchor,
                                                           self._start, self._previous, strict=True):
            omega.assign_add(tf.nn.relu(path) / (tf.square(v - start) + xi))
            path.assign(tf.zeros_like(path))
            anchor.assign(v)
            start.assign(v)
            previous.assign(v)
        super().after_task()

    def _restart_path(self) -> None:
        for v, anchor, start, previous in zip(self.variables, self._anchor, self._start, self._previous, strict=True):
            anchor.assign(v)
            start.assign(v)
            previous.assign(v)

    def reset(self) -> None:
        """Forget every task; the current weights are where the next task's path begins."""
        super().reset()
        self._restart_path()
