"""Speed figures, measured side by side in one run so that ratios survive a busy machine.

Each bench is a function `bench_<name>(quick: bool = False) -> dict` of plain numbers (JSON-ready),
registered in BENCHES; `format_table` turns a {name: results} dict into text for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time

import numpy as np

from optimus.bench.anysize import _format_anysize, _random_odd_bpsw, _shipped_sieve, bench_anysize  # noqa: F401

SEED = 20240501  # fixed, so every run times the same integers


def _best_time(func, repeats: int) -> tuple[float, object]:
    """The fastest of `repeats` calls, in seconds, and the last result.

    The minimum is the figure least disturbed by other processes on this shared 2-core box.
    """
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def _versus_sympy(values: np.ndarray, repeats: int) -> dict:
    """is_prime against a sympy.isprime loop on the same values: elements/s, ratio, agreement."""
    import sympy

    from optimus.primes import is_prime

    ours_s, ours = _best_time(lambda: is_prime(values), repeats)
    # one run of the loop: it is slow, and variance matters far less at this length
    sympy_s, theirs = _best_time(lambda: [sympy.isprime(int(n)) for n in values], 1)
    return {
        "n": int(values.size),
        "ours_s": ours_s,
        "sympy_s": sympy_s,
        "ours_per_s": values.size / ours_s,
        "sympy_per_s": values.size / sympy_s,
        "speedup": sympy_s / ours_s,
        "identical": bool(np.array_equal(ours, np.array(theirs, dtype=bool))),
    }


def bench_primes(quick: bool = False) -> dict:
    """The primes figures: sieve set-up, is_prime against sympy (binned counts: bench_density).

    quick: ten times fewer integers (100,000 below 10**9 and 10,000 in [2**40, 2**53), instead of
    1,000,000 and 100,000).
    """
    from optimus import primes

    rng = np.random.default_rng(SEED)
    results: dict = {"quick": quick}

    start = time.perf_counter()
    how = primes.ensure_sieve()
    results["sieve_setup_s"] = time.perf_counter() - start
    results["sieve_setup"] = how  # "built", "loaded" (from the cache file) or "memory"
    results["sieve_cache"] = str(primes.sieve_cache_path())
    primes.is_prime(np.arange(100))  # the small sieve, so it is not in the first timing

    small = primes.uniform_odd(1, 10**9 - 1, 100_000 if quick else 1_000_000, rng)
    results["below_1e9"] = _versus_sympy(small, repeats=5)
    large = primes.uniform_odd(2**40 + 1, 2**53 - 1, 10_000 if quick else 100_000, rng)
    results["2p40_to_2p53"] = _versus_sympy(large, repeats=5)

    return results  # binned prime counts: see bench_density


def _format_primes(r: dict) -> list[str]:
    lines = [f"  sieve set-up ({r['sieve_setup']}): {r['sieve_setup_s']:.3f} s  [{r['sieve_cache']}]"]
    for key, label in (("below_1e9", "odd n < 10**9"), ("2p40_to_2p53", "odd n in [2**40, 2**53)")):
        v = r[key]
        lines.append(
            f"  is_prime, {v['n']:,} {label}: {v['ours_per_s']:,.0f}/s vs sympy "
            f"{v['sympy_per_s']:,.0f}/s = {v['speedup']:.1f}x, "
            f"{'identical' if v['identical'] else 'ANSWERS DIFFER'}"
        )
    return lines


# --- training ------------------------------------------------------------------------------


def _time(fn, repeat: int) -> float:
    """Median wall time of `repeat` calls, after one warm-up call (tracing, caches)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _interleaved(a, b, repeat: int) -> tuple[float, float]:
    """Median times of `a` and `b`, measured alternately after one warm-up call of each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return float(np.median(ta)), float(np.median(tb))


def _bare_loop(gan, d_features, d_labels, z, features, steps: int):
    """The same forward and backward passes as an online batch's gradient steps, with nothing
    else: no EWC penalty, no labelling, no metrics, no Fisher. The yardstick for overhead."""
    import keras
    import tensorflow as tf

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
    import tensorflow as tf

    from optimus import primes
    from optimus.config import preset
    from optimus.nets.networks import build_discriminator, build_generator, propose
    from optimus.store import checkpoint
    from optimus.training.loop import build_gan, run_online_batch

    out = {}
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
        batch, bare = _interleaved(
            lambda: run_online_batch(gan, cfg, next(counter)),  # noqa: B023
            bare_fn, 1 if quick else 3,
        )
        with tempfile.TemporaryDirectory() as tmp:
            save = _time(lambda: checkpoint.save(tmp, g, d, {"batches_done": np.array(1), **gan.state()}), 1 if quick else 3)  # noqa: B023
        out[f"online_batch_{name}_s"] = batch
        out[f"bare_loop_{name}_s"] = bare
        out[f"online_vs_bare_{name}"] = batch / bare
        out[f"checkpoint_save_{name}_s"] = save
        out[f"batch_shape_{name}"] = f"{cfg.batch_size} latents x {cfg.window if cfg.generator == 'sieve' else 1} candidates, {cfg.steps} steps"

    # Fisher for 1,000 samples against one batched gradient over the same samples (seed D).
    cfg = preset("seed")
    d = build_discriminator(cfg)
    head = d.get_layer("head")
    from optimus.continual.fisher import bernoulli_log_likelihood, dense_layers_of, fisher_diagonal

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
    fisher, grad = _interleaved(
        lambda: fisher_diagonal(log_likelihood, head.trainable_variables, x, y, dense_layers=dense),
        batched_gradient, 2 if quick else 5)
    general = _time(lambda: fisher_diagonal(log_likelihood, head.trainable_variables, x, y), 2 if quick else 5)
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


# --- sampling -------------------------------------------------------------------------------

SAMPLE_TARGET_PER_S = 1_000_000  # verified outputs per second (the target)
SAMPLE_SIZES = {False: 1_000_000, True: 200_000}  # latents per timed call, by `quick`
REFERENCE_CHUNK = 10_000  # latents per Keras forward on the reference path (its fastest size)


def _prepare_numpy(generator, encoding, cfg, d_rows: int, batch_index: int) -> dict:
    """The online batch's data as the loop prepared it before optimus.training.online_batch: NumPy
    latents, labels (the sieve lookup), window residues and undersampling, then tensors."""
    import tensorflow as tf

    from optimus import primes
    from optimus.nets.networks import propose

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
    import keras
    import tensorflow as tf

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
    import tensorflow as tf

    from optimus import primes
    from optimus.config import preset
    from optimus.nets.networks import build_discriminator, build_generator, discriminator_parts
    from optimus.primes.trial_division import TrialDivision
    from optimus.training.online_batch import OnlineBatches, default_d_rows

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

    prep_numpy, prep_graph = _interleaved(
        lambda: force(_prepare_numpy(generator, encoding, cfg, d_rows, next(counter))),
        lambda: force(graph(next(counter))), repeat)
    out["prepare_numpy_s"], out["prepare_graph_s"] = prep_numpy, prep_graph
    out["prepare_graph_vs_numpy"] = prep_graph / prep_numpy
    out["prepare_numpy_labels_graph_rest_s"] = _time(lambda: force(numpy_labels(next(counter))), repeat)

    steps = _simple_steps(generator, head, cfg)
    numpy_steps = tf.function(steps)
    fused = tf.function(lambda seed: steps(graph.build(seed)))  # nothing leaves the graph
    full_numpy, full_graph = _interleaved(
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
    out["prepare_seed_numpy_s"], out["prepare_seed_graph_s"] = _interleaved(
        lambda: force(_prepare_numpy(seed_g, seed_enc, seed_cfg, seed_cfg.batch_size, next(counter))),
        lambda: force(seed_graph(next(counter))), repeat)
    out["prepare_seed_graph_vs_numpy"] = out["prepare_seed_graph_s"] / out["prepare_seed_numpy_s"]

    # Labels alone for one batch's candidates: trial division (3,400 primes) against the sieve.
    n = graph(1)["n_pool"]
    division = TrialDivision()
    trial = tf.function(division.__call__)
    out["label_candidates"], out["label_primes"] = int(n.shape[0]), division.num_primes
    out["trial_division_s"] = _time(lambda: trial(n).numpy(), repeat)
    out["sieve_lookup_s"] = _time(lambda: primes.is_prime(n.numpy()), repeat)
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


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _trained_like_generator():
    """The default preset's generator with random residue scores (a trained one's spread)."""
    from optimus.config import preset
    from optimus.nets.networks import build_generator

    cfg = preset("default")
    generator = build_generator(cfg)
    layer = generator.get_layer("sieve")
    scores = np.random.default_rng(SEED).normal(0.0, 1.5, size=layer.scores.shape)
    layer.scores.assign(scores.astype(np.float32))
    return cfg, generator, layer


def bench_sample(quick: bool = False) -> dict:
    """Sampling throughput: latent integers -> verified odd integers per second.

    Generator forward on the `default` preset, one candidate per latent (Gumbel-max), to_odd and
    exact is_prime, on the fast path (optimus.sampling.sieve, what models.generate runs) and on the
    reference path (the Keras forward, `generate(fast=False)`, in chunks of REFERENCE_CHUNK
    latents: one forward over a million latents would need a [B, 32, 24] int64 tensor of 6 GB),
    timed alternately on the same latents with the same rng seed; the outputs must be identical.
    Set-up is timed apart: the big sieve (built or loaded once per machine, then in memory) and
    the fast path's residue tables (built once per version of the weights).
    """
    from optimus import primes
    from optimus.nets.networks import generate
    from optimus.sampling import sieve as sampling

    n = SAMPLE_SIZES[bool(quick)]
    results: dict = {"quick": quick, "latents": n, "target_per_s": SAMPLE_TARGET_PER_S}
    start = time.perf_counter()
    results["sieve_setup"] = primes.ensure_sieve()
    results["sieve_setup_s"] = time.perf_counter() - start
    cfg, generator, layer = _trained_like_generator()
    start = time.perf_counter()
    sampling.build_tables(layer.scores.numpy(), layer.primes, layer.window)
    results["tables_setup_s"] = time.perf_counter() - start
    results["tables"] = len(sampling.prime_groups(layer.primes, layer.window))
    latents = np.random.default_rng(SEED).integers(cfg.latent_lo, cfg.latent_hi + 1, size=n)

    def pipeline(fast: bool):
        rng = np.random.default_rng(SEED + 1)
        if fast:
            reals = generate(generator, latents, rng, cfg.temperature)
        else:
            reals = np.concatenate([generate(generator, latents[i : i + REFERENCE_CHUNK], rng, cfg.temperature, fast=False)
                                    for i in range(0, n, REFERENCE_CHUNK)])
        odd = primes.to_odd(reals)
        return odd, primes.is_prime(odd)

    outputs = {}

    def run(fast: bool):
        outputs[fast] = pipeline(fast)

    fast_s, ref_s = _interleaved(lambda: run(True), lambda: run(False), 2 if quick else 3)
    (odd, flags), (ref_odd, ref_flags) = outputs[True], outputs[False]
    results["identical"] = bool(np.array_equal(odd, ref_odd) and np.array_equal(flags, ref_flags))
    results["fast_s"] = fast_s
    results["reference_s"] = ref_s
    results["fast_per_s"] = n / fast_s
    results["reference_per_s"] = n / ref_s
    results["speedup"] = ref_s / fast_s
    results["met"] = results["fast_per_s"] >= SAMPLE_TARGET_PER_S
    # Where the fast path's time goes.
    gen_s = _time(lambda: generate(generator, latents, np.random.default_rng(SEED + 1), cfg.temperature), 3)
    reals = ((odd - 1) // 2).astype(np.float64) + 0.5
    verify_s = _time(lambda: primes.is_prime(primes.to_odd(reals)), 3)
    results["generate_per_s"] = n / gen_s
    results["verify_per_s"] = n / verify_s
    results["prime_share"] = float(np.mean(flags))
    return results


def _format_sample(r: dict) -> list[str]:
    return [
        f"  set-up: sieve ({r['sieve_setup']}) {r['sieve_setup_s']:.3f} s; {r['tables']} residue tables "
        f"{r['tables_setup_s']:.3f} s",
        f"  {r['latents']:,} latents -> verified odd integers: fast {r['fast_per_s']:,.0f}/s vs reference "
        f"{r['reference_per_s']:,.0f}/s = {r['speedup']:.1f}x, "
        f"{'identical outputs' if r['identical'] else 'OUTPUTS DIFFER'}",
        f"  fast path alone: generate {r['generate_per_s']:,.0f}/s, to_odd + is_prime {r['verify_per_s']:,.0f}/s; "
        f"{r['prime_share']:.1%} of outputs prime",
        f"  target >= {r['target_per_s']:,}/s: {_met(r['met'])} ({r['fast_per_s'] / r['target_per_s']:.2f}x the target)",
    ]


# --- prime density --------------------------------------------------------------------------

DENSITY_TARGET_S = 2.0  # 100 log bins over [1, 10**9]
DENSITY_BINS = 100


def _binned_seconds(hi: int) -> float:
    """binned_prime_counts(1, hi, 100, log=True), cold (no memoised counts), in seconds."""
    from optimus import primes

    primes.clear_count_cache()
    start = time.perf_counter()
    primes.binned_prime_counts(1, hi, DENSITY_BINS, log=True)
    return time.perf_counter() - start


def bench_density(quick: bool = False) -> dict:
    """Exact prime counts in 100 log bins over [1, 10**9] and [1, 10**10], cold, in the three
    states a process can find the big sieve in: in memory; only in the disk cache (loaded by
    the count, as in a fresh app process); absent (no cache file: a fresh machine).

    quick: one timing per figure instead of the best of three."""
    import os

    from optimus import primes

    repeat = 1 if quick else 3
    results: dict = {"quick": quick, "bins": DENSITY_BINS, "target_s": DENSITY_TARGET_S}
    start = time.perf_counter()
    results["sieve_setup"] = primes.ensure_sieve()
    results["sieve_setup_s"] = time.perf_counter() - start
    for label, hi in (("1e9", 10**9), ("1e10", 10**10)):
        results[f"memory_{label}_s"] = min(_binned_seconds(hi) for _ in range(repeat))
        times = []
        for _ in range(repeat):
            primes.release_sieve()
            times.append(_binned_seconds(hi))
        results[f"disk_{label}_s"] = min(times)
        old = os.environ.get("OPTIMUS_CACHE_DIR")
        with tempfile.TemporaryDirectory() as empty:
            os.environ["OPTIMUS_CACHE_DIR"] = empty
            try:
                primes.release_sieve()
                results[f"no_sieve_{label}_s"] = min(_binned_seconds(hi) for _ in range(repeat))
            finally:
                if old is None:
                    os.environ.pop("OPTIMUS_CACHE_DIR", None)
                else:
                    os.environ["OPTIMUS_CACHE_DIR"] = old
        primes.ensure_sieve()
    worst = max(results[f"{state}_1e9_s"] for state in ("memory", "disk", "no_sieve"))
    results["met"] = worst <= DENSITY_TARGET_S
    return results


def _format_density(r: dict) -> list[str]:
    lines = [f"  set-up: sieve ({r['sieve_setup']}) {r['sieve_setup_s']:.3f} s",
             f"  binned_prime_counts(1, hi, {r['bins']}, log=True), cold:  sieve in memory | from disk cache | no sieve"]
    for label, shown in (("1e9", "10**9 "), ("1e10", "10**10")):
        ratio = f" {r['target_s'] / r[f'no_sieve_{label}_s']:.1f}x under the target" if label == "1e9" else ""
        lines.append(f"    hi = {shown}: {r[f'memory_{label}_s']:8.3f} s | {r[f'disk_{label}_s']:8.3f} s | "
                     f"{r[f'no_sieve_{label}_s']:8.3f} s")
        if ratio:
            lines[-1] += f"  (worst case{ratio})"
    lines.append(f"  target <= {r['target_s']:g} s over [1, 10**9]: {_met(r['met'])}")
    return lines


# --- the app ---------------------------------------------------------------------------------

APP_TARGET_S = 2.0  # warm render of a page
APP_PAGES = ("train", "sample", "discriminator", "density", "continual")


def _copy_models(dest):
    """The repository's shipped models (not mid-training), without logs and locks."""
    import shutil
    from pathlib import Path

    from optimus.store import storage

    repo = Path(__file__).resolve().parents[2]
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted((repo / "models").iterdir()) if (repo / "models").is_dir() else []:
        if (source / storage.CONFIG).exists() and storage.lock_holder(source) is None:
            shutil.copytree(source, dest / source.name,
                            ignore=shutil.ignore_patterns(storage.LOCK, storage.STOP, storage.LOG, "logs"))
            copied.append(source.name)
    return copied


def _page_renders(pages_dir, repeat: int) -> dict:
    """Each page under AppTest: the first run (in this process: imports, model loading,
    sampling), then the best of `repeat` reruns (warm: caches filled)."""
    from streamlit.testing.v1 import AppTest

    out = {}
    for name in APP_PAGES:
        path = pages_dir / f"{name}.py"
        if not path.exists():
            continue
        at = AppTest.from_file(str(path), default_timeout=300)
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        warm = []
        for _ in range(repeat):
            start = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - start)
        problems = [e.value for e in at.exception] + [e.value for e in at.error]
        out[name] = {"first_s": first, "warm_s": min(warm), "met": min(warm) <= APP_TARGET_S,
                     "problems": [str(p)[:200] for p in problems]}
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> int | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except OSError:
        return None


def _browser_page(url: str) -> dict:
    """Load the app's default page (Train) in headless Chromium: seconds until its heading is
    drawn and the script run is over. {} when Playwright or Chromium is missing."""
    import shutil

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"browser": "playwright is not installed"}
    import os

    if not os.path.exists(chromium):
        return {"browser": "chromium is not installed"}
    out = {}
    with sync_playwright() as p:
        start = time.perf_counter()
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        out["browser_launch_s"] = time.perf_counter() - start
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            start = time.perf_counter()
            page.goto(url)
            page.get_by_role("heading", name="Train").first.wait_for()
            out["page_heading_s"] = time.perf_counter() - start
            page.wait_for_timeout(300)  # the status widget shows while the script runs
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
            out["page_done_s"] = time.perf_counter() - start  # includes the 0.3 s wait
            out["page_exceptions"] = page.locator('[data-testid="stException"]').count()
            # Warm: the same page again (a new session, the server's caches filled).
            start = time.perf_counter()
            page.reload()
            page.get_by_role("heading", name="Train").first.wait_for()
            out["reload_heading_s"] = time.perf_counter() - start
        finally:
            browser.close()
    return out


def _cold_start(models_root, browser: bool) -> dict:
    """`streamlit run app.py` from launch to a served page: /_stcore/health and / answering
    200, then (browser) the default page drawn in headless Chromium."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from optimus.store import runs

    repo = Path(__file__).resolve().parents[2]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out: dict = {}
    log = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=repo, env=dict(os.environ, **{runs.MODELS_ENV: str(models_root)}),
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = start + 120
        for key, path in (("health_s", "/_stcore/health"), ("root_s", "/")):
            while _get(url + path) != 200:
                if proc.poll() is not None or time.perf_counter() > deadline:
                    log.seek(0)
                    out["error"] = f"the server did not answer {path}: {log.read()[-500:].decode(errors='replace')}"
                    return out
                time.sleep(0.05)
            out[key] = time.perf_counter() - start
        if browser:
            page = _browser_page(url)
            out.update(page)
            if "page_heading_s" in page:
                out["cold_to_page_s"] = out["root_s"] + page["page_heading_s"]
    finally:
        runs.stop_process_group(proc)
        log.close()
    return out


def bench_app(quick: bool = False) -> dict:
    """Every page's render time under Streamlit's AppTest (first run, then warm rerun) against
    the 2 s target, and the cold start of `streamlit run app.py` to a served page, on a
    temporary copy of the shipped models. quick: one warm rerun per page, no browser."""
    import os
    from pathlib import Path

    from optimus.store import runs

    results: dict = {"quick": quick, "target_s": APP_TARGET_S}
    pages_dir = Path(__file__).resolve().parents[1] / "app" / "pages"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        results["models"] = _copy_models(root)
        old = os.environ.get(runs.MODELS_ENV)
        os.environ[runs.MODELS_ENV] = str(root)
        try:
            results["pages"] = _page_renders(pages_dir, 1 if quick else 3)
        finally:
            if old is None:
                os.environ.pop(runs.MODELS_ENV, None)
            else:
                os.environ[runs.MODELS_ENV] = old
        results["cold_start"] = _cold_start(root, browser=not quick)
    results["met"] = all(p["met"] for p in results["pages"].values())
    return results


def _format_app(r: dict) -> list[str]:
    lines = [f"  models: {', '.join(r['models']) or 'none shipped'}",
             f"  page (AppTest)      first run   warm rerun   target <= {r['target_s']:g} s"]
    for name, p in r["pages"].items():
        line = (f"    {name:<16} {p['first_s']:8.2f} s {p['warm_s']:10.2f} s   {_met(p['met'])} "
                f"({r['target_s'] / p['warm_s']:.1f}x under)" if p["met"] else
                f"    {name:<16} {p['first_s']:8.2f} s {p['warm_s']:10.2f} s   {_met(p['met'])} "
                f"({p['warm_s'] / r['target_s']:.1f}x over)")
        if p["problems"]:
            line += f"  [page shows: {p['problems'][0][:80]}]"
        lines.append(line)
    c = r["cold_start"]
    if "error" in c:
        lines.append(f"  cold start: {c['error']}")
    else:
        text = f"  cold start of `streamlit run app.py`: health 200 after {c['health_s']:.2f} s, / 200 after {c['root_s']:.2f} s"
        lines.append(text)
        if "page_heading_s" in c:
            lines.append(f"  then headless Chromium (launched in {c['browser_launch_s']:.2f} s) shows the Train page's "
                         f"heading after {c['page_heading_s']:.2f} s, its run done after {c['page_done_s']:.2f} s: "
                         f"{c['cold_to_page_s']:.2f} s from launch to a served page"
                         + (f" ({c['page_exceptions']} exceptions)" if c['page_exceptions'] else ""))
            lines.append(f"  reloaded (warm server): heading after {c['reload_heading_s']:.2f} s")
        elif "browser" in c:
            lines.append(f"  browser: {c['browser']}")
    lines.append(f"  every page warm within {r['target_s']:g} s: {_met(r['met'])}")
    return lines


# --- many visitors at once (app-load) ---------------------------------------------------------

VISITOR_SAMPLES = 10_000  # each visitor samples this many from the default model
RACE_MODEL = "race"  # the new model two visitors try to start at the same moment


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of a process in bytes, from /proc (Linux)."""
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


@contextlib.contextmanager
def app_server(models_root, log_path=None, env: dict | None = None):
    """`streamlit run app.py` on a free 127.0.0.1 port over `models_root`, until the block ends
    (then the server and every trainer it started are stopped). Yields {url, pid, port}."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from optimus.store import runs, storage

    repo = Path(__file__).resolve().parents[2]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "wb") if log_path else tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=repo, env=dict(os.environ, **{runs.MODELS_ENV: str(models_root)}, **(env or {})),
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _get(url + "/_stcore/health") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"streamlit did not start: {log.read()[-1000:].decode(errors='replace')}")
            time.sleep(0.1)
        yield {"url": url, "pid": proc.pid, "port": port}
    finally:
        for model_dir in Path(models_root).iterdir():
            if model_dir.is_dir() and storage.lock_holder(model_dir) is not None:
                storage.request_stop(model_dir)
        runs.stop_process_group(proc)
        for model_dir in Path(models_root).iterdir():  # trainers run detached from the server
            deadline = time.monotonic() + 60
            while model_dir.is_dir() and storage.lock_holder(model_dir) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
        log.close()


async def _visitor(browser, url: str, index: int, samples: int, race: asyncio.Barrier | None) -> dict:
    """One visitor: the Sample page with `samples` samples, then the Discriminator and Density
    pages; with `race`, then Start on the Train page for RACE_MODEL in step with the others."""
    import re

    out: dict = {"visitor": index, "times": {}, "exceptions": [], "race": None}
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(300_000)

    async def settle():
        await page.wait_for_timeout(300)
        await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")

    async def exceptions():
        for e in await page.locator('[data-testid="stException"]').all():
            out["exceptions"].append((await e.inner_text())[:300])

    try:
        start = time.perf_counter()
        await page.goto(url + "/sample")
        await page.get_by_role("heading", name="Sample primes").first.wait_for()
        await settle()
        out["times"]["sample_page"] = time.perf_counter() - start
        field = page.get_by_label("Samples", exact=True).first
        start = time.perf_counter()
        await field.fill(str(samples))
        await field.press("Tab")
        await page.get_by_text(f"from the {samples:,} samples above").first.wait_for()
        await settle()
        out["times"]["sample_answer"] = time.perf_counter() - start
        out["sampled"] = True
        await exceptions()
        for link, marker in (("Discriminator vs sympy", re.compile(r"^Disagreements")),
                             ("Prime density", "Primes in range")):
            start = time.perf_counter()
            await page.get_by_role("link", name=link).first.click()
            await page.get_by_text(marker).first.wait_for()
            await settle()
            out["times"][link] = time.perf_counter() - start
            await exceptions()
        if race is not None:
            await page.get_by_role("link", name="Train").first.click()
            await page.get_by_role("heading", name="Train").first.wait_for()
            await settle()
            for label, value in (("Model name (saved as)", RACE_MODEL), ("Batches", 1), ("Batch size", 64),
                                 ("Steps per batch", 1)):
                f = page.get_by_label(label, exact=True).first
                await f.fill(str(value))
                await f.press("Tab")
            await settle()
            await race.wait()
            await page.get_by_role("button", name=re.compile("Start training")).click()
            answer = page.get_by_text(re.compile(
                rf"Started training {RACE_MODEL}|already in progress|was just started|already exists")).first
            await answer.wait_for()
            out["race"] = await answer.inner_text()
            await exceptions()
    finally:
        await context.close()
    return out


async def _visitors(url: str, count: int, samples: int, racers: int) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=_chromium(), headless=True, args=_CHROMIUM_ARGS)
        try:
            race = asyncio.Barrier(racers) if racers else None
            return await asyncio.gather(*(_visitor(browser, url, i, samples, race if i < racers else None)
                                          for i in range(count)))
        finally:
            await browser.close()


_CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    import shutil

    return shutil.which("chromium") or "/usr/bin/chromium"


def visit_app(url: str, pid: int, count: int = 10, samples: int = VISITOR_SAMPLES, racers: int = 2) -> dict:
    """`count` browser sessions at once on one server (each samples, opens the Discriminator
    and Density pages; the first `racers` press Start on one new model name together). Returns
    every session's outcome and page times, and the server's RSS before, at peak and after."""
    before, _ = rss_bytes(pid)
    sessions = asyncio.run(_visitors(url, count, samples, racers))
    time.sleep(2.0)  # let the server drop the closed sessions
    import gc

    gc.collect()
    after, peak = rss_bytes(pid)
    times = sorted(t for s in sessions for t in s["times"].values())
    return {"sessions": sessions, "rss_before": before, "rss_peak": peak, "rss_after": after,
            "page_p50_s": float(np.percentile(times, 50)) if times else None,
            "page_p95_s": float(np.percentile(times, 95)) if times else None}


def bench_app_load(quick: bool = False) -> dict:
    """Page times with many visitors at once (issue 14): 10 headless Chromium sessions (3 with
    quick) on one `streamlit run app.py` over a copy of the shipped models; p50/p95 over every
    page answer of every session, and the server's RSS. Warmed first by one session, so the
    figures are about sharing the server, not importing TensorFlow."""
    from pathlib import Path

    count = 3 if quick else 10
    samples = 1_000 if quick else VISITOR_SAMPLES
    results: dict = {"quick": quick, "sessions": count, "samples": samples}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        results["models"] = _copy_models(root)
        if "default" not in results["models"]:
            return {**results, "error": "no shipped default model to sample from"}
        with app_server(root) as server:
            warm = visit_app(server["url"], server["pid"], 1, samples, racers=0)
            one = sorted(warm["sessions"][0]["times"].values())
            load = visit_app(server["url"], server["pid"], count, samples, racers=0)
    results.update({
        "single_p50_s": float(np.percentile(one, 50)),
        "page_p50_s": load["page_p50_s"], "page_p95_s": load["page_p95_s"],
        "rss_before_mb": warm["rss_before"] / 2**20, "rss_peak_mb": load["rss_peak"] / 2**20,
        "rss_after_mb": load["rss_after"] / 2**20,
        "exceptions": sum(len(s["exceptions"]) for s in load["sessions"]),
    })
    return results


def _format_app_load(r: dict) -> list[str]:
    if "error" in r:
        return [f"  {r['error']}"]
    return [
        f"  {r['sessions']} sessions at once, each sampling {r['samples']:,} and opening 2 more pages: "
        f"page answer p50 {r['page_p50_s']:.2f} s, p95 {r['page_p95_s']:.2f} s "
        f"(one session alone: p50 {r['single_p50_s']:.2f} s, {r['page_p50_s'] / r['single_p50_s']:.1f}x)",
        f"  server RSS: {r['rss_before_mb']:.0f} MB at start, peak {r['rss_peak_mb']:.0f} MB, "
        f"{r['rss_after_mb']:.0f} MB after the sessions closed; exceptions shown: {r['exceptions']}",
    ]


# --- prime counting: primecount against the hand-written routines ---------------------------------


def bench_count(quick: bool = False) -> dict:
    """pi(x) by primecount, by Lucy's algorithm (hand-written, vectorised) and by the sieve
    lookup, cold, at the same x; and 100 log bins to 10^12 and 10^15 as density_table counts them.

    quick: Lucy only to 10^10, primecount to 10^14."""
    from optimus import primes
    from optimus.primes import counting

    primes.ensure_sieve()
    pc = counting.primecount()
    out: dict = {"quick": quick, "primecount": pc is not None, "pi": {}}
    top = 14 if quick else 16
    for e in range(9, top + 1):
        x = 10**e
        row = {}
        if pc is not None:
            row["primecount_s"], v1 = _best_time(lambda x=x: int(pc(x)), 1 if e > 13 else 3)
        if e <= (10 if quick else 11):
            row["lucy_s"], v2 = _best_time(lambda x=x: counting.pi_lucy(x), 1)
            if pc is not None:
                row["agree"] = v1 == v2
        if x < primes.SIEVE_LIMIT:
            row["sieve_lookup_s"], _ = _best_time(lambda x=x: counting.pi_sieve(x), 3)
        out["pi"][f"1e{e}"] = row
    for label, hi in (("1e12", 10**12), ("1e15", 10**15)):
        primes.clear_count_cache()
        out[f"bins100_{label}_s"], _ = _best_time(lambda hi=hi: primes.binned_prime_counts(1, hi, 100, log=True), 1)
    return out


def _format_count(r: dict) -> list[str]:
    lines = ["  pi(x), cold:      primecount |       Lucy | sieve lookup"]
    for label, row in r["pi"].items():
        cells = [f"{row[k]:10.4f} s" if k in row else " " * 12 for k in ("primecount_s", "lucy_s", "sieve_lookup_s")]
        ratio = f"  primecount {row['lucy_s'] / row['primecount_s']:.0f}x faster than Lucy" if "lucy_s" in row and "primecount_s" in row else ""
        lines.append(f"    x = {label:>5}: {' | '.join(cells)}{ratio}")
    lines.append(f"  100 log bins to 10^12: {r['bins100_1e12_s']:.3f} s; to 10^15: {r['bins100_1e15_s']:.2f} s")
    return lines


# --- registry and text ------------------------------------------------------------------------

BENCHES = {"primes": bench_primes, "density": bench_density, "sample": bench_sample,
           "train": bench_train, "batch": bench_batch, "app": bench_app, "app-load": bench_app_load,
           "anysize": bench_anysize, "count": bench_count}

_FORMATTERS = {"primes": _format_primes, "density": _format_density, "sample": _format_sample,
               "train": _format_train, "batch": _format_batch, "app": _format_app, "app-load": _format_app_load,
               "anysize": _format_anysize, "count": _format_count}


def format_table(results: dict) -> str:
    """Human-readable text for {bench name: results}, or for one bench's results alone."""
    if "sieve_setup_s" in results and "below_1e9" in results:  # a bare bench_primes() result
        results = {"primes": results}
    lines = []
    for name, r in results.items():
        lines.append(f"{name}{' (quick)' if r.get('quick') else ''}")
        formatter = _FORMATTERS.get(name)
        try:
            lines.extend(formatter(r) if formatter else [f"  {k}: {v}" for k, v in r.items()])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a partial result: show it raw
            lines.extend(f"  {k}: {v}" for k, v in r.items())
    return "\n".join(lines)
