"""Speed figures, measured side by side in one run so that ratios survive a busy machine.

Each bench is a function `bench_<name>(quick: bool = False) -> dict` of plain numbers (JSON-ready),
registered in BENCHES; `format_table` turns a {name: results} dict into text for the CLI.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

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


def _odd_integers(rng: np.random.Generator, lo: int, hi: int, size: int) -> np.ndarray:
    """`size` uniform random odd integers in [lo, hi) (lo, hi even)."""
    return rng.integers(lo // 2, hi // 2, size=size, dtype=np.int64) * 2 + 1


def bench_primes(quick: bool = False) -> dict:
    """The primes figures: sieve set-up, is_prime against sympy, binned counts.

    quick: ten times fewer integers (100,000 below 10**9 and 10,000 in [2**40, 2**53), instead of
    1,000,000 and 100,000); the binned counts are timed either way.
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

    small = _odd_integers(rng, 0, 10**9, 100_000 if quick else 1_000_000)
    results["below_1e9"] = _versus_sympy(small, repeats=5)
    large = _odd_integers(rng, 2**40, 2**53, 10_000 if quick else 100_000)
    results["2p40_to_2p53"] = _versus_sympy(large, repeats=5)

    for label, hi in (("binned_1e9_s", 10**9), ("binned_1e10_s", 10**10)):
        primes.clear_count_cache()  # time the counts cold, not from the memo
        start = time.perf_counter()
        primes.binned_prime_counts(1, hi, 100, log=True)
        results[label] = time.perf_counter() - start
    return results




def _format_primes(r: dict) -> list[str]:
    lines = [f"  sieve set-up ({r['sieve_setup']}): {r['sieve_setup_s']:.3f} s  [{r['sieve_cache']}]"]
    for key, label in (("below_1e9", "odd n < 10**9"), ("2p40_to_2p53", "odd n in [2**40, 2**53)")):
        v = r[key]
        lines.append(
            f"  is_prime, {v['n']:,} {label}: {v['ours_per_s']:,.0f}/s vs sympy "
            f"{v['sympy_per_s']:,.0f}/s = {v['speedup']:.1f}x, "
            f"{'identical' if v['identical'] else 'ANSWERS DIFFER'}"
        )
    lines.append(f"  binned_prime_counts(1, 10**9, 100, log=True):  {r['binned_1e9_s']:.3f} s")
    lines.append(f"  binned_prime_counts(1, 10**10, 100, log=True): {r['binned_1e10_s']:.3f} s")
    return lines


_FORMATTERS = {"primes": _format_primes}


def format_table(results: dict) -> str:
    """Human-readable text for {bench name: results}, or for one bench's results alone."""
    if "sieve_setup_s" in results:  # a bare bench_primes() result
        results = {"primes": results}
    lines = []
    for name, r in results.items():
        lines.append(f"{name}{' (quick)' if r.get('quick') else ''}")
        formatter = _FORMATTERS.get(name)
        if formatter is None:
            lines.extend(f"  {k}: {v}" for k, v in r.items())
        else:
            lines.extend(formatter(r))
    return "\n".join(lines)


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


def _bare_loop(nets, d_features, d_labels, z, features, steps: int):
    """The same forward and backward passes as an online batch's gradient steps, with nothing
    else: no EWC penalty, no labelling, no metrics, no Fisher. The yardstick for overhead."""
    import keras
    import tensorflow as tf

    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_opt.build(nets.g_vars)
    d_opt.build(nets.d_vars)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def loop():
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = bce(d_labels[:, None], nets.head(d_features, training=True))
            d_opt.apply_gradients(zip(tape.gradient(loss, nets.d_vars), nets.d_vars, strict=True))
            with tf.GradientTape() as tape:
                expected, _, _ = nets._g_terms(z, features)
                loss = bce(tf.ones_like(expected)[:, None], expected[:, None])
            g_opt.apply_gradients(zip(tape.gradient(loss, nets.g_vars), nets.g_vars, strict=True))
        return loss

    return lambda: float(loop())


def bench_train(quick: bool = False) -> dict:
    """One online batch of each preset against a bare tf.function loop; Fisher against one
    batched gradient; sampling throughput."""
    import tensorflow as tf

    from optimus import checkpoint, primes
    from optimus.config import preset
    from optimus.models import build_discriminator, build_generator, generate, propose
    from optimus.training import _Networks, _online_batch

    out = {}
    for name in ("seed", "default"):
        cfg = preset(name, apply_regularizers=False) if name == "seed" else preset(name)
        g, d = build_generator(cfg), build_discriminator(cfg)
        nets = _Networks(cfg, g, d)
        counter = iter(range(1, 10**6))
        # Inputs of the same sizes for the bare loop.
        rng = np.random.default_rng(0)
        latents = rng.integers(cfg.latent_lo, cfg.latent_hi + 1, size=cfg.batch_size)
        reals, _ = propose(g, latents)
        flat = reals.reshape(-1)
        features = nets.encoding(flat.reshape(-1, 1))
        labels = tf.constant(primes.is_prime(primes.to_odd(flat)).astype(np.float32))
        z = tf.constant(latents.reshape(-1, 1), dtype=g.inputs[0].dtype)
        bare_fn = _bare_loop(nets, features, labels, z, features, cfg.steps)
        # Interleaved, so both sides see the same machine load.
        batch, bare = _interleaved(
            lambda: _online_batch(nets, cfg, next(counter), lambda: False),  # noqa: B023
            bare_fn, 1 if quick else 3,
        )
        with tempfile.TemporaryDirectory() as tmp:
            save = _time(lambda: checkpoint.save(tmp, g, d, {"batches_done": np.array(1), **nets.state()}), 1 if quick else 3)  # noqa: B023
        out[f"online_batch_{name}_s"] = batch
        out[f"bare_loop_{name}_s"] = bare
        out[f"online_vs_bare_{name}"] = batch / bare
        out[f"checkpoint_save_{name}_s"] = save
        out[f"batch_shape_{name}"] = f"{cfg.batch_size} latents x {cfg.window if cfg.generator == 'sieve' else 1} candidates, {cfg.steps} steps"

    # Fisher for 1,000 samples against one batched gradient over the same samples (seed D).
    cfg = preset("seed")
    d = build_discriminator(cfg)
    head = d.get_layer("head")
    from optimus.ewc import dense_layers_of, fisher_diagonal

    x = tf.constant(np.random.default_rng(1).uniform(1, 1e6, size=(1000, 1)).astype(np.float32))
    y = tf.constant((np.random.default_rng(2).random(1000) < 0.5).astype(np.float32))

    def log_likelihood(xb, yb):
        p = tf.clip_by_value(tf.reshape(head(xb, training=False), (-1,)), 1e-7, 1 - 1e-7)
        return yb * tf.math.log(p) + (1 - yb) * tf.math.log(1 - p)

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

    # Sampling throughput: latent integers to verified odd integers per second (default preset).
    cfg = preset("default")
    g = build_generator(cfg)
    n = 20_000 if quick else 200_000
    rng = np.random.default_rng(3)
    latents = rng.integers(cfg.latent_lo, cfg.latent_hi + 1, size=n)

    def sample_once():
        odd = primes.to_odd(generate(g, latents, rng))
        primes.is_prime(odd)

    secs = _time(sample_once, 1 if quick else 3)
    out["sampling_outputs_per_s"] = n / secs
    return out


BENCHES = {"primes": bench_primes, "train": bench_train}
