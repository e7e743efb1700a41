"""The diagonal Fisher information of a network, per sample and vectorised, and the one
Bernoulli log-likelihood every caller takes it of (the GAN trainer, `bench`, the forgetting
benchmark).

EWC (optimus.continual.ewc) weighs each weight by how much a task's log-likelihood depends
on it: the diagonal of the Fisher information. Where Avalanche cuts a corner (importances from
squared *minibatch* gradients), this module computes the empirical Fisher proper: the mean of
squared *per-sample* gradients, vectorised with `tf.vectorized_map` (measured on an MLP
49-128-64-1, 500 samples: 4 ms, against 70 ms for `GradientTape.jacobian` with pfor, whose
backward pass costs batch^2 x width memory), and for Dense layers by Goodfellow's per-example
trick (`dense_layers`).
"""

from __future__ import annotations

import collections

import keras
import numpy as np
import tensorflow as tf

# Per-sample gradients of one chunk must fit in about this many bytes (float32 gradients are
# materialised for every sample of the chunk, then squared and summed).
FISHER_MEMORY_BYTES = 1 << 30


def as_tf_variable(v) -> tf.Variable:
    """The tf.Variable behind a Keras 3 variable (GradientTape.watch rejects the wrapper)."""
    if isinstance(v, tf.Variable):
        return v
    inner = getattr(v, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise TypeError(f"the Fisher needs TensorFlow or Keras variables, got {type(v).__name__}")


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
                               reduce_retracing=True, autograph=False)
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
    return [as_tf_variable(v) for layer in layers for v in ([layer.kernel] + ([layer.bias] if layer.bias is not None else []))]


_COMPILED_DENSE: collections.OrderedDict = collections.OrderedDict()


def _compiled_dense(fn, layers):
    key = (fn, tuple(id(layer) for layer in layers))
    compiled = _COMPILED_DENSE.get(key)
    if compiled is None:
        compiled = tf.function(lambda *tensors: _dense_fisher_graph(fn, layers, list(tensors)), reduce_retracing=True,
                               autograph=False)
        _COMPILED_DENSE[key] = compiled
        while len(_COMPILED_DENSE) > _COMPILED_MAX:
            _COMPILED_DENSE.popitem(last=False)
    return compiled


def dense_layers_of(model) -> list:
    """The plain Dense layers inside a Keras model (recursively), for `fisher_diagonal`."""
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
    variables = [as_tf_variable(v) for v in variables]
    if not variables:
        return []
    if not tensors:
        raise ValueError("fisher_diagonal needs at least one batched tensor")
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    wanted = {v.ref() for v in variables}
    layers = [layer for layer in dense_layers if as_tf_variable(layer.kernel).ref() in wanted]
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
    variables = [as_tf_variable(v) for v in variables]
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


# --- the Bernoulli likelihood of a binary classifier (D's head, the benchmark's MLP) ---------

def bernoulli_log_likelihood(prob, y, eps: float = 1e-7):
    """[B] log p(y | x) = y log p + (1 - y) log(1 - p) of a classifier's probabilities `prob`
    (any shape with B elements), clipped to [eps, 1 - eps] so a saturated sigmoid gives a
    finite score."""
    p = tf.clip_by_value(tf.reshape(prob, (-1,)), eps, 1.0 - eps)
    y = tf.cast(y, p.dtype)
    return y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p)


def bernoulli_log_likelihood_from_logits(logits, y):
    """[B] log p(y | x) from logits, without clipping (log-sigmoid is exact in both tails)."""
    logits = tf.reshape(logits, (-1,))
    return -tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y, logits.dtype), logits=logits)


def expected_bernoulli_score(logits):
    """A [B] stand-in for log p whose squared gradient is the *expected* Fisher under the
    model's own Bernoulli output: E_y[(d log p(y|x))^2] = p (1 - p) (d logit)^2, in one pass
    (no label needed)."""
    logits = tf.reshape(logits, (-1,))
    p = tf.sigmoid(logits)
    return tf.stop_gradient(tf.sqrt(p * (1.0 - p))) * logits
