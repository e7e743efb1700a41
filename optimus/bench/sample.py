"""`bench sample`: latent integers to verified odd integers per second, fast path against the
Keras forward, on the same latents."""

from __future__ import annotations

import time

import numpy as np

from optimus import primes
from optimus.bench.timing import SEED, interleaved, median_time, met
from optimus.config import preset
from optimus.sampling import sieve as sampling

SAMPLE_TARGET_PER_S = 1_000_000  # verified outputs per second (the target)
SAMPLE_SIZES = {False: 1_000_000, True: 200_000}  # latents per timed call, by `quick`
REFERENCE_CHUNK = 10_000  # latents per Keras forward on the reference path (its fastest size)

def _trained_like_generator():
    """The default preset's generator with random residue scores (a trained one's spread)."""
    from optimus.nets.networks import build_generator  # TensorFlow: the CLI imports optimus.bench

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
    from optimus.nets.networks import generate  # TensorFlow: the CLI imports optimus.bench

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

    fast_s, ref_s = interleaved(lambda: run(True), lambda: run(False), 2 if quick else 3)
    (odd, flags), (ref_odd, ref_flags) = outputs[True], outputs[False]
    results["identical"] = bool(np.array_equal(odd, ref_odd) and np.array_equal(flags, ref_flags))
    results["fast_s"] = fast_s
    results["reference_s"] = ref_s
    results["fast_per_s"] = n / fast_s
    results["reference_per_s"] = n / ref_s
    results["speedup"] = ref_s / fast_s
    results["met"] = results["fast_per_s"] >= SAMPLE_TARGET_PER_S
    # Where the fast path's time goes.
    gen_s = median_time(lambda: generate(generator, latents, np.random.default_rng(SEED + 1), cfg.temperature), 3)
    reals = ((odd - 1) // 2).astype(np.float64) + 0.5
    verify_s = median_time(lambda: primes.is_prime(primes.to_odd(reals)), 3)
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
        f"  target >= {r['target_per_s']:,}/s: {met(r['met'])} ({r['fast_per_s'] / r['target_per_s']:.2f}x the target)",
    ]
