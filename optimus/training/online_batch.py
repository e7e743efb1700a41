"""One online batch's data, prepared as one compiled TensorFlow graph where the range allows.

An online batch (one continual-learning task) is: latent integers drawn for (seed, batch
index); the generator's candidate reals; n = to_odd(x); exact labels; the discriminator's
features; the labelled rows undersampled to `cfg.prime_ratio` (never below `cfg.min_batch`),
then subsampled or zero-weight padded to `d_rows` rows so the compiled steps never retrace.

    batches = OnlineBatches(generator, encoding, cfg, d_rows=nets.d_rows)
    b = batches(batch_index)          # a dict of tensors, below
    for _ in range(cfg.steps):
        d_step(b["d_features"], b["d_labels"], b["d_weights"], b["d_total"])
        g_step(b["z"], b["candidate_features"])

or, where `batches.band_fits` (the default preset), fused with the steps in one graph:

    @tf.function
    def online_batch(seed):               # seed = batches.seed(batch_index)
        b = batches.build(seed)
        ...steps on b...

The dict (every value a tf.Tensor):
    latents [B] int64, z [B, 1] (the generator's input dtype),
    candidate_features [B * W, F] (W = cfg.window for the sieve generator, else 1): every
        candidate's features, the rows the generator step and the generator Fisher read,
    n_pool [B * W] int64 (the odd candidates), labels [B * W] bool (exact primality),
    chosen [k] int64: the rows kept by undersampling (sorted; k <= d_rows), the sample the
        discriminator's Fisher draws from,
    d_features [d_rows, F], d_labels [d_rows] float32, d_weights [d_rows] float32 (1 for the
        k chosen rows, 0 for padding), d_total float32 scalar max(k, 1): the weighted mean's divisor,
    graph bool scalar: whether the labels came from the graph (True) or NumPy (False).

Where the labels come from. Every composite n has a prime factor <= sqrt(n), so for n < q**2
(q the first prime above the largest table prime) the labels are exact without a sieve:
  - The default discriminator's FactorEncoding already lists every odd prime <= its
    prime_max dividing each candidate, so "prime" is "no factor listed and n > 1": free, and
    the whole batch is one `tf.function` (candidates < out_hi + 2W <= q**2 is checked once,
    from the generator's band). Trial division of the same 32,768 candidates by the same
    3,400 primes costs 0.26-0.72 s on the shared 2-core CPU (optimus.primes.trial_division; NumPy's
    sieve lookup: 8 ms); the read-off adds nothing to the features' cost.
  - Any other encoding (the seed's scalar input) labels by `optimus.primes.trial_division`. The
    seed's dense generator has no band: its outputs are checked per batch (one scalar read)
    and beyond the bound the labels come from `optimus.primes.is_prime` (NumPy).
Both paths share the RNG and the undersampling graph, so the same (cfg.seed, batch index)
gives the same batch whichever path runs (tests/test_online_batch.py checks it).

Randomness: stateless TensorFlow RNG seeded by (cfg.seed, batch_index), split three ways
(latents, which composites to keep, which rows to keep). Deterministic run to run; a different stream from the NumPy `default_rng([seed, batch])` the loop used before,
so a run's history numbers differ from runs trained before this module (not their quality).

Speed (`python -m optimus bench batch`, default preset, 512 latents x 64 candidates, 8,192
rows, shared 2-core CPU, two runs under different load): preparing the batch takes 35 / 114 ms
as one graph against 83 / 268 ms for the NumPy preparation the loop used before (0.42x /
0.43x); with 20 simple d/g steps, 0.94x / 1.00x (the steps dominate: 2-4 s). The seed preset's
preparation (2,000 latents, trial division in the graph): 0.38x. So the graph is the default on a CPU too; graph=False (NumPy
labels, the rest in the graph) remains for comparison and for encodings without a bound.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from optimus import limits, primes
from optimus.nets.layers import FactorEncoding, odd_from_real
from optimus.primes import small_odd_primes
from optimus.primes.trial_division import DEFAULT_PRIME_MAX, TrialDivision, first_prime_above


class ExactRangeError(ValueError):
    """The generator's outputs are not finite, or too large for exact integers (>= 2**52)."""


def default_d_rows(cfg) -> int:
    """Rows of the discriminator's (padded) batch: cfg.disc_rows, or one per candidate."""
    candidates = cfg.batch_size * (cfg.window if cfg.generator == "sieve" else 1)
    return min(cfg.disc_rows, candidates) if cfg.disc_rows else candidates


class OnlineBatches:
    """`batches(batch_index)` -> the online batch's dict (module docstring).

    generator: the run's generator (sieve: outputs [reals, logits] of shape [B, W]; dense:
    reals [B, 1]). encoding: the discriminator's encoding layer (`discriminator_parts`).
    d_rows: the discriminator's rows per step (`default_d_rows(cfg)` unless given).
    graph: True (default): labels in the graph wherever the bound allows; False: NumPy labels.
    """

    def __init__(self, generator, encoding, cfg, d_rows: int | None = None, graph: bool = True):
        self.generator, self.encoding, self.cfg = generator, encoding, cfg
        self.sieve = cfg.generator == "sieve"
        self.window = cfg.window if self.sieve else 1
        self.candidates = cfg.batch_size * self.window
        self.d_rows = int(d_rows if d_rows is not None else default_d_rows(cfg))
        self.z_dtype = generator.inputs[0].dtype
        self.graph = bool(graph)
        factor = isinstance(encoding, FactorEncoding)
        self._window_factors = self.sieve and factor  # windows: [B, K] residues instead of [B*W, K]
        if factor:  # labels read off the encoding's own factor lists
            table = small_odd_primes(encoding.prime_max)  # the layer's own table (layers.FactorEncoding)
            self.bound = first_prime_above(int(table[-1])) ** 2 if table.size else 9
            self._trial = None
        else:
            self._trial = TrialDivision(DEFAULT_PRIME_MAX)
            self.bound = self._trial.bound
        # The sieve band is fixed by the layer: decided once. Dense outputs: per batch.
        self.band_fits = self.sieve and cfg.out_hi + 2 * self.window + 2 <= self.bound
        self._propose = tf.function(self._propose_fn, autograph=False)
        self._label_features = tf.function(self._label_features_fn, autograph=False)
        self._finish = tf.function(self._finish_fn, autograph=False)
        self._whole = tf.function(self._whole_fn, autograph=False)

    # --- the public call ------------------------------------------------------------------
    def tracing_counts(self) -> dict[str, int]:
        """How often each compiled piece has been traced (tests check: once per run)."""
        return {name: fn.experimental_get_tracing_count()
                for name, fn in (("whole", self._whole), ("propose", self._propose), ("finish", self._finish))}

    def seed(self, batch_index: int):
        """The stateless RNG seed of a batch: int64 [2] (cfg.seed, batch_index)."""
        return tf.constant([self.cfg.seed, int(batch_index)], dtype=tf.int64)

    def trace(self) -> dict:
        """Trace the compiled batch now, without running it (the warm trainer's head start:
        `optimus.training.loop.prewarm`); returns the dict's tf.TensorSpecs. Only where `band_fits`
        and `graph` (the path `__call__` compiles whole); a later call reuses this trace."""
        if not (self.graph and self.band_fits):
            raise ValueError("only the whole-batch graph (graph=True, the band below the exact bound) traces ahead")
        outputs = self._whole.get_concrete_function(tf.TensorSpec([2], tf.int64)).structured_outputs
        return {k: tf.TensorSpec(v.shape, v.dtype) for k, v in outputs.items()}

    def build(self, seed) -> dict:
        """The whole batch as traceable ops, for a seed tensor (`seed(batch_index)`): call it
        inside your own tf.function to fuse the batch with the steps that use it. Only where
        `band_fits` (the sieve band below the exact bound); otherwise call the object."""
        if not self.band_fits:
            raise ValueError(f"the candidates may reach {self.cfg.out_hi:.3g}, beyond the exact bound {self.bound}: "
                             "call the object (NumPy labels) instead")
        return self._whole_fn(seed)

    def __call__(self, batch_index: int) -> dict:
        seed = self.seed(batch_index)
        if self.graph and self.band_fits:
            return self._whole(seed)
        latents, z, reals = self._propose(seed)
        if self.graph:  # the dense generator: the actual maximum decides
            finite = bool(tf.reduce_all(tf.math.is_finite(reals)))  # reduce_max may skip a NaN
            top = float(tf.reduce_max(reals))
            if finite and 0 <= float(tf.reduce_min(reals)) and 2 * np.floor(top) + 1 < self.bound:
                n = odd_from_real(reals)
                labels, features = self._label_features(n, reals)
                return self._finish(seed, latents, z, n, labels, features, tf.constant(True))
        return self._numpy_labels(seed, latents, z, reals)

    # --- the pieces -----------------------------------------------------------------------
    def _propose_fn(self, seed):
        s_latent = tf.random.experimental.stateless_split(seed, 3)[0]
        latents = tf.random.stateless_uniform([self.cfg.batch_size], s_latent, minval=self.cfg.latent_lo,
                                              maxval=self.cfg.latent_hi + 1, dtype=tf.int64)
        z = tf.cast(latents[:, None], self.z_dtype)
        out = self.generator(z, training=False)
        reals = out[0] if isinstance(out, (list, tuple)) else out
        return latents, z, tf.reshape(tf.cast(reals, tf.float64), (-1,))

    def _features(self, n, reals):
        if self._window_factors:
            return self.encoding.window_features_graph(n, self.window)
        return self.encoding(tf.reshape(reals, (-1, 1)))

    def _label_features_fn(self, n, reals):
        features = self._features(n, reals)
        if self._trial is None:  # FactorEncoding: no listed factor and n > 1 (n is odd)
            labels = tf.logical_and(tf.equal(features[:, 0], 0.0), n > 1)
        else:
            labels = self._trial(n)
        return labels, features

    def _whole_fn(self, seed):
        latents, z, reals = self._propose_fn(seed)
        n = odd_from_real(reals)
        labels, features = self._label_features_fn(n, reals)
        return self._finish_fn(seed, latents, z, n, labels, features, tf.constant(True))

    def _numpy_labels(self, seed, latents, z, reals) -> dict:
        flat = reals.numpy()
        if not limits.exact_reals(flat):
            raise ExactRangeError(f"generator outputs left the exact range (max {np.nanmax(flat):.3g}, "
                                  "must stay finite and below 2**52)")
        n = primes.to_odd(flat)  # ValueError for negative outputs
        labels = primes.is_prime(n)
        if self._window_factors and hasattr(self.encoding, "window_features"):  # NumPy's window residues
            features = self.encoding.window_features(n[:: self.window], self.window)
        else:
            features = self.encoding(flat.reshape(-1, 1))
        return self._finish(seed, latents, z, tf.constant(n), tf.constant(labels), features, tf.constant(False))

    def _finish_fn(self, seed, latents, z, n, labels, features, graph):
        """Undersampling to the prime ratio, then subsample/pad to d_rows rows, in the graph."""
        s_keep, s_rows = tf.unstack(tf.random.experimental.stateless_split(seed, 3)[1:])
        chosen = undersample(labels, self.cfg.prime_ratio, self.cfg.min_batch, s_keep)
        # At most d_rows of them, a uniform subset: the smallest random keys.
        keys = tf.random.stateless_uniform(tf.shape(chosen), s_rows)
        k = tf.minimum(tf.size(chosen), self.d_rows)
        chosen = tf.sort(tf.gather(chosen, tf.argsort(keys)[:k]))
        pad = tf.zeros([self.d_rows - k], tf.int64)
        rows = tf.concat([chosen, pad], 0)
        weights = tf.concat([tf.ones([k], tf.float32), tf.zeros([self.d_rows - k], tf.float32)], 0)
        rows.set_shape([self.d_rows])
        weights.set_shape([self.d_rows])
        return {
            "latents": latents, "z": z, "candidate_features": features, "n_pool": n, "labels": labels,
            "chosen": chosen, "d_features": tf.gather(features, rows),
            "d_labels": tf.cast(tf.gather(labels, rows), tf.float32), "d_weights": weights,
            "d_total": tf.maximum(tf.cast(k, tf.float32), 1.0), "graph": graph,
        }



def undersample(labels, prime_ratio: float, min_batch: int, seed):
    """Indices (sorted, int64 tensor) of all primes plus a uniform subset of the composites
    (stateless draw from `seed`, int64 [2]), so that primes make up `prime_ratio`, never fewer
    than min(min_batch, all) rows in all: only composites are dropped."""
    total = tf.size(labels, out_type=tf.int64)
    n_primes = tf.reduce_sum(tf.cast(labels, tf.int64))
    n_comp = total - n_primes
    keep = tf.cast(tf.round(tf.cast(n_primes, tf.float64) * (1.0 - prime_ratio) / prime_ratio), tf.int64)
    keep = tf.maximum(keep, tf.minimum(tf.constant(min_batch, tf.int64), total) - n_primes)
    keep = tf.minimum(tf.maximum(keep, 0), n_comp)
    # Primes sort first (key -1); composites by a uniform key; the first n_primes + keep stay.
    keys = tf.where(labels, tf.constant(-1.0, tf.float64), tf.random.stateless_uniform(tf.shape(labels), seed, dtype=tf.float64))
    kept = tf.argsort(keys)[: n_primes + keep]
    return tf.sort(tf.cast(kept, tf.int64))
