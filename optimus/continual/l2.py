""""l2": pull every weight towards its value after the latest task, all weights alike.

The baseline EWC improves on: lam/2 sum_i (theta_i - theta*_i)^2, EWC's penalty with every
Fisher entry 1. Its lambda lives on another scale than EWC's (no Fisher to shrink it), so the
benchmark tunes it on its own grid.
"""

from __future__ import annotations

from optimus.continual.base import ContinualMethod
from optimus.continual.registry import register


@register
class L2(ContinualMethod):
    name, summary = "l2", "L2 pull towards the weights after the last task"

    def __init__(self, learner, lam: float = 1.0, **options):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        super().__init__(learner, lam=lam, **options)
        self._anchor = self._per_variable("l2_anchor")
        # 0 until the first task ends: the zero anchors are no task's weights.
        self._active = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="l2_active")

    def _arrays(self):
        return {"l2_active": self._active, **{f"anchor_{i}": a for i, a in enumerate(self._anchor)}}

    def penalty(self):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        if not self.variables:
            return tf.zeros([], self.dtype)
        total = self._active * tf.add_n([tf.reduce_sum(tf.cast(tf.square(v - anchor), tf.float64))
                                         for v, anchor in zip(self.variables, self._anchor, strict=True)])
        return tf.cast(0.5 * self._lam * total, self.dtype)

    def after_task(self, *tensors) -> None:
        for v, anchor in zip(self.variables, self._anchor, strict=True):
            anchor.assign(v)
        self._active.assign(1.0)
        super().after_task()
