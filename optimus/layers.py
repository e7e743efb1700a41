"""Custom Keras layers and regularizers, registered so `.keras` files load with safe_mode=True.

No `Lambda` layers anywhere: a Lambda stores Python bytecode, which safe_mode refuses to run.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from optimus.encoding import odd_primes_upto

PACKAGE = "optimus"


@keras.saving.register_keras_serializable(package=PACKAGE)
class OppositeL2(keras.regularizers.Regularizer):
    """The seed's "opposite L2": -coefficient * sum(x**2), rewarding large weights/activations.

    Keras 3 refuses `L2(-1e6)` ("expected a non-negative float"), so the sign lives here.
    Beware: the term is unbounded below; with the seed's 1e6 it drives weights to infinity,
    which is why training checks every batch for inf/NaN and out-of-range outputs.
    """

    def __init__(self, coefficient: float = 1e6):
        self.coefficient = float(coefficient)

    def __call__(self, x):
        return -self.coefficient * tf.reduce_sum(tf.square(tf.cast(x, "float32")))

    def get_config(self):
        return {"coefficient": self.coefficient}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Absolute(keras.layers.Layer):
    """|x|: the seed generator's strictly-positive output (instead of a Lambda)."""

    def call(self, x):
        return tf.abs(x)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScalarInput(keras.layers.Layer):
    """The seed discriminator's input: the generated real itself, as float32 (optionally scaled).

    float32 resolves integers only up to 2**24, one reason the seed cannot learn isPrime.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        return tf.cast(tf.reshape(x, (-1, 1)), "float32") / self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def odd_from_real(x):
    """to_odd in TensorFlow: n = 2*floor(x) + 1 as int64, exact for n < 2**53 (x in float64)."""
    return 2 * tf.cast(tf.floor(tf.cast(x, "float64")), "int64") + 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class DivisibilityEncoding(keras.layers.Layer):
    """Exact residue features of n = 2*floor(x)+1 for the residue discriminator.

    For each odd prime p <= prime_max: 1 if p divides n (and n != p), else 0, computed in
    int64; plus log(n) scaled to [0, 1] over [1, 2**53], since prime density falls as 1/ln n.
    Non-zero residues carry no information about primality (Dirichlet), so one bit per prime
    is the whole of what a residue says; the network learns how much each bit matters.
    """

    def __init__(self, prime_max: int = 10_000, **kwargs):
        # autocast would round the float64 input to float32 and lose every integer > 2**24.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.prime_max = int(prime_max)
        self._primes = tf.constant(odd_primes_upto(self.prime_max), dtype="int64")

    @property
    def size(self) -> int:
        return int(self._primes.shape[0]) + 1

    def call(self, x):
        n = tf.reshape(odd_from_real(x), (-1, 1))
        divides = tf.logical_and(tf.equal(tf.math.floormod(n, self._primes), 0), tf.not_equal(n, self._primes))
        log_n = tf.math.log(tf.cast(n, "float64")) / np.log(2.0**53)
        return tf.concat([tf.cast(divides, "float32"), tf.cast(log_n, "float32")], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size)

    def get_config(self):
        return {**super().get_config(), "prime_max": self.prime_max}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SieveWindow(keras.layers.Layer):
    """The default generator: latent integers -> a window of candidate reals and their logits.

    1. Position: the latent z is scattered by a Weyl sequence u = frac(z * phi) and placed
       log-uniformly in [out_lo, out_hi): n0 = to_odd(exp(log lo + u log(hi/lo)) / 2).
       The magnitude is deliberately not trained: against a discriminator that knows prime
       density falls with size, a trained magnitude collapses onto small numbers (the seed
       fought that with its "opposite L2"). Lift is measured against a magnitude-matched
       baseline, so a fixed magnitude hides nothing.
    2. Candidates: the W odd integers n0, n0+2, ..., n0+2(W-1), returned as reals
       x_j = (n_j - 1)/2 + 1/2 so that to_odd(x_j) = n_j exactly (float64).
    3. Learned preferences: one trainable score per residue class r mod p for every odd prime
       p <= prime_max; a candidate's logit is the sum of the scores of its residues. The
       generator samples one candidate per latent from softmax(logits / temperature). What it
       learns is therefore readable: a low score for residue 0 mod p means "avoid multiples of p".
    """

    PHI = 0.6180339887498949  # frac of the golden ratio: consecutive latents land far apart

    def __init__(self, out_lo=1e6, out_hi=1e9, window=32, prime_max=97, **kwargs):
        kwargs["autocast"] = False  # latents and positions must stay float64 (see DivisibilityEncoding)
        super().__init__(**kwargs)
        self.out_lo, self.out_hi = float(out_lo), float(out_hi)
        self.window = int(window)
        self.prime_max = int(prime_max)
        primes = odd_primes_upto(self.prime_max)
        self._primes = tf.constant(primes, dtype="int64")
        self._offsets = tf.constant(np.concatenate([[0], np.cumsum(primes)[:-1]]), dtype="int64")
        self.scores = self.add_weight(
            name="residue_scores", shape=(int(primes.sum()),), initializer="zeros", trainable=True
        )

    @property
    def primes(self) -> np.ndarray:
        return self._primes.numpy()

    def first_candidates(self, z):
        """The first candidate n0 [B, 1] (int64) of each latent integer's window (z [B])."""
        z = tf.reshape(tf.cast(z, "float64"), (-1, 1))
        u = tf.math.floormod(z * self.PHI, 1.0)
        log_lo, log_hi = np.log(self.out_lo), np.log(self.out_hi)
        x0 = tf.exp(log_lo + u * (log_hi - log_lo)) / 2.0
        return odd_from_real(x0)

    def candidates(self, z):
        """Candidate odd integers [B, W] (int64) for latent integers z [B]: n0, n0+2, ..."""
        return self.first_candidates(z) + 2 * tf.range(self.window, dtype="int64")[None, :]

    def residue_index(self, n):
        """Index into `scores` of (p, n mod p) for each candidate and prime: [B, W, P]."""
        return tf.math.floormod(n[..., None], self._primes) + self._offsets

    def logits_from_index(self, index):
        return tf.reduce_sum(tf.gather(self.scores, index), axis=-1)

    def call(self, z):
        n = self.candidates(z)
        reals = tf.cast((n - 1) // 2, "float64") + 0.5
        return reals, self.logits_from_index(self.residue_index(n))

    def residue_preferences(self) -> dict[int, np.ndarray]:
        """The learned score of every residue class, per prime (for charts)."""
        scores = self.scores.numpy()
        offsets = self._offsets.numpy()
        return {int(p): scores[o : o + p] for p, o in zip(self.primes, offsets, strict=True)}

    def get_config(self):
        return {
            **super().get_config(),
            "out_lo": self.out_lo,
            "out_hi": self.out_hi,
            "window": self.window,
            "prime_max": self.prime_max,
        }
