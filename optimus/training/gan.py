"""The GAN as a Keras model: generator and discriminator, two optimisers, one training step.

In the style of keras-io's `dcgan_overriding_train_step.py`:

    gan = PrimeGAN(cfg, generator, discriminator)
    gan.compile(d_optimizer=keras.optimizers.Adam(...), g_optimizer=keras.optimizers.Adam(...),
                d_loss=d_loss, g_loss=g_loss)          # losses_from_config(cfg) picks them
    logs = gan.train_function(batch)                    # one D step, one G step; a dict of metrics

`train_step` is the per-replica step Keras subclasses override; `train_function` (built by
`make_train_function`) compiles it once and, under a `tf.distribute` strategy, runs it on each
replica's shard (`distribute_batch`) and SUM-reduces the metrics. Losses are scaled with
`tf.nn.compute_average_loss` (batch terms: sum over the shard / the GLOBAL batch) and
`tf.nn.scale_regularization_loss` (terms every replica computes in full: the continual
penalty, weight regularisers), so the gradients Keras sums over replicas are the
single-device ones (tests/test_distribute.py checks the weights match one device).

The discriminator is `encoding -> head` (optimus.nets.networks): the batch arrives encoded, so only
the head trains. A GLN head (optimus.nets.gln) learns by its own local updates: no gradient, no
optimiser variables, no Fisher; it runs on one replica only.

Continual learning goes through the plugins only (optimus.continual): one method per network,
`penalty()` in the loss, `after_step(grads)` after each apply (when the method has one),
`after_task(*sample)` once per online batch (`consolidate`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from optimus import continual
from optimus.continual.fisher import bernoulli_log_likelihood, dense_layers_of
from optimus.continual.step import apply_step
from optimus.nets.networks import discriminator_parts
from optimus.store import checkpoint
from optimus.training import distribute
from optimus.training.online_batch import default_d_rows

# state.npz keys: each network's continual-learning method's state under its prefix. Files
# written before the plugins hold it under EWC's name (shipped models): read, never written.
METHOD_STATE_PREFIXES = {"g": "method_g", "d": "method_d"}
LEGACY_STATE_PREFIXES = {"method_g": "ewc_g", "method_d": "ewc_d"}


def losses_from_config(cfg):
    """(d_loss, g_loss): per-sample Keras losses (reduction=None) named by cfg.d_loss / cfg.g_loss.

    "focal" for the discriminator is class-balanced (alpha = cfg.focal_alpha), as the seed's
    code had it; for the generator it is the README's recipe (its target is always "prime", so
    class balancing has nothing to balance). "bce" is plain cross-entropy (the seed's generator).
    """
    if cfg.d_loss == "focal":
        d_loss = keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction=None)
    else:
        d_loss = keras.losses.BinaryCrossentropy(reduction=None)
    if cfg.g_loss == "focal":
        g_loss = keras.losses.BinaryFocalCrossentropy(gamma=cfg.focal_gamma, reduction=None)
    else:
        g_loss = keras.losses.BinaryCrossentropy(reduction=None)
    return d_loss, g_loss


class PrimeGAN(keras.Model):
    """Generator and discriminator trained against each other on exact primality labels."""

    def __init__(self, cfg, generator: keras.Model, discriminator: keras.Model, **kwargs):
        super().__init__(name="prime_gan", **kwargs)
        self.cfg = cfg
        self.generator, self.discriminator = generator, discriminator
        self.encoding, self.head = discriminator_parts(discriminator)
        self.sieve = cfg.generator == "sieve"
        self.gln = cfg.discriminator == "gln"
        # The strategy whose scope this is built in (the default strategy outside any scope).
        self.strategy = tf.distribute.get_strategy()
        self.replicas = int(self.strategy.num_replicas_in_sync)
        self.distributed = tf.distribute.has_strategy()
        if self.gln and self.replicas > 1:
            raise ValueError(f"the GLN discriminator learns by local updates on one replica and cannot be "
                             f"mirrored over {self.replicas} replicas; use --device auto, cpu or gpu")

    @property
    def g_vars(self) -> list:
        return self.generator.trainable_variables

    @property
    def d_vars(self) -> list:
        # A GLN's neurons learn by their own local updates: no gradient, so no Fisher either.
        return [] if self.gln else self.head.trainable_variables

    @property
    def d_rows(self) -> int:
        """Rows of the discriminator's (padded) batch (optimus.training.online_batch.default_d_rows)."""
        return default_d_rows(self.cfg)

    def compile(self, d_optimizer, g_optimizer, d_loss, g_loss):
        super().compile()
        # Keras' compile() made a default optimiser this model never uses (it has two); dropping
        # it keeps TensorBoard from logging its learning rate as if it were one of them.
        self.optimizer = None
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.d_loss_fn, self.g_loss_fn = d_loss, g_loss
        self.g_optimizer.build(self.g_vars)
        self.d_optimizer.build(self.d_vars)
        g_spec, d_spec = self._sample_specs()
        self.g_method = continual.from_config(self.cfg, continual.Learner(
            self.g_vars, self.g_log_likelihood, self.g_sample_loss, dense_layers_of(self.generator), g_spec))
        self.d_method = continual.from_config(self.cfg, continual.Learner(
            self.d_vars, self.d_log_likelihood, self.d_sample_loss, [] if self.gln else dense_layers_of(self.head),
            d_spec))
        self.train_function = None
        self.make_train_function()

    def _sample_specs(self):
        """Per-sample specs of what `consolidate` hands each method's `after_task` (replay
        allocates its buffers from them): the generator's (z, [window, features]) or (z,), the
        discriminator's (features, label)."""
        raw = self.discriminator.inputs[0]
        features = self.encoding(tf.ones([1, *raw.shape[1:]], raw.dtype))
        f_spec = tf.TensorSpec(features.shape[1:], features.dtype)
        z_spec = tf.TensorSpec([1], self.generator.inputs[0].dtype)
        g_spec = (z_spec, tf.TensorSpec([self.cfg.window, *f_spec.shape], f_spec.dtype)) if self.sieve else (z_spec,)
        return g_spec, (f_spec, tf.TensorSpec([], tf.float32))

    # --- what the discriminator and generator compute ----------------------------------------
    def candidate_probabilities(self, latents, candidate_features, training=True):
        """(probs, d) [B, W]: the generator's choice over each latent's window, and the
        discriminator's probability that each candidate is prime (sieve generator)."""
        _, logits = self.generator(latents, training=training)
        probs = tf.nn.softmax(logits / self.cfg.temperature, axis=1)
        d = tf.reshape(self.head(tf.reshape(candidate_features, (-1, candidate_features.shape[-1])),
                                 training=False), tf.shape(probs))
        return probs, d

    def expected_prime_probability(self, latents, candidate_features, training=True):
        """[B]: per latent, the probability (per the discriminator) that the generator's output
        is prime; for the sieve generator the exact expectation over its window."""
        if self.sieve:
            probs, d = self.candidate_probabilities(latents, candidate_features, training)
            return tf.reduce_sum(probs * d, axis=1)
        x = self.generator(latents, training=training)
        return tf.reshape(self.head(self.encoding(x), training=False), (-1,))

    def d_log_likelihood(self, features, labels):
        """[B] log p(label | candidate) under the discriminator (the Fisher's likelihood)."""
        return bernoulli_log_likelihood(self.head(features, training=False), labels)

    def g_log_likelihood(self, latents, candidate_features=None):
        """[B] log D(G(z)): the generator's log-probability of "prime", per the discriminator
        (no label: the generator's target is always "prime"). The sieve's candidate features
        come as [B, W, F]."""
        return tf.math.log(self.expected_prime_probability(latents, candidate_features, training=False) + 1e-7)

    def d_sample_loss(self, features, labels):
        """[B] the discriminator's training loss per sample."""
        return self.d_loss_fn(labels[:, None], self.head(features, training=True))

    def g_sample_loss(self, latents, candidate_features=None):
        """[B] the generator's training loss per latent (towards "prime")."""
        expected = self.expected_prime_probability(latents, candidate_features)
        return self.g_loss_fn(tf.ones_like(expected)[:, None], expected[:, None])

    # --- one training step ------------------------------------------------------------------
    def train_step(self, batch):
        """One discriminator step and one generator step on this replica's shard of `batch`."""
        d_loss = self._d_step(batch["d_features"], batch["d_labels"], batch["d_weights"], batch["d_total"])
        g_loss, g_regularizer = self._g_step(batch["z"], batch["candidate_features"])
        return {"d_loss": d_loss, "g_loss": g_loss, "g_regularizer": g_regularizer}

    def make_train_function(self, force: bool = False):
        """`train_step`, compiled once per run (tests/test_gan_retrace.py); under a strategy, run on
        every replica with the metrics SUM-reduced (each replica returns its share).

        autograph=False (here, in online_batch and in the Fisher): the step has no Python control
        flow on tensors, and AutoGraph's source conversion was most of the first batch's tracing:
        a new `demo` run's first batch came 6.9 s after the process started instead of 8.7 s
        (2-core machine, quiet), with the same history record."""
        if self.train_function is not None and not force:
            return self.train_function
        if not self.distributed:
            self.train_function = tf.function(self.train_step, reduce_retracing=True, autograph=False)
            return self.train_function
        strategy = self.strategy

        def step(batch):
            per_replica = strategy.run(self.train_step, args=(batch,))
            return tf.nest.map_structure(lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), per_replica)

        self.train_function = tf.function(step, reduce_retracing=True, autograph=False)
        return self.train_function

    def distribute_batch(self, batch: dict) -> dict:
        """The step's tensors of `batch`, as per-replica shards under a strategy (the
        discriminator's rows split by rows, the latents with their window of candidates)."""
        inputs = {k: batch[k] for k in ("z", "candidate_features", "d_features", "d_labels", "d_weights", "d_total")}
        if not self.distributed:
            return inputs
        rows = distribute.split_sizes(int(inputs["d_features"].shape[0]), self.replicas)
        inputs["d_features"], inputs["d_labels"], inputs["d_weights"] = distribute.shard(
            self.strategy, (inputs["d_features"], inputs["d_labels"], inputs["d_weights"]), rows)
        latents = distribute.split_sizes(int(inputs["z"].shape[0]), self.replicas)
        inputs["z"], inputs["candidate_features"] = distribute.shard(
            self.strategy, (inputs["z"], inputs["candidate_features"]), latents)
        return inputs

    def _regularization(self, model, share):
        """model.losses, this replica's part: weight regularisers scaled like the penalty, and
        activity regularisers (Keras divides them by the LOCAL batch) times `share`, the
        replica's fraction of the global batch."""
        losses = [tf.cast(x, "float32") for x in model.losses]
        # model.losses lists add_loss/activity losses first, then one per regularised weight.
        n_weight = sum(1 for v in model.trainable_weights if getattr(v, "regularizer", None) is not None)
        activity, weight = losses[: len(losses) - n_weight], losses[len(losses) - n_weight :]
        total = tf.nn.scale_regularization_loss(tf.add_n([tf.constant(0.0)] + weight))
        if activity:
            total += tf.add_n(activity) * tf.cast(share, "float32")
        return total

    def _d_step(self, features, labels, weights, total_weight):
        """`total_weight`: max(sum of the weights over the whole batch, 1), the mean's divisor."""
        if self.gln:  # the GLN's online local update on the undersampled rows (they come first)
            k = tf.reduce_sum(tf.cast(weights > 0, tf.int32))
            return self.head.update(features[:k], labels[:k])
        persistent = self.d_method.needs_step_gradients
        with tf.GradientTape(persistent=persistent) as tape:
            prob = self.head(features, training=True)
            loss = tf.nn.compute_average_loss(self.d_loss_fn(labels[:, None], prob), sample_weight=weights,
                                              global_batch_size=tf.cast(total_weight, tf.int64))
            task = loss
            if self.cfg.apply_regularizers:
                task += self._regularization(self.head, tf.cast(tf.shape(features)[0], "float32") / float(self.d_rows))
            penalty = tf.nn.scale_regularization_loss(self.d_method.penalty())
            total = task + penalty
        apply_step(self.d_optimizer, self.d_method, self.d_vars, tape, task, penalty, total)
        return loss

    def _g_step(self, latents, candidate_features):
        persistent = self.g_method.needs_step_gradients
        batch = self.cfg.batch_size
        with tf.GradientTape(persistent=persistent) as tape:
            if self.sieve:
                probs, d = self.candidate_probabilities(latents, candidate_features)
                expected = tf.reduce_sum(probs * d, axis=1)  # exact expectation over the window
                entropy = -tf.reduce_sum(probs * tf.math.log(probs + 1e-12), axis=1)
                regularizer = tf.constant(0.0)
            else:
                expected = self.expected_prime_probability(latents, candidate_features)
                entropy = tf.zeros_like(expected)
                regularizer = tf.constant(0.0)
                if self.cfg.apply_regularizers:  # the original loop never added these (ANCHORS.md)
                    regularizer = self._regularization(self.generator, tf.cast(tf.shape(latents)[0], "float32") / batch)
            loss = tf.nn.compute_average_loss(self.g_loss_fn(tf.ones_like(expected)[:, None], expected[:, None]),
                                              global_batch_size=batch)
            task = loss + regularizer - self.cfg.entropy_weight * tf.nn.compute_average_loss(entropy, global_batch_size=batch)
            penalty = tf.nn.scale_regularization_loss(self.g_method.penalty())
            total = task + penalty
        apply_step(self.g_optimizer, self.g_method, self.g_vars, tape, task, penalty, total)
        return loss, regularizer

    # --- end of an online batch: consolidate ----------------------------------------------------
    def consolidate(self, batch: dict, rng: np.random.Generator) -> None:
        """The continual methods' task end, on a sample of this online batch.

        A fixed sample size per run (with replacement when the undersampled set is smaller)
        keeps the Fisher's input shape constant: no retracing, and the Dense shortcut applies.
        """
        cfg = self.cfg
        features = batch["candidate_features"]
        m = min(cfg.fisher_samples, len(batch["labels"]))
        pick = rng.choice(batch["chosen"], size=m, replace=len(batch["chosen"]) < m)
        self.d_method.after_task(tf.gather(features, pick), tf.constant(batch["labels"][pick].astype(np.float32)))
        mg = min(cfg.fisher_samples, cfg.batch_size)
        rows = np.sort(rng.choice(cfg.batch_size, size=mg, replace=False))
        z = tf.gather(batch["z"], rows)
        if self.sieve:
            windows = tf.reshape(features, (cfg.batch_size, cfg.window, features.shape[-1]))
            self.g_method.after_task(z, tf.gather(windows, rows))
        else:
            self.g_method.after_task(z)

    # --- optimiser and continual state, for checkpoints ------------------------------------------
    def state(self) -> dict:
        out = {}
        for prefix, opt in (("opt_g", self.g_optimizer), ("opt_d", self.d_optimizer)):
            for i, v in enumerate(opt.variables):
                out[f"{prefix}/{i}"] = np.asarray(v)
        for prefix, method in ((METHOD_STATE_PREFIXES["g"], self.g_method), (METHOD_STATE_PREFIXES["d"], self.d_method)):
            for k, v in method.state().items():
                out[f"{prefix}/{k}"] = np.asarray(v)
        return out

    def load_state(self, state: dict) -> None:
        for prefix, opt in (("opt_g", self.g_optimizer), ("opt_d", self.d_optimizer)):
            saved = [state[f"{prefix}/{i}"] for i in range(len(opt.variables)) if f"{prefix}/{i}" in state]
            if len(saved) != len(opt.variables):
                raise checkpoint.CheckpointError(f"state.npz: optimiser state {prefix} is incomplete")
            for var, value in zip(opt.variables, saved, strict=True):
                if tuple(var.shape) != value.shape:
                    raise checkpoint.CheckpointError(
                        f"state.npz: {prefix} variable {var.path} has shape {value.shape}, expected {tuple(var.shape)}"
                    )
                var.assign(value)
        for prefix, method in ((METHOD_STATE_PREFIXES["g"], self.g_method), (METHOD_STATE_PREFIXES["d"], self.d_method)):
            found, sub = method_state(state, prefix)
            try:
                method.load_state(sub)
            except ValueError as exc:
                raise checkpoint.CheckpointError(f"state.npz: {found}: {exc}") from None


def method_state(state, prefix: str) -> tuple[str, dict]:
    """(the prefix found, the part of a state.npz dict under it, keys without it) for `prefix`
    (a METHOD_STATE_PREFIXES value); a file written before the plugins holds it under
    LEGACY_STATE_PREFIXES[prefix]."""
    for name in (prefix, LEGACY_STATE_PREFIXES[prefix]):
        sub = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + "/")}
        if sub:
            return name, sub
    return prefix, {}
