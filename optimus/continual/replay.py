""""replay": experience replay from a fixed-size reservoir of past tasks' samples.

The simplest rehearsal method and, with a small buffer, a strong baseline in every continual-
learning comparison (e.g. Chaudhry et al. 2019, "On tiny episodic memories in continual
learning"). `after_task(*tensors)` offers the task's sample to a reservoir of `capacity` slots
(Vitter's algorithm R: every sample ever offered is in the buffer with the same probability
capacity / offered, whatever task it came from); the penalty is lam * mean(learner.loss(*stored)),
the training loss re-applied to the stored samples, so lam is the weight of old tasks against
the current one.

The buffers are tf.Variables of shape [capacity, *sample_spec[k].shape] (capacity shrunk to
fit optimus.limits.MAX_REPLAY_BYTES), allocated up front
from `Learner.sample_spec`, so a compiled penalty is traced once; the reservoir's random
generator state is part of `state()`, so a resumed run draws what an unbroken one would.
"""

from __future__ import annotations

from optimus import limits
from optimus.continual.base import ContinualMethod
from optimus.continual.registry import register


@register
class Replay(ContinualMethod):
    name, summary = "replay", "experience replay: a reservoir of past tasks' samples, their loss re-applied"
    options = {"capacity": 500, "seed": 0}

    def __init__(self, learner, lam: float = 1.0, **options):
        super().__init__(learner, lam=lam, **options)
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        if self.learner.loss is None:
            raise ValueError("replay needs the learner's per-sample loss (Learner.loss) to re-apply to stored samples")
        if not self.learner.sample_spec:
            raise ValueError("replay needs Learner.sample_spec: the per-sample shape and dtype of each tensor after_task gets")

        self.capacity = int(self.options["capacity"])
        if not 1 <= self.capacity <= 1_000_000:
            raise ValueError(f"replay: capacity must be in [1, 1000000], got {self.capacity}")
        sample_bytes = sum(spec.shape.num_elements() * spec.dtype.size for spec in self.learner.sample_spec)
        if sample_bytes > limits.MAX_REPLAY_BYTES:
            raise ValueError(f"replay: one sample is {sample_bytes:,} bytes, more than the buffer's "
                             f"{limits.MAX_REPLAY_BYTES:,} (optimus.limits.MAX_REPLAY_BYTES)")
        # As many samples as fit the byte budget (the checkpoint's size cap counts on it).
        self.capacity = min(self.capacity, limits.MAX_REPLAY_BYTES // max(sample_bytes, 1))
        self._buffers = [tf.Variable(tf.zeros([self.capacity, *spec.shape], spec.dtype), trainable=False,
                                     name=f"replay_buffer_{k}") for k, spec in enumerate(self.learner.sample_spec)]
        self._filled = tf.Variable(0, dtype=tf.int64, trainable=False, name="replay_filled")
        self._offered = tf.Variable(0, dtype=tf.int64, trainable=False, name="replay_offered")
        self._rng = tf.random.Generator.from_seed(int(self.options["seed"]))
        self._rng_start = self._rng.state.numpy()

    def _arrays(self):
        return {"filled": self._filled, "offered": self._offered, "rng": self._rng.state,
                **{f"buffer_{k}": b for k, b in enumerate(self._buffers)}}

    def penalty(self):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        stored = [b[: self._filled] for b in self._buffers]
        total = tf.reduce_sum(tf.cast(self.learner.loss(*stored), tf.float64))
        mean = total / tf.cast(tf.maximum(self._filled, 1), tf.float64)  # 0 while the buffer is empty
        return tf.cast(self._lam * mean, self.dtype)

    def after_task(self, *tensors) -> None:
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        if len(tensors) != len(self._buffers):
            raise ValueError(f"replay: after_task got {len(tensors)} tensors, sample_spec names {len(self._buffers)}")
        tensors = [tf.cast(t, b.dtype) for t, b in zip(tensors, self._buffers, strict=True)]
        batch = tf.shape(tensors[0], out_type=tf.int64)[0]
        # Algorithm R, vectorised: sample i (the offered+i-th ever) goes to slot offered+i while
        # the buffer fills, else to a uniform slot in [0, offered+i] if that is < capacity. When
        # several samples of this batch pick one slot, the latest wins, as in the sequential loop.
        index = self._offered + tf.range(batch, dtype=tf.int64)
        draw = self._rng.uniform([batch], minval=0, maxval=tf.int64.max, dtype=tf.int64) % (index + 1)
        slot = tf.where(index < self.capacity, index, draw)
        keep = slot < self.capacity
        slot, order = tf.boolean_mask(slot, keep), tf.boolean_mask(tf.range(batch, dtype=tf.int64), keep)
        winner = tf.math.unsorted_segment_max(order, slot, self.capacity)  # per slot: its last writer
        written = tf.where(winner >= 0)[:, 0]
        source = tf.gather(winner, written)
        for b, t in zip(self._buffers, tensors, strict=True):
            b.scatter_nd_update(written[:, None], tf.gather(t, source))
        self._offered.assign_add(batch)
        self._filled.assign(tf.minimum(self._offered, self.capacity))
        super().after_task()

    def reset(self) -> None:
        super().reset()
        self._rng.reset(self._rng_start)
