"""Elastic Weight Consolidation: per-sample Fisher information and the quadratic penalty.

EWC (Kirkpatrick et al. 2017) keeps a network from forgetting an old task by pulling each
weight back towards the value it had after that task, in proportion to how much the task's
log-likelihood depends on it (the diagonal of the Fisher information). Options follow
Avalanche's `EWCPlugin`, made explicit:

- `mode="separate"`: one penalty per past task, sum_t lam/2 sum_i F_t,i (theta_i - theta*_t,i)^2.
- `mode="online"`: online EWC (Schwarz et al. 2018): one running importance F <- gamma F + F_t
  and one anchor, the weights after the latest task.
- `mode="off"`: no penalty; `consolidate` only counts tasks.
- `mode="l2"`: a baseline for the forgetting benchmark, not a training option: plain L2 pull
  lam/2 sum_i (theta_i - theta*_i)^2 towards the weights after the latest task (no Fisher).

Where Avalanche cuts a corner (importances from squared *minibatch* gradients), this module
uses the empirical Fisher proper: the mean of squared *per-sample* gradients, vectorised with
`tf.vectorized_map` (measured on an MLP 49-128-64-1, 500 samples: 4 ms, against 70 ms for
`GradientTape.jacobian` with pfor, whose backward pass costs batch^2 x width memory).

All EWC state lives in non-trainable tf.Variables created once in `__init__`, so a
`tf.function` that calls `penalty()` is traced once and reads new anchors after every
`consolidate()`.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

MODES = ("separate", "online", "off", "l2")
TRAINING_MODES = ("separate", "online", "off")  # what a training config may ask for

# Per-sample gradients of one chunk must fit in about this many bytes (float32 gradients are
# materialised for every sample of the chunk, then squared and summed).
FISHER_MEMORY_BYTES = 1 << 30


def _tf_variable(v) -> tf.Variable:
    """The tf.Variable behind a Keras 3 variable (GradientTape.watch rejects the wrapper)."""
    if isinstance(v, tf.Variable):
        return v
    inner = getattr(v, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise TypeError(f"EWC needs TensorFlow or Keras variables, got {type(v).__name__}")


def _chunk_size(variables, max_bytes: int) -> int:
    params = sum(int(np.prod(v.shape)) for v in variables)
    # x2: the gradients and their squares live side by side for a moment.
    return max(1, int(max_bytes // (2 * 4 * max(params, 1))))


def _fisher_graph(fn, variables, tensors, chunk: int):
    """Sum over the batch of squared per-sample gradients, chunk by chunk, divided by B."""
    batch = tf.shape(tensors[0])[0]

    def per_sample_gradients(sample):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            # One sample as a batch of one: the caller's model sees the shape it expects.
            log_likelihood = fn(*[t[None] for t in sample])
            log_likelihood = tf.reshape(log_likelihood, [-1])[0]
        grads = tape.gradient(log_likelihood, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # A gather (embedding-like tables) gives IndexedSlices; densify them here, explicitly,
        # rather than let vectorized_map convert them with a warning.
        return [tf.math.unsorted_segment_sum(g.values, g.indices, g.dense_shape[0])
                if isinstance(g, tf.IndexedSlices) else g for g in grads]

    def body(start, sums):
        part = [t[start : start + chunk] for t in tensors]
        grads = tf.vectorized_map(per_sample_gradients, part)
        sums = [s + tf.reduce_sum(tf.square(tf.cast(g, s.dtype)), axis=0) for s, g in zip(sums, grads, strict=True)]
        return start + chunk, sums

    sums = [tf.zeros(v.shape, dtype=v.dtype) for v in variables]
    _, sums = tf.while_loop(lambda start, _: start < batch, body, (tf.constant(0), sums))
    denominator = tf.cast(tf.maximum(batch, 1), variables[0].dtype)
    return [s / tf.cast(denominator, s.dtype) for s in sums]


# Compiled Fisher functions, keyed by (callable, variables, chunk). Passing the same callable
# again reuses the traced graph; a fresh lambda per call would trace afresh every time.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_COMPILED_MAX = 32


def _compiled(fn, variables, chunk: int):
    key = (fn, tuple(v.ref() for v in variables), chunk)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = tf.function(lambda *tensors: _fisher_graph(fn, variables, list(tensors), chunk),
                               reduce_retracing=True)
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
    return compiled


class _NotPerSample(Exception):
    """A Dense layer saw rows that are not one per sample: use the general path."""


def _dense_fisher_graph(fn, layers, tensors):
    """Per-sample Fisher of Dense kernels and biases without materialising per-sample gradients.

    For a Dense layer z = a W + b, sample i's gradient is outer(a_i, delta_i) with
    delta_i = d log p_i / d z_i, so sum_i (d log p_i / d W)^2 = (a^2)^T (delta^2): one matmul,
    the cost of the layer's own backward pass (Goodfellow 2015's per-example trick). delta comes
    from one backward pass of sum_i log p_i through a zero "probe" added to each z: samples are
    independent (dropout off), so d(sum_j log p_j)/d z_i = d log p_i / d z_i.
    """
    batch = tensors[0].shape[0]
    seen = {}

    def probed(layer):
        def call(inputs, training=None):
            if id(layer) in seen or inputs.shape.rank != 2 or batch is None or inputs.shape[0] != batch:
                raise _NotPerSample
            z = tf.matmul(inputs, layer.kernel)
            if layer.bias is not None:
                z = z + layer.bias
            probe = tf.zeros_like(z)
            tape.watch(probe)
            seen[id(layer)] = (inputs, probe)
            z = z + probe
            return layer.activation(z) if layer.activation is not None else z

        return call

    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for layer in layers:
            layer.call = probed(layer)  # an instance attribute shadows Dense.call for this trace
        try:
            total = tf.reduce_sum(fn(*tensors))
        finally:
            for layer in layers:
                del layer.call
    if len(seen) != len(layers):
        raise _NotPerSample
    deltas = tape.gradient(total, [seen[id(layer)][1] for layer in layers],
                           unconnected_gradients=tf.UnconnectedGradients.ZERO)
    n = tf.cast(batch, tf.float32)
    out = []  # kernel, then bias (if any), layer by layer: the order of _dense_variables
    for layer, delta in zip(layers, deltas, strict=True):
        a = tf.cast(seen[id(layer)][0], tf.float32)
        d2 = tf.square(tf.cast(delta, tf.float32))
        out.append(tf.matmul(tf.square(a), d2, transpose_a=True) / n)
        if layer.bias is not None:
            out.append(tf.reduce_sum(d2, axis=0) / n)
    return out


def _dense_variables(layers) -> list:
    return [_tf_variable(v) for layer in layers for v in ([layer.kernel] + ([layer.bias] if layer.bias is not None else []))]


_COMPILED_DENSE: collections.OrderedDict = collections.OrderedDict()


def _compiled_dense(fn, layers):
    key = (fn, tuple(id(layer) for layer in layers))
    compiled = _COMPILED_DENSE.get(key)
    if compiled is None:
        compiled = tf.function(lambda *tensors: _dense_fisher_graph(fn, layers, list(tensors)), reduce_retracing=True)
        _COMPILED_DENSE[key] = compiled
        while len(_COMPILED_DENSE) > _COMPILED_MAX:
            _COMPILED_DENSE.popitem(last=False)
    return compiled


def dense_layers_of(model) -> list:
    """The plain Dense layers inside a Keras model (recursively), for `fisher_diagonal`."""
    import keras

    return [layer for layer in model._flatten_layers(include_self=False)
            if type(layer) is keras.layers.Dense and not getattr(layer, "lora_enabled", False)]


def fisher_diagonal(per_sample_log_likelihood, variables, *tensors, max_bytes: int = FISHER_MEMORY_BYTES,
                    dense_layers=()):
    """Diagonal empirical Fisher: mean over the B samples of (d log p_i / d theta)^2, per variable.

    `per_sample_log_likelihood(*tensors)` returns the [B] vector of log p_i (run the model with
    training=False inside). `tensors` share their first axis B. Works eagerly and inside a
    tf.function; repeated calls with the same callable, variables and shapes do not retrace.
    Variables the likelihood does not reach get zeros. Batches whose per-sample gradients would
    exceed `max_bytes` are processed in chunks.

    `dense_layers` (see `dense_layers_of`): Dense layers whose kernels and biases take the
    exact per-example shortcut of `_dense_fisher_graph` (about the cost of one batched
    gradient) when each sees one row per sample; every other variable, or every variable when
    that condition fails, takes the general vectorised path.
    """
    variables = [_tf_variable(v) for v in variables]
    if not variables:
        return []
    if not tensors:
        raise ValueError("fisher_diagonal needs at least one batched tensor")
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    wanted = {v.ref() for v in variables}
    layers = [layer for layer in dense_layers if _tf_variable(layer.kernel).ref() in wanted]
    fast = {}
    if layers:
        try:
            values = _compiled_dense(per_sample_log_likelihood, layers)(*tensors)
            fast = {v.ref(): f for v, f in zip(_dense_variables(layers), values, strict=True)}
        except _NotPerSample:
            fast = {}
    rest = [v for v in variables if v.ref() not in fast]
    slow = {}
    if rest:
        chunk = _chunk_size(rest, max_bytes)
        slow = {v.ref(): f for v, f in zip(rest, _compiled(per_sample_log_likelihood, rest, chunk)(*tensors), strict=True)}
    return [fast[v.ref()] if v.ref() in fast else slow[v.ref()] for v in variables]


def fisher_diagonal_loop(per_sample_log_likelihood, variables, *tensors):
    """Reference for `fisher_diagonal`: one GradientTape per sample in a Python loop (slow)."""
    variables = [_tf_variable(v) for v in variables]
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    batch = int(tensors[0].shape[0])
    sums = [tf.zeros(v.shape, dtype=v.dtype) for v in variables]
    for i in range(batch):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            log_likelihood = tf.reshape(per_sample_log_likelihood(*[t[i : i + 1] for t in tensors]), [-1])[0]
        grads = tape.gradient(log_likelihood, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        sums = [s + tf.square(g) for s, g in zip(sums, grads, strict=True)]
    return [s / max(batch, 1) for s in sums]


class EWC:
    """The EWC penalty over `variables`; see the module docstring for the modes.

    Usage in a training loop: add `ewc.penalty()` to the loss; after each task (in the online
    GAN loop, after each batch of latent integers) call
    `ewc.consolidate(fisher_diagonal(log_likelihood, ewc.variables, x, y))`.
    """

    def __init__(self, variables, mode: str = "separate", lam: float = 1.0, gamma: float = 1.0):
        if mode not in MODES:
            raise ValueError(f"unknown EWC mode {mode!r}; choose from {', '.join(MODES)}")
        if not lam >= 0.0:
            raise ValueError(f"EWC lambda must be >= 0, got {lam}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"EWC gamma must be in (0, 1], got {gamma}")
        self.mode = mode
        self.variables = [_tf_variable(v) for v in variables]
        self._lam = tf.Variable(float(lam), dtype=tf.float64, trainable=False, name="ewc_lambda")
        self._gamma = tf.Variable(float(gamma), dtype=tf.float64, trainable=False, name="ewc_gamma")
        self._tasks_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="ewc_tasks_seen")

        def zeros(v, dtype, name):
            return tf.Variable(tf.zeros(v.shape, dtype), trainable=False, name=name)

        # "separate" keeps three exact running sums in float64 (see `penalty` for why float64):
        #   A = sum_t F_t, B = sum_t F_t theta*_t, C = sum_t F_t theta*_t^2,
        # plus two things derived from them at each consolidate: the importance-weighted mean
        # anchor mu = B / A and the constant K = sum(C - B^2 / A) >= 0.
        self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, self._mean_anchor = [], [], [], []
        self._constant = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="ewc_constant")
        # "online" keeps one importance and one anchor per variable; "l2" only the anchor.
        self._fisher, self._anchor = [], []
        self._l2_active = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="ewc_l2_active")
        for i, v in enumerate(self.variables):
            if mode == "separate":
                self._sum_f.append(zeros(v, tf.float64, f"ewc_fisher_{i}"))
                self._sum_f_anchor.append(zeros(v, tf.float64, f"ewc_fisher_anchor_{i}"))
                self._sum_f_anchor_sq.append(zeros(v, tf.float64, f"ewc_fisher_anchor_sq_{i}"))
                self._mean_anchor.append(zeros(v, tf.float64, f"ewc_mean_anchor_{i}"))
            elif mode == "online":
                self._fisher.append(zeros(v, v.dtype, f"ewc_fisher_{i}"))
                self._anchor.append(zeros(v, v.dtype, f"ewc_anchor_{i}"))
            elif mode == "l2":
                self._anchor.append(zeros(v, v.dtype, f"ewc_anchor_{i}"))

    # -- hyper-parameters: variables, so changing them never retraces a caller's tf.function
    @property
    def lam(self) -> float:
        return float(self._lam.numpy())

    @lam.setter
    def lam(self, value: float) -> None:
        if not value >= 0.0:
            raise ValueError(f"EWC lambda must be >= 0, got {value}")
        self._lam.assign(float(value))

    @property
    def gamma(self) -> float:
        return float(self._gamma.numpy())

    @property
    def tasks_seen(self) -> int:
        return int(self._tasks_seen.numpy())

    # -- the two calls a training loop makes
    def consolidate(self, fisher=None) -> None:
        """Anchor the current values of `variables` with importances `fisher` (one tensor per
        variable, as returned by `fisher_diagonal`); "l2" and "off" ignore `fisher`."""
        if self.mode in ("separate", "online"):
            if fisher is None or len(fisher) != len(self.variables):
                got = "None" if fisher is None else f"{len(fisher)} tensors"
                raise ValueError(f"EWC consolidate: need one Fisher tensor per variable ({len(self.variables)}), got {got}")
            for i, (f, v) in enumerate(zip(fisher, self.variables, strict=True)):
                if tuple(f.shape) != tuple(v.shape):
                    raise ValueError(f"EWC consolidate: fisher {i} has shape {tuple(f.shape)} but variable has {tuple(v.shape)}")
        if self.mode == "separate":
            for f, v, a, b, c in zip(fisher, self.variables, self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, strict=True):
                f = tf.cast(f, tf.float64)
                theta = tf.cast(v, tf.float64)
                a.assign_add(f)
                b.assign_add(f * theta)
                c.assign_add(f * tf.square(theta))
            self._refresh_derived()
        elif self.mode == "online":
            for f, v, running, anchor in zip(fisher, self.variables, self._fisher, self._anchor, strict=True):
                running.assign(tf.cast(self._gamma, running.dtype) * running + tf.cast(f, running.dtype))
                anchor.assign(v)
        elif self.mode == "l2":
            for v, anchor in zip(self.variables, self._anchor, strict=True):
                anchor.assign(v)
            self._l2_active.assign(1.0)
        self._tasks_seen.assign_add(1)

    def _refresh_derived(self) -> None:
        constant = tf.constant(0.0, tf.float64)
        for a, b, c, mu in zip(self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, self._mean_anchor, strict=True):
            mean = tf.math.divide_no_nan(b, a)
            mu.assign(mean)
            # C - B^2/A = sum_t F_t (theta*_t - mu)^2 >= 0 exactly; rounding can make it a hair
            # negative, hence the clamp per element.
            constant += tf.reduce_sum(tf.maximum(c - b * mean, 0.0))
        self._constant.assign(constant)

    def penalty(self) -> tf.Tensor:
        """The EWC term to add to the loss (a float32 scalar, >= 0)."""
        dtype = self.variables[0].dtype if self.variables else tf.float32
        if self.mode == "off" or not self.variables:
            return tf.zeros([], dtype)
        if self.mode == "separate":
            # Numerical note. The sum over tasks is sum(A theta^2 - 2 B theta + C). Evaluated as
            # written it cancels catastrophically (three large terms, small difference), so the
            # value is computed in the completed-square form sum(A (theta - mu)^2) + K, which is
            # >= 0 by construction, while the gradient is taken from the expanded form, so it is
            # exactly lam (A theta - B). Sums are float64: after thousands of tasks A, B, C keep
            # ~16 digits where float32 would keep 7. Memory stays 4 float64 arrays per variable.
            expanded = tf.constant(0.0, tf.float64)
            completed = tf.identity(self._constant)
            for v, a, b, c, mu in zip(self.variables, self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, self._mean_anchor, strict=True):
                theta = tf.cast(v, tf.float64)
                expanded += tf.reduce_sum(a * tf.square(theta) - 2.0 * b * theta + c)
                completed += tf.reduce_sum(a * tf.square(theta - mu))
            total = expanded + tf.stop_gradient(completed - expanded)
        elif self.mode == "online":
            total = tf.add_n([tf.reduce_sum(tf.cast(f * tf.square(v - anchor), tf.float64))
                              for v, f, anchor in zip(self.variables, self._fisher, self._anchor, strict=True)])
        else:  # l2
            total = self._l2_active * tf.add_n([tf.reduce_sum(tf.cast(tf.square(v - anchor), tf.float64))
                                                for v, anchor in zip(self.variables, self._anchor, strict=True)])
        return tf.cast(0.5 * self._lam * total, dtype)

    def reset(self) -> None:
        """Forget every task (lam and gamma stay)."""
        for var in (self._sum_f + self._sum_f_anchor + self._sum_f_anchor_sq + self._mean_anchor
                    + self._fisher + self._anchor):
            var.assign(tf.zeros_like(var))
        self._constant.assign(0.0)
        self._l2_active.assign(0.0)
        self._tasks_seen.assign(0)

    # -- checkpointing: a flat dict of arrays for np.savez, loadable with allow_pickle=False
    def _named_state(self) -> dict:
        names = {}
        if self.mode == "separate":
            for i in range(len(self.variables)):
                names[f"fisher_{i}"] = self._sum_f[i]
                names[f"fisher_anchor_{i}"] = self._sum_f_anchor[i]
                names[f"fisher_anchor_sq_{i}"] = self._sum_f_anchor_sq[i]
        elif self.mode == "online":
            for i in range(len(self.variables)):
                names[f"fisher_{i}"] = self._fisher[i]
                names[f"anchor_{i}"] = self._anchor[i]
        elif self.mode == "l2":
            for i in range(len(self.variables)):
                names[f"anchor_{i}"] = self._anchor[i]
        return names

    def state(self) -> dict[str, np.ndarray]:
        """Everything `load_state` needs, as plain arrays. In "separate" mode `fisher_i` is the
        summed importance A and `fisher_anchor_i`, `fisher_anchor_sq_i` are B and C. lam and
        gamma are recorded but not restored: they belong to the run's config."""
        out = {
            "mode": np.array(self.mode),  # 0-d unicode array: loads with allow_pickle=False
            "tasks_seen": np.array(self.tasks_seen, dtype=np.int64),
            "variables": np.array(len(self.variables), dtype=np.int64),
            "lam": np.array(self.lam, dtype=np.float64),
            "gamma": np.array(self.gamma, dtype=np.float64),
        }
        if self.mode == "l2":
            out["l2_active"] = np.array(float(self._l2_active.numpy()), dtype=np.float64)
        for name, var in self._named_state().items():
            out[name] = var.numpy()
        return out

    def load_state(self, state) -> None:
        """Restore `state()`'s output (a dict or an NpzFile); ValueError names what is wrong."""
        def get(key):
            if key not in state:
                raise ValueError(f"EWC state: missing {key!r}")
            return np.asarray(state[key])

        mode = str(get("mode"))
        if mode != self.mode:
            if mode not in TRAINING_MODES or self.mode not in TRAINING_MODES:
                raise ValueError(f"EWC state: mode is {mode!r} but this EWC is {self.mode!r}")
            state = convert_state(state, self.mode, [tuple(v.shape) for v in self.variables])
        count = int(get("variables"))
        if count != len(self.variables):
            raise ValueError(f"EWC state: {count} variables but this EWC has {len(self.variables)}")
        tasks = int(get("tasks_seen"))
        if tasks < 0:
            raise ValueError(f"EWC state: tasks_seen is {tasks}")
        arrays = {}
        for name, var in self._named_state().items():
            value = get(name)
            if value.shape != tuple(var.shape):
                raise ValueError(f"EWC state: {name} has shape {value.shape} but variable has {tuple(var.shape)}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"EWC state: {name} has non-finite values")
            arrays[name] = value
        # Validate everything before assigning anything: a bad file leaves this EWC untouched.
        for name, var in self._named_state().items():
            var.assign(arrays[name].astype(var.dtype.as_numpy_dtype))
        if self.mode == "separate":
            self._refresh_derived()
        if self.mode == "l2":
            self._l2_active.assign(float(get("l2_active")))
        self._tasks_seen.assign(tasks)


def convert_state(state, mode: str, shapes: list[tuple]) -> dict[str, np.ndarray]:
    """An `EWC.state()` of one training mode as the state of another, so a model trained with
    one `ewc_mode` continues with another (`shapes`: the variables' shapes, for "off" -> on).

    The rule:
    - separate -> online: importance F = A = sum_t F_t and anchor mu = B / A = sum_t F_t theta*_t
      / sum_t F_t. "separate" keeps only these sums, not each task's Fisher or the latest anchor,
      and with them the online penalty sum F (theta - mu)^2 equals the separate penalty minus
      its constant K, so the penalty's gradient, all that training sees, is exactly the same at
      the switch; from then on F decays by gamma per task.
    - online -> separate: one past task with Fisher F and anchor theta* (A = F, B = F theta*,
      C = F theta*^2): the same penalty, exactly.
    - anything -> off: nothing is kept ("off" has no penalty and no arrays); the task count stays.
    - off -> separate or online: a fresh start (zero importance: no penalty until the next
      consolidate); the task count stays.
    tasks_seen, lam and gamma carry over unchanged (lam and gamma come from the run's config).
    """
    def get(key):
        if key not in state:
            raise ValueError(f"EWC state: missing {key!r}")
        return np.asarray(state[key])

    source = str(get("mode"))
    for m in (source, mode):
        if m not in TRAINING_MODES:
            raise ValueError(f"EWC state: cannot convert from {source!r} to {mode!r}")
    count = int(get("variables"))
    if count != len(shapes):
        raise ValueError(f"EWC state: {count} variables but this EWC has {len(shapes)}")
    out = {k: get(k) for k in ("tasks_seen", "variables", "lam", "gamma")}
    out["mode"] = np.array(mode)
    if mode == "off":
        return out
    importance, anchor = [], []
    for i, shape in enumerate(shapes):
        if source == "separate":
            a = get(f"fisher_{i}").astype(np.float64)
            b = get(f"fisher_anchor_{i}").astype(np.float64)
            importance.append(a)
            anchor.append(np.divide(b, a, out=np.zeros_like(a), where=a > 0))
        elif source == "online":
            importance.append(get(f"fisher_{i}").astype(np.float64))
            anchor.append(get(f"anchor_{i}").astype(np.float64))
        else:  # off: a fresh start
            importance.append(np.zeros(shape))
            anchor.append(np.zeros(shape))
    for i, (f, theta) in enumerate(zip(importance, anchor, strict=True)):
        if mode == "online":
            out[f"fisher_{i}"], out[f"anchor_{i}"] = f, theta
        else:
            out[f"fisher_{i}"], out[f"fisher_anchor_{i}"], out[f"fisher_anchor_sq_{i}"] = f, f * theta, f * theta**2
    return out
