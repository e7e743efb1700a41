"""Sampling, classification and evaluation of a trained model directory.

The definitions behind every figure Optimus reports:
- hit rate: share of the N generated odd integers that are prime (exact primality);
- distinct rate: distinct outputs / N; distinct-prime rate: distinct primes / N;
- same-range probability: the seed's yardstick, the odd-prime density over [min, max];
- magnitude-matched baseline: bin the outputs into log-spaced bins; the sum over bins of the
  share of outputs in the bin times the exact odd-prime density of the bin. It is the hit rate
  of random odd integers drawn at the generator's own magnitudes;
- lift = distinct-prime rate / baseline: 1.0 is chance, and collapsing onto a few primes
  cannot raise it.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimus import limits, primes
from optimus.config import TrainConfig
from optimus.evaluation import metrics
from optimus.evaluation.metrics import accuracy_by_magnitude, generator_report
from optimus.nets import forward
from optimus.nets.forward import generate
from optimus.store import checkpoint, storage
from optimus.validate import check_int, read_integers

__all__ = [
    "Models", "load_models", "sample", "outputs", "discriminate", "discriminator_report",
    "accuracy_by_magnitude", "residue_distribution", "uniform_rng", "evaluate", "parse_integers",
    "check_band", "vetting_report",
]

RESIDUE_PRIMES = tuple(p for p in primes.SIEVE_CHART_PRIMES if p <= 31)  # the residue charts' primes


@dataclass
class Models:
    """A model directory loaded for inference: its networks as NumPy forwards
    (optimus.nets.forward.Generator / Discriminator; `checkpoint.load` gives the Keras models)."""

    generator: object
    discriminator: object
    config: TrainConfig
    name: str
    path: Path
    batches_done: int


def load_models(model_dir) -> Models:
    """Load a model directory for inference, as NumPy forwards (optimus.nets.forward: no
    TensorFlow, so the Streamlit server never imports it); checkpoint.CheckpointError if the
    directory is damaged, its archives exceed their caps, or its networks do not match
    config.json. Reads the committed version of a live run, as `checkpoint.load` does, and
    only `batches_done` of state.npz (the optimiser and EWC state stay on disk)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise checkpoint.CheckpointError(f"{model_dir} does not exist or is not a directory")
    if not checkpoint.resumable(model_dir):
        raise checkpoint.CheckpointError(
            f"{model_dir} holds no model ({', '.join(checkpoint.missing_files(model_dir))} missing)")
    config = checkpoint.load_config(model_dir)
    checkpoint.check_archives(model_dir, config)
    caps = config.parameter_counts()

    def read(paths):
        networks = []
        for name, role in ((storage.GENERATOR, "generator"), (storage.DISCRIMINATOR, "discriminator")):
            cap = caps[role] * limits.KERAS_BYTES_PER_PARAMETER + limits.ARCHIVE_SLACK_BYTES
            try:
                network = forward.load_network(paths[name], min(cap, limits.MAX_KERAS_BYTES))
            except ValueError as exc:  # ForwardError, or over the archive cap
                raise checkpoint.CheckpointError(str(exc).replace(f"{name}.new", name)) from None
            if network.name != role:
                raise checkpoint.CheckpointError(
                    f"{model_dir / name} holds a network named {network.name!r}, not an Optimus {role}")
            networks.append(network)
        try:
            state = checkpoint._read_state(paths[storage.STATE], keys=("batches_done",))
        except checkpoint.CheckpointError as exc:
            raise checkpoint.CheckpointError(str(exc).replace(f"{storage.STATE}.new", storage.STATE)) from None
        return networks[0], networks[1], int(state["batches_done"])

    generator, discriminator, batches = checkpoint._read_committed(model_dir, read)
    _check_matches(model_dir, config, generator, discriminator)
    return Models(generator, discriminator, config, model_dir.name, model_dir, batches)


def _check_matches(model_dir, config: TrainConfig, generator, discriminator) -> None:
    """The networks are the kinds config.json names, with its shapes (else the files come
    from different models): what `checkpoint.load` checks by building the Keras models."""
    sieve = generator.sieve
    kinds = {
        "dense": forward.ScalarInput, "residue": (forward.FactorEncoding if config.disc_factor_slots
                                                  else forward.DivisibilityEncoding),
        "gln": forward.DivisibilityEncoding,
    }
    encoding = discriminator.encoding
    problems = []
    if (config.generator == "sieve") != (sieve is not None):
        problems.append("generator kind")
    elif sieve is not None and (sieve.window, sieve.prime_max, sieve.wide_prime_max, sieve.out_lo, sieve.out_hi,
                                sieve.density_power) != (config.window, config.gen_prime_max,
                                                         config.gen_wide_prime_max, config.out_lo, config.out_hi,
                                                         config.out_density_power):
        problems.append("sieve settings")
    if not isinstance(encoding, kinds[config.discriminator]):
        problems.append("discriminator kind")
    elif config.discriminator != "dense" and int(encoding.config["prime_max"]) != config.disc_prime_max:
        problems.append("disc_prime_max")
    if problems:
        raise checkpoint.CheckpointError(
            f"{model_dir}: the saved networks do not match config.json (preset {config.preset!r}: "
            f"{', '.join(problems)}): the files come from different models")


# Discriminator rejection sampling gives up on an output after this many candidates (keeping
# the last one, marked accepted=False): a discriminator that rejects nearly everything would
# otherwise loop for ever. The shipped model needs 1.0x on average (models/README.md).
MAX_VET_CANDIDATES = 200


def check_band(models: Models, out_lo, out_hi) -> tuple[float, float] | tuple[None, None]:
    """The band [out_lo, out_hi) to sample a sieve generator in (None, None: its own band)."""
    if out_lo is None and out_hi is None:
        return None, None
    if out_lo is None or out_hi is None:
        raise ValueError("give both ends of the band (LO and HI)")
    if models.config.generator != "sieve":
        raise ValueError(f"model {models.name}: only a sieve generator can sample in another band")
    lo, hi = float(out_lo), float(out_hi)
    top = limits.EXACT_LIMIT - 2 * models.config.window - 2
    if not (np.isfinite(lo) and np.isfinite(hi) and 3 <= lo < hi <= top):
        raise ValueError(f"band must satisfy 3 <= LO < HI <= {top:,} (float64's exact range), got [{out_lo}, {out_hi}]")
    return lo, hi


def _draw(models: Models, rng, count: int, band):
    cfg = models.config
    latents = rng.integers(cfg.latent_lo, cfg.latent_hi + 1, size=count)
    reals = generate(models.generator, latents, rng, cfg.temperature, out_lo=band[0], out_hi=band[1])
    if not limits.exact_reals(reals):
        raise ValueError(f"model {models.name}: generator outputs are outside the exact range (max {np.nanmax(reals):.3g})")
    return latents, reals


def sample(models: Models, n: int, seed: int = 0, vet: bool = False, out_lo=None, out_hi=None):
    """N samples: columns latent, n (the odd integer), is_prime (exact), d_prob.

    out_lo/out_hi: a sieve generator's band moved to [out_lo, out_hi) (its learned
    preferences are about residues, not size). vet=True: discriminator rejection sampling
    (Azadi et al. 2019): each candidate the generator draws is accepted with probability
    d_prob, the discriminator's probability that it is prime, else a fresh latent draws
    again; the output distribution is the generator's, weighted by the discriminator. Adds
    the columns `candidates` (how many the discriminator looked at for this output) and
    `accepted` (False only where it gave up after MAX_VET_CANDIDATES).
    """
    n = check_int("number of samples", n, 1, limits.MAX_SAMPLES)
    band = check_band(models, out_lo, out_hi)
    rng = np.random.default_rng([seed, 7919])
    latents, reals = _draw(models, rng, n, band)
    d_prob = discriminate_reals(models, reals)
    columns = {}
    if vet:
        candidates = np.ones(n, dtype=np.int64)
        accepted = rng.random(n) < d_prob
        for _ in range(MAX_VET_CANDIDATES - 1):
            pending = np.flatnonzero(~accepted)
            if not pending.size:
                break
            latents[pending], reals[pending] = _draw(models, rng, pending.size, band)
            d_prob[pending] = discriminate_reals(models, reals[pending])
            candidates[pending] += 1
            accepted[pending] = rng.random(pending.size) < d_prob[pending]
        columns = {"candidates": candidates, "accepted": accepted}
    odd = primes.to_odd(reals)
    return pd.DataFrame({
        "latent": latents.astype(np.int64),
        "n": np.asarray(odd, dtype=np.int64),
        "is_prime": primes.is_prime(odd),
        "d_prob": d_prob,
        **columns,
    })


def outputs(models: Models, n: int, seed: int = 0) -> np.ndarray:
    """The odd integers `sample(models, n, seed)` puts in its column "n", without classifying
    them (no discriminator, no primality test): what the residue charts need."""
    n = check_int("number of samples", n, 1, limits.MAX_SAMPLES)
    _, reals = _draw(models, np.random.default_rng([seed, 7919]), n, (None, None))
    return np.asarray(primes.to_odd(reals), dtype=np.int64)


def discriminate_reals(models: Models, reals) -> np.ndarray:
    """The discriminator's probabilities for reals x (it reads n = 2*floor(x)+1), in row
    blocks (optimus.nets.forward.ROWS) so a request's memory stays bounded."""
    odd = primes.to_odd(np.asarray(reals, dtype=np.float64).reshape(-1))
    return models.discriminator.probabilities(np.asarray(odd, dtype=np.int64).reshape(-1))


def discriminate(models: Models, n_values) -> np.ndarray:
    """The discriminator's probability that each odd integer n is prime.

    The discriminator reads reals x with n = 2*floor(x)+1; we feed x = (n-1)/2 + 1/2 (exact in
    float64). Even n have no such x: they are rejected.
    """
    n = np.asarray(n_values, dtype=np.int64).reshape(-1)
    primes.is_prime(n)  # validates range and type with a clear message
    if np.any(n % 2 == 0):
        bad = int(n[np.flatnonzero(n % 2 == 0)[0]])
        raise ValueError(f"{bad} is even: the discriminator judges odd integers n = 2*floor(x)+1")
    return discriminate_reals(models, (n - 1) // 2 + 0.5)


def discriminator_report(models: Models, n_values, truth=None, prob=None) -> dict:
    """Classification report against exact primality, with ROC curve and by-magnitude rows.

    truth, prob: exact primality of n_values, and this model's probabilities for them, where a
    caller already has them (a sample's is_prime and d_prob columns: `sample` computes both
    with the same functions), so they are not computed twice; checked for shape only."""
    n = np.asarray(n_values, dtype=np.int64).reshape(-1)
    if n.size == 0:
        raise ValueError("no integers to classify")
    for given in (truth, prob):
        if given is not None and np.shape(given) != n.shape:
            raise ValueError(f"{np.shape(given)} values given for {n.size} integers")
    prob = discriminate(models, n) if prob is None else np.asarray(prob, dtype=np.float64)
    truth = primes.is_prime(n) if truth is None else np.asarray(truth, dtype=bool)
    rep = metrics.classification_report(truth, prob)
    rep["roc"] = metrics.roc_curve(truth, prob)
    rep["by_magnitude"] = accuracy_by_magnitude(n, truth, prob)
    rep["prob"] = prob
    rep["truth"] = truth
    return rep


def residue_distribution(n_values, primes_list=RESIDUE_PRIMES):
    """Share of the values in each residue class r mod p (r = 0 means 'multiple of p')."""
    n = np.asarray(n_values, dtype=np.int64)
    rows = []
    for p in primes_list:
        counts = np.bincount(np.mod(n, p), minlength=p)
        share = counts / max(len(n), 1)
        rows.extend({"p": int(p), "residue": int(r), "share": float(share[r])} for r in range(p))
    return pd.DataFrame(rows)


def uniform_rng(seed: int = 0) -> np.random.Generator:
    """The generator of `evaluate`'s uniform odd test integers (primes.uniform_odd) for `seed`:
    the salt keeps them apart from the sample's stream and the figures in models/README.md."""
    return np.random.default_rng([seed, 104729])


def parse_integers(text: str, limit: int = limits.MAX_CLASSIFY) -> np.ndarray:
    """Integers from text (one per line, or separated by commas/spaces); clear errors."""
    return read_integers(io.StringIO(text), limit)


def _summary(report: dict) -> dict:
    """A discriminator report without its per-sample arrays and curve (JSON-sized)."""
    return {k: v for k, v in report.items() if k not in ("prob", "truth", "roc")}


def vetting_report(df) -> dict:
    """Generator figures of a vetted sample (`sample(..., vet=True)`) plus what vetting cost."""
    rep = generator_report(df["n"].to_numpy())
    candidates = df["candidates"].to_numpy()
    rep.update({
        "candidates_per_output": float(candidates.mean()),
        "candidates_max": int(candidates.max()),
        "acceptance_rate": float(len(candidates) / candidates.sum()),
        "gave_up": int((~df["accepted"].to_numpy()).sum()),
    })
    return rep


def evaluate(model_dir, n: int = 10_000, seed: int = 0, uniform_lo: int | None = None,
             uniform_hi: int | None = None, uniform_count: int = 20_000, band_lo=None, band_hi=None,
             vet: bool = True) -> dict:
    """The numbers behind every claim: generator figures (alone, and with discriminator
    rejection sampling when `vet`: reported separately) and discriminator reports on
    (a) the generator's outputs and (b) uniform odd integers over a range (default: the
    generator's output range). band_lo/band_hi sample a sieve generator in another band."""
    t0 = time.time()
    models = load_models(model_dir)
    band = check_band(models, band_lo, band_hi)
    df = sample(models, n, seed, out_lo=band[0], out_hi=band[1])
    gen = generator_report(df["n"].to_numpy())
    vetted = vetting_report(sample(models, n, seed, vet=True, out_lo=band[0], out_hi=band[1])) if vet else None
    on_outputs = discriminator_report(models, df["n"].to_numpy())
    lo = gen["lo"] if uniform_lo is None else uniform_lo
    hi = gen["hi"] if uniform_hi is None else uniform_hi
    uniform_count = check_int("count", uniform_count, 1, limits.MAX_CLASSIFY)
    uni = primes.uniform_odd(lo, hi, uniform_count, uniform_rng(seed))
    on_uniform = discriminator_report(models, uni)
    return {
        "model_dir": str(model_dir),
        "preset": models.config.preset,
        "batches_trained": models.batches_done,
        "samples": n,
        "seed": seed,
        "band": None if band[0] is None else [band[0], band[1]],
        "generator": gen,
        "generator_vetted": vetted,
        "discriminator_on_outputs": _summary(on_outputs),
        "discriminator_on_uniform": {**_summary(on_uniform), "lo": int(lo), "hi": int(hi), "count": int(uniform_count)},
        "seconds": time.time() - t0,
    }
