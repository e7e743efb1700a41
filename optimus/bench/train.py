"""`bench train` (an online batch of each preset against a bare loop; Fisher against one
batched gradient) and `bench batch` (the batch's preparation: NumPy against one graph).

Imports TensorFlow at the top: optimus.bench loads this module on first use (`_train_section`)."""

from __future__ import annotations

import tempfile

import keras
import numpy as np
import tensorflow as tf

from optimus import primes
from optimus.bench.timing import interleaved, median_time
from optimus.config import preset
from optimus.continual.fisher import bernoulli_log_likelihood, dense_layers_of, fisher_diagonal
from optimus.nets.networks import build_discriminator, build_generator, discriminator_parts, propose
from optimus.primes.trial_division import TrialDivision
from optimus.store import checkpoint
from optimus.training.loop import build_gan, run_online_batch
from optimus.training.online_batch import OnlineBatches, default_d_rows


def _bare_loop(gan, d_features, d_labels, z, features, steps: int):
    """The same forward and backward passes as an online batch's gradient steps, with nothing
    else: no EWC penalty, no labelling, no metrics, no Fisher. The yardstick for overhead."""
    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_opt.build(gan.g_vars)
    d_opt.build(gan.d_vars)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def loop():
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = bce(d_labels[:, None], gan.head(d_features, training=True))
            d_opt.apply_gradients(zip(tape.gradient(loss, gan.d_vars), gan.d_vars, strict=True))
            with tf.GradientTape() as tape:
                expected = gan.expected_prime_probability(z, features)
                loss = bce(tf.ones_like(expected)[:, None], expected[:, None])
            g_opt.apply_gradients(zip(tape.gradient(loss, gan.g_vars), gan.g_vars, strict=True))
        return loss

    return lambda: float(loop())


def bench_train(quick: bool = False) -> dict:
    """One online batch of each preset against a bare tf.function loop; Fisher against one
    batched gradient."""
    out: dict = {"quick": quick}
    for name in ("seed", "default"):
        cfg = preset(name, apply_regularizers=False) if name == "seed" else preset(name)
        g, d = build_generator(cfg), build_discriminator(cfg)
        gan = build_gan(cfg, g, d)
        counter = iter(range(1, 10**6))
        # Inputs of the same sizes for the bare loop.
        rng = np.random.default_rng(0)
        latents = rng.integers(cfg.latent_lo, cfg.latent_hi + 1, size=cfg.batch_size)
        reals, _ = propose(g, latents)
        flat = reals.reshape(-1)
        features = gan.encoding(flat.reshape(-1, 1))
        labels = tf.constant(primes.is_prime(primes.to_odd(flat)).astype(np.float32))
        z = tf.constant(latents.reshape(-1, 1), dtype=g.inputs[0].dtype)
        bare_fn = _bare_loop(gan, features, labels, z, features, cfg.steps)
        # Interleaved, so both sides see the same machine load.
        batch, bare = interleaved(
            lambda: run_online_batch(gan, cfg, next(counter)),  # noqa: B023
            bare_fn, 1 if quick else 3,
        )
        with tempfile.TemporaryDirectory() as tmp:
            save = median_time(lambda: checkpoint.save(tmp, g, d, {"batches_done": np.array(1), **gan.state()}), 1 if quick else 3)  # noqa: B023
        out[f"online_batch_{name}_s"] = batch
        out[f"bare_loop_{name}_s"] = bare
        out[f"online_vs_bare_{name}"] = batch / bare
        out[f"checkpoint_save_{name}_s"] = save
        out[f"batch_shape_{name}"] = f"{cfg.batch_size} latents x {cfg.window if cfg.generator == 'sieve' else 1} candidates, {cfg.steps} steps"

    # Fisher for 1,000 samples against one batched gradient over the same samples (seed D).
    cfg = preset("seed")
    d = build_discriminator(cfg)
    head = d.get_layer("head")

    x = tf.constant(np.random.default_rng(1).uniform(1, 1e6, size=(1000, 1)).astype(np.float32))
    y = tf.constant((np.random.default_rng(2).random(1000) < 0.5).astype(np.float32))

    def log_likelihood(xb, yb):
        return bernoulli_log_likelihood(head(xb, training=False), yb)

    @tf.function
    def batched_gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(log_likelihood(x, y))
        return tape.gradient(loss, head.trainable_variables)

    dense = dense_layers_of(head)
    fisher, grad = interleaved(
        lambda: fisher_diagonal(log_likelihood, head.trainable_variables, x, y, dense_layers=dense),
        batched_gradient, 2 if quick else 5)
    general = median_time(lambda: fisher_diagonal(log_likelihood, head.trainable_variables, x, y), 2 if quick else 5)
    out["fisher_1000_general_path_s"] = general
    out["fisher_1000_s"] = fisher
    out["batched_gradient_1000_s"] = grad
    out["fisher_vs_gradient"] = fisher / grad
    return out  # sampling throughput: see bench_sample


def _format_train(r: dict) -> list[str]:
    lines = []
    for name in ("seed", "default"):
        if f"online_batch_{name}_s" not in r:
            continue
        lines.append(
            f"  {name} online batch ({r[f'batch_shape_{name}']}): {r[f'online_batch_{name}_s']:.3f} s vs bare "
            f"loop {r[f'bare_loop_{name}_s']:.3f} s = {r[f'online_vs_bare_{name}']:.2f}x; "
            f"checkpoint save {r[f'checkpoint_save_{name}_s']:.3f} s"
        )
    if "fisher_1000_s" in r:
        lines.append(
            f"  Fisher, 1,000 samples: {r['fisher_1000_s']:.4f} s vs one batched gradient "
            f"{r['batched_gradient_1000_s']:.4f} s = {r['fisher_vs_gradient']:.2f}x "
            f"(general path {r['fisher_1000_general_path_s']:.4f} s)"
        )
    return lines


def _prepare_numpy(generator, encoding, cfg, d_rows: int, batch_index: int) -> dict:
    """The online batch's data as the loop prepared it before optimus.training.online_batch: NumPy
    latents, labels (the sieve lookup), window residues and undersampling, then tensors."""
    rng = np.random.default_rng([cfg.seed, batch_index])
    latents = rng.integers(cfg.latent_lo, cfg.latent_hi + 1, size=cfg.batch_size)
    reals, _ = propose(generator, latents)
    n_pool = primes.to_odd(reals.reshape(-1))
    labels = primes.is_prime(n_pool)
    if cfg.generator == "sieve":
        features = encoding.window_features(n_pool[:: cfg.window], cfg.window)
    else:
        features = encoding(reals.reshape(-1, 1))
    # The old NumPy undersampling, kept here only as this reference's (online_batch.undersample
    # is the rule the loop runs): all primes, then composites to the ratio, at least min_batch.
    prime_idx, comp_idx = np.flatnonzero(labels), np.flatnonzero(~labels)
    keep = int(round(len(prime_idx) * (1.0 - cfg.prime_ratio) / cfg.prime_ratio))
    keep = min(max(keep, min(cfg.min_batch, len(labels)) - len(prime_idx), 0), len(comp_idx))
    chosen = np.sort(np.concatenate([prime_idx, rng.choice(comp_idx, size=keep, replace=False)]))
    if len(chosen) > d_rows:
        chosen = np.sort(rng.choice(chosen, size=d_rows, replace=False))
    pad = np.zeros(d_rows, dtype=np.int64)
    pad[: len(chosen)] = chosen
    weights = np.zeros(d_rows, dtype=np.float32)
    weights[: len(chosen)] = 1.0
    return {"z": tf.constant(latents.reshape(-1, 1), dtype=generator.inputs[0].dtype), "candidate_features": features,
            "d_features": tf.gather(features, pad), "d_labels": tf.constant(labels[pad].astype(np.float32)),
            "d_weights": tf.constant(weights), "d_total": tf.constant(max(float(len(chosen)), 1.0), dtype=tf.float32)}


def _simple_steps(generator, head, cfg):
    """cfg.steps plain discriminator and generator steps (weighted cross-entropy; the sieve
    generator's exact expectation over its window), traceable: the same work for either
    preparation, so the difference between two online batches is the preparation's."""
    g_vars, d_vars = generator.trainable_variables, head.trainable_variables
    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_opt.build(g_vars)
    d_opt.build(d_vars)

    def steps(b):
        d_loss = g_loss = tf.constant(0.0)
        for _ in tf.range(cfg.steps):
            with tf.GradientTape() as tape:
                rows = keras.losses.binary_crossentropy(b["d_labels"][:, None], head(b["d_features"], training=True))
                d_loss = tf.reduce_sum(rows * b["d_weights"]) / b["d_total"]
            d_opt.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars, strict=True))
            with tf.GradientTape() as tape:
                _, logits = generator(b["z"], training=True)
                probs = tf.nn.softmax(logits, axis=1)
                d = tf.reshape(head(b["candidate_features"], training=False), tf.shape(probs))
                g_loss = -tf.reduce_mean(tf.math.log(tf.reduce_sum(probs * tf.cast(d, probs.dtype), axis=1) + 1e-7))
            g_opt.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars, strict=True))
        return d_loss, g_loss

    return steps


def bench_batch(quick: bool = False) -> dict:
    """An online batch of the default preset: the NumPy preparation (the loop's before
    optimus.training.online_batch) against the one-graph batch (optimus.training.online_batch), alone and with
    cfg.steps simple gradient steps; and exact labels by trial division against the sieve."""
    repeat = 2 if quick else 5
    cfg = preset("default")
    generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    encoding, head = discriminator_parts(discriminator)
    d_rows = default_d_rows(cfg)
    graph = OnlineBatches(generator, encoding, cfg, d_rows=d_rows, graph=True)
    numpy_labels = OnlineBatches(generator, encoding, cfg, d_rows=d_rows, graph=False)
    counter = iter(range(1, 10**6))
    out = {"quick": quick, "batch_shape": f"{cfg.batch_size} latents x {cfg.window} candidates, "
                                          f"{d_rows} discriminator rows, {cfg.steps} steps"}

    def force(b):  # a batch is ready when its tensors are: read one scalar of each
        return [float(tf.reduce_sum(tf.cast(b[k], tf.float32))) for k in ("d_features", "candidate_features", "z")]

    prep_numpy, prep_graph = interleaved(
        lambda: force(_prepare_numpy(generator, encoding, cfg, d_rows, next(counter))),
        lambda: force(graph(next(counter))), repeat)
    out["prepare_numpy_s"], out["prepare_graph_s"] = prep_numpy, prep_graph
    out["prepare_graph_vs_numpy"] = prep_graph / prep_numpy
    out["prepare_numpy_labels_graph_rest_s"] = median_time(lambda: force(numpy_labels(next(counter))), repeat)

    steps = _simple_steps(generator, head, cfg)
    numpy_steps = tf.function(steps)
    fused = tf.function(lambda seed: steps(graph.build(seed)))  # nothing leaves the graph
    full_numpy, full_graph = interleaved(
        lambda: [float(x) for x in numpy_steps(_prepare_numpy(generator, encoding, cfg, d_rows, next(counter)))],
        lambda: [float(x) for x in fused(graph.seed(next(counter)))], repeat)
    out["online_numpy_s"], out["online_graph_s"] = full_numpy, full_graph
    out["online_graph_vs_numpy"] = full_graph / full_numpy

    # The seed preset: a dense generator, a scalar input, labels by trial division in the graph.
    seed_cfg = preset("seed")
    seed_g, seed_d = build_generator(seed_cfg), build_discriminator(seed_cfg)
    seed_enc, _ = discriminator_parts(seed_d)
    seed_graph = OnlineBatches(seed_g, seed_enc, seed_cfg)
    out["seed_graph_labels"] = bool(seed_graph(1)["graph"])
    out["prepare_seed_numpy_s"], out["prepare_seed_graph_s"] = interleaved(
        lambda: force(_prepare_numpy(seed_g, seed_enc, seed_cfg, seed_cfg.batch_size, next(counter))),
        lambda: force(seed_graph(next(counter))), repeat)
    out["prepare_seed_graph_vs_numpy"] = out["prepare_seed_graph_s"] / out["prepare_seed_numpy_s"]

    # Labels alone for one batch's candidates: trial division (3,400 primes) against the sieve.
    n = graph(1)["n_pool"]
    division = TrialDivision()
    trial = tf.function(division.__call__)
    out["label_candidates"], out["label_primes"] = int(n.shape[0]), division.num_primes
    out["trial_division_s"] = median_time(lambda: trial(n).numpy(), repeat)
    out["sieve_lookup_s"] = median_time(lambda: primes.is_prime(n.numpy()), repeat)
    out["labels_identical"] = bool(np.array_equal(trial(n).numpy(), primes.is_prime(n.numpy())))
    return out


def _format_batch(r: dict) -> list[str]:
    return [
        f"  default preset: {r['batch_shape']}",
        f"  preparation: NumPy {r['prepare_numpy_s'] * 1e3:.0f} ms, one graph {r['prepare_graph_s'] * 1e3:.0f} ms "
        f"(graph/NumPy {r['prepare_graph_vs_numpy']:.2f}); NumPy labels + graph rest {r['prepare_numpy_labels_graph_rest_s'] * 1e3:.0f} ms",
        f"  online batch with steps: NumPy prep {r['online_numpy_s']:.2f} s, one graph {r['online_graph_s']:.2f} s "
        f"(graph/NumPy {r['online_graph_vs_numpy']:.2f})",
        f"  seed preset preparation: NumPy {r['prepare_seed_numpy_s'] * 1e3:.1f} ms, graph {r['prepare_seed_graph_s'] * 1e3:.1f} ms "
        f"(graph/NumPy {r['prepare_seed_graph_vs_numpy']:.2f}; labels in the graph: {r['seed_graph_labels']})",
        f"  labels of {r['label_candidates']:,} candidates: trial division by {r['label_primes']:,} primes "
        f"{r['trial_division_s'] * 1e3:.0f} ms, sieve lookup {r['sieve_lookup_s'] * 1e3:.1f} ms, "
        f"identical: {r['labels_identical']}",
    ]
