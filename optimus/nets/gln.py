"""A Bernoulli Gated Linear Network (Veness et al., "Gated Linear Networks", AAAI 2021).

Why here: a GLN learns online, neuron by neuron, from a local log loss, with no
backpropagation. Each neuron picks one of 2^context_dim weight vectors by which side of
`context_dim` fixed random hyperplanes the side information z falls on, so different regions of
input space train different weights, which is what makes GLNs resist catastrophic forgetting
without replay or a Fisher penalty. It is the `gln` method of the forgetting benchmark and
(later) the `--discriminator gln` option of GAN training.

The network, for side information z = the encoded features (float32, [B, input_dim]):

- Base layer: the features squashed to probabilities, p0 = clip(sigmoid(f), eps, 1 - eps), so
  in logit space x0 = clip(f, -L, L) with L = logit(1 - eps), plus a constant bias input.
  Features should be O(1): `optimus.nets.encoding.encode(n, "fourier")` gives values in [-1, 1],
  whose cos/sin pairs already carry the residue signal (a multiple of p has cos = 1).
- Each neuron k of layer l: context c = sum_j 2^j [h_kj . z > b_kj]; output
  p = clip(sigmoid(w_kc . x), eps, 1 - eps) where x are the logits of the previous layer's
  outputs plus a bias logit (geometric mixing: a weighted product of the input probabilities).
- Every neuron predicts the same label and learns by its own gradient of log loss,
  w_kc <- clip(w_kc - eta_t (p - y) x, -w_max, w_max). The last layer has one neuron: the output.

Batched update (documented choice): the B samples of a batch all use the weights from before
the batch; each sample's local gradient is added to the weight vector of the context it
selected ("sum", the first-order equivalent of B sequential online steps, so eta keeps its
per-sample meaning of the paper), then the weights are clipped once. `batch_reduction="mean"`
averages over the samples that share a context instead (one step per context per batch).
With "sum", a context that collects k samples of a batch takes k steps at once, so keep
eta * k well below 1. Measured: on divisibility features of odd n in [1e6, 1e9) (every prime
has z = 0, so all primes of a batch share one context per neuron), eta = 0.01 with batches of
512 ended at balanced accuracy 0.5 (one-class outputs) within 150 batches, while eta = 1e-3
reached 0.99 after 150 batches of 512 (and after 100 of 2,000). The forgetting benchmark (batches of 256, 256 contexts
per neuron) uses eta = 0.01.

Halfspaces: the paper draws dense Gaussian normals (`context_sparsity=0`, the default).
`context_sparsity=k` keeps k random coordinates per normal; k = 1 gives axis-aligned
thresholds on single features, which resist forgetting far better on residue features (see
`optimus.experiments.forgetting.ForgettingConfig`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="optimus")
class BernoulliGLN(keras.Model):
    """Bernoulli GLN on float features; `call` gives P(label = 1) as [B, 1], `update` learns.

    Args:
        input_dim: number of features (also the side-information size).
        layer_sizes: neurons in each hidden layer; one output neuron is always appended.
        context_dim: halfspaces per neuron; each neuron holds 2**context_dim weight vectors.
        w_max: weights are clipped to [-w_max, w_max].
        learning_rate: eta_max. With `decay_constant` c > 0 the rate is min(eta_max, c / t),
            t = samples seen so far (Veness et al.); with c = 0 it is constant.
        eps: probabilities are clipped to [eps, 1 - eps] everywhere (bounds the log loss).
        bias_logit: logit of the constant bias input every layer receives.
        context_bias_std: standard deviation of the hyperplane offsets b (hyperplane normals
            are random unit vectors, so h . z is O(|z| / sqrt(input_dim)) for generic z).
        batch_reduction: "sum" or "mean", see the module docstring.
        context_sparsity: non-zero coordinates per hyperplane normal; 0 = dense (the paper).
        seed: hyperplanes are drawn from numpy's default_rng(seed).
    """

    def __init__(self, input_dim: int, layer_sizes=(32, 16), context_dim: int = 4,
                 w_max: float = 5.0, learning_rate: float = 0.01, decay_constant: float = 0.0,
                 eps: float = 0.01, bias_logit: float = 1.0, context_bias_std: float = 0.5,
                 batch_reduction: str = "sum", context_sparsity: int = 0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if int(input_dim) < 1:
            raise ValueError(f"GLN input_dim must be >= 1, got {input_dim}")
        if any(int(s) < 1 for s in layer_sizes):
            raise ValueError(f"GLN layer sizes must be >= 1, got {list(layer_sizes)}")
        if not 0 <= int(context_dim) <= 16:
            raise ValueError(f"GLN context_dim must be in [0, 16], got {context_dim}")
        if not 0.0 < eps < 0.5:
            raise ValueError(f"GLN eps must be in (0, 0.5), got {eps}")
        if batch_reduction not in ("sum", "mean"):
            raise ValueError(f"GLN batch_reduction must be 'sum' or 'mean', got {batch_reduction!r}")
        self.input_dim = int(input_dim)
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.context_dim = int(context_dim)
        self.w_max = float(w_max)
        self.learning_rate = float(learning_rate)
        self.decay_constant = float(decay_constant)
        self.eps = float(eps)
        self.bias_logit = float(bias_logit)
        self.context_bias_std = float(context_bias_std)
        self.batch_reduction = batch_reduction
        self.context_sparsity = int(context_sparsity)
        self.seed = int(seed)
        self._logit_clip = math.log((1.0 - self.eps) / self.eps)

        rng = np.random.default_rng(self.seed)
        sizes = self.layer_sizes + [1]
        contexts = 2**self.context_dim
        self._weights, self._hyperplanes, self._offsets = [], [], []
        fan_in = self.input_dim + 1
        for layer, size in enumerate(sizes):
            normals = rng.standard_normal((size, self.context_dim, self.input_dim))
            if 0 < self.context_sparsity < self.input_dim:
                keep = rng.random((size, self.context_dim, self.input_dim)).argsort(axis=-1) < self.context_sparsity
                normals *= keep
            normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
            offsets = rng.standard_normal((size, self.context_dim)) * self.context_bias_std
            # Weights start at 1/fan_in: every neuron begins as the geometric mean of its inputs.
            self._weights.append(self._constant_weight(f"weights_{layer}", np.full((size, contexts, fan_in), 1.0 / fan_in)))
            self._hyperplanes.append(self._constant_weight(f"hyperplanes_{layer}", normals))
            self._offsets.append(self._constant_weight(f"offsets_{layer}", offsets))
            fan_in = size + 1
        self._samples_seen = self.add_weight(name="samples_seen", shape=(), initializer="zeros",
                                             trainable=False, dtype="float32")
        self._update_compiled = tf.function(self._update_step, reduce_retracing=True)
        self.built = True

    def _constant_weight(self, name: str, value: np.ndarray):
        # Not trainable: a GLN learns by `update`, and no optimizer may touch these.
        w = self.add_weight(name=name, shape=value.shape, initializer="zeros", trainable=False, dtype="float32")
        w.assign(value.astype(np.float32))
        return w

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim, layer_sizes=list(self.layer_sizes), context_dim=self.context_dim,
            w_max=self.w_max, learning_rate=self.learning_rate, decay_constant=self.decay_constant,
            eps=self.eps, bias_logit=self.bias_logit, context_bias_std=self.context_bias_std,
            batch_reduction=self.batch_reduction, context_sparsity=self.context_sparsity, seed=self.seed,
        )
        return config

    def build(self, input_shape=None):  # weights already exist: created in __init__
        self.built = True

    # -- forward pass
    def _contexts(self, layer: int, side):
        """[B, n] int32: the index of each neuron's active weight vector for each sample."""
        if self.context_dim == 0:
            return tf.zeros([tf.shape(side)[0], self.layer_sizes_with_output[layer]], tf.int32)
        projection = tf.einsum("bd,kcd->bkc", side, tf.convert_to_tensor(self._hyperplanes[layer]))
        bits = tf.cast(projection > tf.convert_to_tensor(self._offsets[layer])[None], tf.int32)
        powers = tf.constant([2**j for j in range(self.context_dim)], tf.int32)
        return tf.reduce_sum(bits * powers, axis=-1)

    # Up to 2**4 = 16 contexts per neuron are all evaluated with matmuls (see layer_trace), more
    # by a gather of the active weights; both give the same numbers (tests/test_gln.py).
    ALL_CONTEXTS_MAX_DIM = 4

    @property
    def _few_contexts(self) -> bool:
        return self.context_dim <= self.ALL_CONTEXTS_MAX_DIM

    # Read-only views of the state, for inspection and the tests (they check each against a
    # NumPy transcription of the paper)
    @property
    def neuron_weights(self) -> list:
        """Per layer: the weight variable [neurons, contexts, inputs + 1]."""
        return self._weights

    @property
    def hyperplanes(self) -> list:
        """Per layer: the context hyperplanes' normals [neurons, context_dim, input_dim]."""
        return self._hyperplanes

    @property
    def context_offsets(self) -> list:
        """Per layer: the context hyperplanes' offsets [neurons, context_dim]."""
        return self._offsets

    @property
    def samples_seen(self) -> float:
        """How many samples `update` has learned from (a step size schedule's t)."""
        return float(self._samples_seen)

    @property
    def update_traces(self) -> int:
        """How many graphs `update` has traced: one for every batch size (reduce_retracing)."""
        return self._update_compiled.experimental_get_tracing_count()

    @property
    def layer_sizes_with_output(self) -> list[int]:
        return self.layer_sizes + [1]

    def layer_trace(self, features):
        """Per layer: (input logits x [B, n_in], contexts [B, n], output logits [B, n])."""
        side = tf.cast(features, tf.float32)
        batch = tf.shape(side)[0]
        bias = tf.fill([batch, 1], tf.constant(self.bias_logit, tf.float32))
        x = tf.concat([tf.clip_by_value(side, -self._logit_clip, self._logit_clip), bias], axis=1)
        trace = []
        for layer in range(len(self._weights)):
            ctx = self._contexts(layer, side)
            weights = tf.convert_to_tensor(self._weights[layer])
            if self._few_contexts:
                # Every context's dot product, then each sample's active one: [B, n, C] stays
                # small, where gathering each sample's weight vectors ([n, B, n_in]) took
                # gigabytes on 1,229 divisibility features in GAN batches.
                every = tf.einsum("bi,kci->bkc", x, weights)
                logits = tf.gather(every, ctx, axis=2, batch_dims=2)
            else:  # many contexts: computing them all costs more than gathering the active one
                active = tf.gather(weights, tf.transpose(ctx), axis=1, batch_dims=1)  # [n, B, n_in]
                logits = tf.einsum("kbi,bi->bk", active, x)
            logits = tf.clip_by_value(logits, -self._logit_clip, self._logit_clip)
            trace.append((x, ctx, logits))
            x = tf.concat([logits, bias], axis=1)
        return trace

    def call(self, features, training=None):
        return tf.sigmoid(self.layer_trace(features)[-1][2])

    # -- online learning
    def learning_rate_at(self, t):
        """The step size for the t-th sample: min(learning_rate, decay_constant / t)."""
        eta = tf.constant(self.learning_rate, tf.float32)
        if self.decay_constant > 0.0:
            eta = tf.minimum(eta, self.decay_constant / tf.maximum(t, 1.0))
        return eta

    def _update_step(self, features, labels):
        labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])
        trace = self.layer_trace(features)
        batch = tf.shape(labels)[0]
        eta = self.learning_rate_at(self._samples_seen + 1.0)
        contexts = 2**self.context_dim
        for layer, (x, ctx, logits) in enumerate(trace):
            p = tf.sigmoid(logits)
            # d(log loss)/dw for the active weights is (p - y) x per sample and neuron, summed
            # per (neuron, context).
            size = self.layer_sizes_with_output[layer]
            if self._few_contexts:  # one matmul over a one-hot of the contexts
                chosen = tf.one_hot(ctx, contexts, dtype=tf.float32)  # [B, n, C]
                step = tf.einsum("bkc,bi->kci", chosen * (p - labels)[:, :, None], x)
                counts = tf.reduce_sum(chosen, axis=0)  # [n, C]
            else:  # a segment sum of the per-sample gradients
                segments = tf.reshape(tf.range(size)[:, None] * contexts + tf.transpose(ctx), [-1])
                grads = tf.reshape(tf.einsum("bk,bi->kbi", p - labels, x), [size * batch, -1])
                step = tf.reshape(tf.math.unsorted_segment_sum(grads, segments, size * contexts), [size, contexts, -1])
                counts = tf.reshape(tf.math.unsorted_segment_sum(
                    tf.ones_like(segments, tf.float32), segments, size * contexts), [size, contexts])
            if self.batch_reduction == "mean":
                step = step / tf.maximum(counts, 1.0)[:, :, None]
            w = self._weights[layer]
            w.assign(tf.clip_by_value(w - eta * step, -self.w_max, self.w_max))
        self._samples_seen.assign_add(tf.cast(batch, tf.float32))
        p_out = tf.clip_by_value(tf.sigmoid(trace[-1][2]), self.eps, 1.0 - self.eps)
        # Prequential log loss: of the predictions made before this update.
        return -tf.reduce_mean(labels * tf.math.log(p_out) + (1.0 - labels) * tf.math.log(1.0 - p_out))

    def update(self, features, labels):
        """One online local update on a batch; returns the mean log loss before the update."""
        return self._update_compiled(tf.convert_to_tensor(features, tf.float32),
                                     tf.convert_to_tensor(labels, tf.float32))


def build_gln(input_dim: int, layer_sizes=(32, 16), context_dim: int = 4, seed: int = 0, **options) -> BernoulliGLN:
    """A BernoulliGLN for `input_dim` encoded features; `options` as in BernoulliGLN."""
    return BernoulliGLN(input_dim=input_dim, layer_sizes=tuple(layer_sizes), context_dim=context_dim, seed=seed, **options)
