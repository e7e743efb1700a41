"""The two networks, built from a TrainConfig.

Generator: latent integers -> strictly positive reals x; the odd integer is to_odd(x).
Discriminator: reals x -> probability that to_odd(x) is prime.

Both are functional Keras models made of registered layers (optimus.nets.layers), so they save
as `.keras` and load with safe_mode=True. The discriminator is `input -> encoding -> head`:
the encoding is fixed and exact, the head is what trains, and the training loop calls the two
parts separately so it encodes each batch once rather than once per gradient step.
"""

from __future__ import annotations

import keras
import numpy as np

from optimus.config import TrainConfig
from optimus.nets.gln import build_gln
from optimus.nets.layers import (
    Absolute,
    DivisibilityEncoding,
    FactorDense,
    FactorEncoding,
    OppositeL2,
    ScalarInput,
    SieveWindow,
)
from optimus.sampling import sieve as sampling
from optimus.sampling.sieve import gumbel_keys


def build_generator(cfg: TrainConfig) -> keras.Model:
    if cfg.generator == "sieve":
        z = keras.Input(shape=(1,), dtype="float64", name="latent")
        reals, logits = SieveWindow(cfg.out_lo, cfg.out_hi, cfg.window, cfg.gen_prime_max, cfg.gen_wide_prime_max,
                                    cfg.out_density_power, name="sieve")(z)
        return keras.Model(z, [reals, logits], name="generator")
    # The seed: no biases and LeakyReLU make it positively homogeneous, G(z) = z * G(1) for
    # z > 0, so it can only learn one slope (ANCHORS.md). Kept as the original had it.
    z = keras.Input(shape=(1,), dtype="float32", name="latent")
    h = z
    reg = OppositeL2(cfg.opposite_l2) if cfg.opposite_l2 else None
    for i in range(cfg.gen_depth):
        h = keras.layers.Dense(
            cfg.gen_width, use_bias=False, kernel_initializer="he_normal",
            kernel_regularizer=reg, activity_regularizer=reg, name=f"dense_{i}",
        )(h)
        h = keras.layers.LeakyReLU(negative_slope=cfg.leaky_slope, name=f"leaky_{i}")(h)
    h = keras.layers.Dense(1, use_bias=False, kernel_initializer="he_normal", name="out")(h)
    return keras.Model(z, Absolute(name="abs")(h), name="generator")


def _dense_head(cfg: TrainConfig, input_dim: int) -> keras.Model:
    l2 = keras.regularizers.L2(cfg.disc_l2) if cfg.disc_l2 else None
    head = keras.Sequential(name="head")
    head.add(keras.Input(shape=(input_dim,)))
    for i, width in enumerate(cfg.disc_widths):
        head.add(keras.layers.Dense(width, activation="sigmoid", kernel_regularizer=l2, name=f"dense_{i}"))
        head.add(keras.layers.Dropout(cfg.disc_dropout, name=f"dropout_{i}"))
    head.add(keras.layers.Dense(1, activation="sigmoid", name="prob"))
    return head


def _residue_head(cfg: TrainConfig, input_dim: int) -> keras.Model:
    """Wide & deep: a linear path over the divisibility bits plus a small ReLU MLP.

    "Prime iff no small prime divides n" is linear in the bits (a large negative weight per
    prime), so the wide path learns it in a few batches (measured: balanced accuracy 0.985
    after 10 batches, against 0.80 for the MLP alone); the deep path adds interactions such as
    magnitude-dependent priors.
    """
    features = keras.Input(shape=(input_dim,), name="features")
    wide = keras.layers.Dense(1, kernel_initializer="zeros", name="wide")(features)
    h = keras.layers.Dense(cfg.disc_hidden, activation="relu", name="hidden")(features)
    h = keras.layers.Dropout(cfg.disc_dropout, name="dropout")(h)
    deep = keras.layers.Dense(1, name="deep")(h)
    logit = keras.layers.Add(name="logit")([wide, deep])
    return keras.Model(features, keras.layers.Activation("sigmoid", name="prob")(logit), name="head")


def _factor_head(cfg: TrainConfig, encoding: FactorEncoding) -> keras.Model:
    """`_residue_head` on the factor list: its two Dense layers over the divisibility bits
    become FactorDense gather-sums (the same functions, without a [rows x primes] matrix)."""
    features = keras.Input(shape=(encoding.size,), name="features")
    k, slots = encoding.num_primes, encoding.slots
    wide = FactorDense(1, k, slots, kernel_initializer="zeros", name="wide")(features)
    h = FactorDense(cfg.disc_hidden, k, slots, activation="relu", name="hidden")(features)
    h = keras.layers.Dropout(cfg.disc_dropout, name="dropout")(h)
    deep = keras.layers.Dense(1, name="deep")(h)
    logit = keras.layers.Add(name="logit")([wide, deep])
    return keras.Model(features, keras.layers.Activation("sigmoid", name="prob")(logit), name="head")


def build_discriminator(cfg: TrainConfig) -> keras.Model:
    x = keras.Input(shape=(1,), dtype="float64", name="real")
    if cfg.discriminator == "dense":
        encoding = ScalarInput(name="encoding")
        head = _dense_head(cfg, 1)
    elif cfg.discriminator == "residue" and cfg.disc_factor_slots:
        encoding = FactorEncoding(cfg.disc_prime_max, cfg.disc_factor_slots, name="encoding")
        head = _factor_head(cfg, encoding)
    elif cfg.discriminator == "residue":
        encoding = DivisibilityEncoding(cfg.disc_prime_max, name="encoding")
        head = _residue_head(cfg, encoding.size)
    else:
        # The GLN gates on dense side information: it keeps one bit per prime (its input size
        # grows with disc_prime_max; tiny configs use 200).
        encoding = DivisibilityEncoding(cfg.disc_prime_max, name="encoding")
        # lr 1e-3: on divisibility bits every prime shares one context, and larger steps
        # collapse to one class within a few batches (measured in optimus/nets/gln.py's notes).
        head = build_gln(encoding.size, seed=cfg.seed, learning_rate=1e-3, name="head")
    return keras.Model(x, head(encoding(x)), name="discriminator")


def discriminator_parts(discriminator: keras.Model):
    """(encoding layer, head model) of a discriminator built by build_discriminator."""
    return discriminator.get_layer("encoding"), discriminator.get_layer("head")


def propose(generator: keras.Model, latents, out_lo=None, out_hi=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Candidate reals [B, W] (float64) and their logits [B, W] (None for a one-output model).
    out_lo/out_hi move a sieve generator's band (the seed's generator has none)."""
    z = np.asarray(latents, dtype=np.float64).reshape(-1, 1)
    if out_lo is not None or out_hi is not None:
        out = _sieve(generator)(z, out_lo=out_lo, out_hi=out_hi)
    else:
        out = generator(z.astype(generator.inputs[0].dtype), training=False)
    if isinstance(out, (list, tuple)):
        reals, logits = out
        return np.asarray(reals, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    return np.asarray(out, dtype=np.float64).reshape(-1, 1), None


def choose(reals: np.ndarray, logits: np.ndarray | None, rng: np.random.Generator, temperature: float = 1.0):
    """One real per latent: a Gumbel-max draw from softmax(logits / temperature)."""
    if logits is None:
        return reals[:, 0]

    pick = np.argmax(gumbel_keys(logits, rng, temperature), axis=1)
    return reals[np.arange(len(reals)), pick]


def _sieve(generator):
    layer = sampling.sieve_layer(generator)
    if layer is None:
        raise ValueError("only a sieve generator has a band to move (this generator has no sampling band)")
    return layer


def generate(generator: keras.Model, latents, rng: np.random.Generator, temperature: float = 1.0,
             fast: bool = True, out_lo=None, out_hi=None) -> np.ndarray:
    """The generator's real outputs x (float64) for latent integers; to_odd(x) are the samples.

    For the sieve generator `fast` draws the same samples from per-latent residue tables in
    NumPy (optimus.sampling.sieve: about 15x faster, same candidates and choices for the same rng);
    fast=False runs the Keras forward (`propose`, then `choose`), the reference.
    out_lo/out_hi: sample a sieve generator in another band, with the same learned preferences.
    """
    if fast:
        layer = sampling.sieve_layer(generator)
        if layer is not None:
            return sampling.generate(layer, latents, rng, temperature, out_lo, out_hi)
    reals, logits = propose(generator, latents, out_lo, out_hi)
    return choose(reals, logits, rng, temperature)


def residue_preferences(generator: keras.Model) -> dict[int, np.ndarray] | None:
    """Learned score per residue class mod each small prime (sieve generator), else None."""
    try:
        return generator.get_layer("sieve").residue_preferences()
    except ValueError:
        return None
