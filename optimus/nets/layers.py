"""Custom Keras layers and regularizers, registered so `.keras` files load with safe_mode=True.

No `Lambda` layers anywhere: a Lambda stores Python bytecode, which safe_mode refuses to run.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from optimus.nets.encoding import factor_lists, window_factor_lists
from optimus.primes import small_odd_primes

PACKAGE = "optimus"
# The residue encodings' magnitude feature is log n / LOG_N_SCALE: [0, 1) over float64's exact
# integers [1, 2**53), since prime density falls as 1/ln n.
LOG_N_SCALE = np.log(2.0**53)


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


def log_n_feature(n):
    """[B, 1] float32: log n / LOG_N_SCALE for the B integers of `n` (any shape), the column
    every residue encoding ends with."""
    return tf.cast(tf.math.log(tf.cast(tf.reshape(n, (-1, 1)), "float64")) / LOG_N_SCALE, "float32")


def factor_layout(rows, cols, total, slots: int, num_primes: int):
    """FactorEncoding's factor lists [total, slots] float32 from the (row, prime index) pairs
    of the primes dividing each row's n (int64 tensors, any order; 0-based indices below
    `num_primes`): per row the 1-based indices, largest first, 0 for an empty slot, the largest
    kept when more than `slots` divide. (NumPy's twin for the fast paths:
    optimus.nets.encoding.factor_layout, the same values.)"""
    key = tf.sort(rows * num_primes + (num_primes - 1 - cols))  # by row, then the largest prime index first
    rows, cols = key // num_primes, num_primes - 1 - key % num_primes
    rank = tf.range(tf.size(rows, out_type=tf.int64)) - tf.searchsorted(rows, rows, side="left", out_type=tf.int64)
    fits = rank < slots
    index = tf.stack([tf.boolean_mask(rows, fits), tf.boolean_mask(rank, fits)], axis=1)
    factors = tf.scatter_nd(index, tf.cast(tf.boolean_mask(cols, fits) + 1, tf.int32),
                            tf.stack([tf.cast(total, tf.int64), tf.constant(slots, tf.int64)]))
    return tf.cast(factors, tf.float32)


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
        self._primes = tf.constant(small_odd_primes(self.prime_max), dtype="int64")

    @property
    def size(self) -> int:
        return int(self._primes.shape[0]) + 1

    def call(self, x):
        n = tf.reshape(odd_from_real(x), (-1, 1))
        divides = tf.logical_and(tf.equal(tf.math.floormod(n, self._primes), 0), tf.not_equal(n, self._primes))
        return tf.concat([tf.cast(divides, "float32"), log_n_feature(n)], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size)

    def get_config(self):
        return {**super().get_config(), "prime_max": self.prime_max}


def _floormod_rows(n, primes, chunk: int = 1024):
    """n mod p [B, K] (int64) for n [B, 1] and primes [K], computed `chunk` rows at a time so
    the peak memory stays chunk x K x 8 bytes (20,000 rows x 3,400 primes at once: 540 MB)."""
    rows = tf.shape(n)[0]
    pad = (-rows) % chunk
    padded = tf.reshape(tf.pad(tf.reshape(n, (-1,)), [[0, pad]], constant_values=1), (-1, chunk, 1))
    out = tf.map_fn(lambda block: tf.math.floormod(block, primes), padded,
                    fn_output_signature=tf.TensorSpec((chunk, None), tf.int64))
    return tf.reshape(out, (-1, tf.shape(primes)[0]))[:rows]


@keras.saving.register_keras_serializable(package=PACKAGE)
class FactorEncoding(keras.layers.Layer):
    """n = 2*floor(x)+1 as the list of its odd prime factors p <= prime_max, plus log n.

    The same information as DivisibilityEncoding's one bit per prime, in sparse form: output
    [B, slots + 1] float32, columns 0..slots-1 the 1-based indices (into the odd primes up to
    prime_max) of the primes dividing n (n != p), 0 for an empty slot; the last column log n
    scaled like DivisibilityEncoding's. Indices are exact in float32 (< 2**24). 13 slots hold
    every n < 2**53 (3*5*...*47 > 2**53); with fewer, the largest factors are kept.
    """

    def __init__(self, prime_max: int = 31_623, slots: int = 13, **kwargs):
        kwargs["autocast"] = False  # see DivisibilityEncoding
        super().__init__(**kwargs)
        self.prime_max, self.slots = int(prime_max), int(slots)
        self._primes = tf.constant(small_odd_primes(self.prime_max), dtype="int64")

    @property
    def num_primes(self) -> int:
        return int(self._primes.shape[0])

    @property
    def size(self) -> int:
        return self.slots + 1

    def call(self, x):
        n = tf.reshape(odd_from_real(x), (-1, 1))
        divides = tf.logical_and(tf.equal(_floormod_rows(n, self._primes), 0), tf.not_equal(n, self._primes))
        hits = tf.where(divides)  # [H, 2] (row, prime index)
        factors = factor_layout(hits[:, 0], hits[:, 1], tf.shape(n, out_type=tf.int64)[0], self.slots, self.num_primes)
        return tf.concat([factors, log_n_feature(n)], axis=1)

    def features(self, n):
        """This layer's output for odd integers n [B] (int64), from NumPy's `factor_lists`
        (the same values, about 3x faster on CPU)."""
        n = np.asarray(n, dtype=np.int64).reshape(-1)
        return self._with_log(factor_lists(n, self._primes.numpy(), self.slots), n)

    def _with_log(self, factors: np.ndarray, n: np.ndarray):
        return tf.concat([tf.constant(factors.astype(np.float32)), log_n_feature(tf.constant(n))], axis=1)

    def window_features(self, n0, window: int):
        """This layer's output for the candidates n0 + 2j (j < window) of windows starting at
        odd n0 [B], [B * window, size], from `window_factor_lists` (the same values, faster)."""
        n0 = np.asarray(n0, dtype=np.int64).reshape(-1)
        factors = window_factor_lists(n0, window, self._primes.numpy(), self.slots)
        return self._with_log(factors, (n0[:, None] + 2 * np.arange(window, dtype=np.int64)).reshape(-1))

    def window_features_graph(self, n, window: int):
        """`window_features` in TensorFlow (traceable): n [B * window] int64, rows of `window`
        consecutive odd candidates. The same [B, K] residue trick as
        `encoding.window_factor_lists` (a prime p >= window divides at most one candidate of a
        window), laid out by `factor_layout`."""
        table_np = self._primes.numpy()  # static, so the loop over multiples unrolls
        table, num = self._primes, self.num_primes
        n0 = tf.reshape(n, (-1, window))[:, 0]
        small = int(np.searchsorted(table_np, window))
        first = tf.math.floormod((table[None, :] - tf.math.floormod(n0[:, None], table[None, :])) * ((table + 1) // 2),
                                 table[None, :])  # [B, K]: j with p | n0 + 2j
        rows, cols = [], []
        for m in range((window - 1) // int(table_np[0]) + 1):
            ks = num if m == 0 else small
            j = first[:, :ks] + tf.constant(m, tf.int64) * table[None, :ks]
            hits = tf.where(j < window)  # [H, 2] (b, k)
            jj = tf.gather_nd(j, hits)
            b, k = hits[:, 0], hits[:, 1]
            keep = tf.not_equal(tf.gather(n0, b) + 2 * jj, tf.gather(table, k))
            rows.append(tf.boolean_mask(b * window + jj, keep))
            cols.append(tf.boolean_mask(k, keep))
        factors = factor_layout(tf.concat(rows, 0), tf.concat(cols, 0), tf.shape(n, out_type=tf.int64)[0],
                                self.slots, num)
        return tf.concat([factors, log_n_feature(n)], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size)

    def get_config(self):
        return {**super().get_config(), "prime_max": self.prime_max, "slots": self.slots}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FactorDense(keras.layers.Layer):
    """Dense over [one bit per odd prime <= prime_max, log n], read from FactorEncoding's
    factor list: the sum of the kernel rows of n's prime factors (a gather-sum, as an
    embedding bag), plus log n times its own row, plus the bias. Exactly what
    Dense(units)(DivisibilityEncoding(prime_max)(x)) computes, without the [B, K] matrix."""

    def __init__(self, units: int, num_primes: int, slots: int, activation=None,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_primes, self.slots = int(units), int(num_primes), int(slots)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel = self.add_weight(name="kernel", shape=(self.num_primes, self.units),
                                      initializer=self.kernel_initializer)
        self.log_kernel = self.add_weight(name="log_kernel", shape=(1, self.units), initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def build(self, input_shape=None):  # weights exist already (created in __init__)
        self.built = True

    def call(self, features):
        index = tf.cast(features[:, : self.slots], "int32")
        # Slot value 0 is empty: gather row 0 and zero it. Gathering straight from the variable
        # keeps its gradient a fixed-size IndexedSlices, which the per-sample Fisher
        # (tf.vectorized_map) can batch; a gather from concat([zeros, kernel]) cannot.
        present = tf.cast(index > 0, self.kernel.dtype)[..., None]
        out = tf.reduce_sum(tf.gather(self.kernel, tf.maximum(index - 1, 0)) * present, axis=1)
        out = out + features[:, self.slots :] @ self.log_kernel + self.bias
        return self.activation(out)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_primes": self.num_primes, "slots": self.slots,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SieveWindow(keras.layers.Layer):
    """The default generator: latent integers -> a window of candidate reals and their logits.

    1. Position: the latent z is scattered by a Weyl sequence u = frac(z * phi) and placed in
       [out_lo, out_hi) with density proportional to n**-density_power (1: log-uniform):
       n0 = to_odd(x0), x0 = F^-1(u) / 2. The magnitude is deliberately not trained: against
       a discriminator that knows prime density falls with size, a trained magnitude
       collapses onto small numbers (the seed fought that with its "opposite L2"). Lift is
       measured against a magnitude-matched baseline, so a fixed magnitude hides nothing.
    2. Candidates: the W odd integers n0, n0+2, ..., n0+2(W-1), returned as reals
       x_j = (n_j - 1)/2 + 1/2 so that to_odd(x_j) = n_j exactly (float64).
    3. Learned preferences: one trainable score per residue class r mod p for every odd prime
       p <= prime_max; and, for every odd prime p in (prime_max, wide_prime_max], one
       "p divides n" weight w_p = a + b*t_p, t_p = log(p / p_1) / log(p_K / p_1) in [0, 1]
       (a and b learned). A candidate's logit is the sum of its residues' scores and of w_p
       over the wide primes dividing it. The generator samples one candidate per latent from
       softmax(logits / temperature). What it learns is readable: a low score for residue 0
       mod p means "avoid multiples of p".
    A wide prime exceeds the window (W <= p), so it divides at most one candidate: the one at
    j = (-n0) * 2^-1 mod p, if j < W. That costs [B, K] residues instead of [B, W, K].
    """

    PHI = 0.6180339887498949  # frac of the golden ratio: consecutive latents land far apart

    def __init__(self, out_lo=1e6, out_hi=1e9, window=32, prime_max=97, wide_prime_max=0,
                 density_power=1.0, **kwargs):
        kwargs["autocast"] = False  # latents and positions must stay float64 (see DivisibilityEncoding)
        super().__init__(**kwargs)
        self.out_lo, self.out_hi = float(out_lo), float(out_hi)
        self.window = int(window)
        self.prime_max = int(prime_max)
        self.wide_prime_max = int(wide_prime_max)
        self.density_power = float(density_power)
        primes = small_odd_primes(self.prime_max)
        self._primes = tf.constant(primes, dtype="int64")
        self._offsets = tf.constant(np.concatenate([[0], np.cumsum(primes)[:-1]]), dtype="int64")
        self.scores = self.add_weight(
            name="residue_scores", shape=(int(primes.sum()),), initializer="zeros", trainable=True
        )
        wide = small_odd_primes(self.wide_prime_max)
        wide = wide[wide > self.prime_max]
        if len(wide) and self.window > wide[0]:
            raise ValueError(f"window {self.window} exceeds the first wide prime {wide[0]}")
        self._wide = tf.constant(wide, dtype="int64")
        self._half = tf.constant((wide + 1) // 2, dtype="int64")  # 2^-1 mod p
        self._wide_t = tf.constant(self.wide_position(wide), dtype="float32")
        self.wide_weights = None
        if len(wide):
            self.wide_weights = self.add_weight(name="divides_weights", shape=(2,), initializer="zeros", trainable=True)

    @staticmethod
    def wide_position(wide: np.ndarray) -> np.ndarray:
        """t_p in [0, 1]: where log p lies between the first and last wide prime."""
        if len(wide) < 2:
            return np.zeros(len(wide))
        return np.log(wide / wide[0]) / np.log(wide[-1] / wide[0])

    @property
    def primes(self) -> np.ndarray:
        """The primes with full residue tables (the CRT tables of optimus.sampling.sieve)."""
        return self._primes.numpy()

    @property
    def wide_primes(self) -> np.ndarray:
        return self._wide.numpy()

    def wide_scores(self):
        """w_p for every wide prime (float32 [K_wide])."""
        return self.wide_weights[0] + self.wide_weights[1] * self._wide_t

    def position(self, u, out_lo=None, out_hi=None):
        """x0 = F^-1(u) / 2 for u [B, 1] in [0, 1) (float64): the inverse CDF of the density
        proportional to n**-density_power on [lo, hi)."""
        lo = self.out_lo if out_lo is None else float(out_lo)
        hi = self.out_hi if out_hi is None else float(out_hi)
        if self.density_power == 1.0:
            log_lo, log_hi = np.log(lo), np.log(hi)
            return tf.exp(log_lo + u * (log_hi - log_lo)) / 2.0
        e = 1.0 - self.density_power
        a, b = lo**e, hi**e
        return tf.pow(a + u * (b - a), 1.0 / e) / 2.0

    def first_candidates(self, z, out_lo=None, out_hi=None):
        """The first candidate n0 [B, 1] (int64) of each latent integer's window (z [B]);
        out_lo/out_hi move the band (the learned preferences do not depend on it)."""
        z = tf.reshape(tf.cast(z, "float64"), (-1, 1))
        u = tf.math.floormod(z * self.PHI, 1.0)
        return odd_from_real(self.position(u, out_lo, out_hi))

    def candidates(self, z, out_lo=None, out_hi=None):
        """Candidate odd integers [B, W] (int64) for latent integers z [B]: n0, n0+2, ..."""
        return self.first_candidates(z, out_lo, out_hi) + 2 * tf.range(self.window, dtype="int64")[None, :]

    def residue_index(self, n):
        """Index into `scores` of (p, n mod p) for each candidate and prime: [B, W, P]."""
        return tf.math.floormod(n[..., None], self._primes) + self._offsets

    def logits_from_index(self, index):
        return tf.reduce_sum(tf.gather(self.scores, index), axis=-1)

    def wide_positions(self, n0):
        """[B, K] int64: the position j in each window of the one candidate n0 + 2j that wide
        prime k divides, or W (past the window) when none does."""
        r0 = tf.math.floormod(n0, self._wide)  # [B, K]; r0 < p keeps the product below 2**31
        j = tf.math.floormod((self._wide - r0) * self._half, self._wide)
        return tf.minimum(j, self.window)

    def wide_logits(self, n0):
        """[B, W] float32: the sum of w_p over the wide primes dividing each candidate.

        A segment sum over all [B, K] pairs (misses go to one spare segment per row) rather
        than over the hits alone: fixed shapes, which the per-sample Fisher's vectorized_map needs.
        """
        j = self.wide_positions(n0)
        rows = tf.range(tf.shape(n0, out_type="int64")[0], dtype="int64")[:, None]
        segments = rows * (self.window + 1) + j
        batch = tf.shape(n0, out_type="int64")[0]
        weights = tf.broadcast_to(self.wide_scores()[None, :], tf.shape(j))
        flat = tf.math.unsorted_segment_sum(weights, segments, batch * (self.window + 1))
        return tf.reshape(flat, (-1, self.window + 1))[:, : self.window]

    def call(self, z, out_lo=None, out_hi=None):
        n0 = self.first_candidates(z, out_lo, out_hi)
        n = n0 + 2 * tf.range(self.window, dtype="int64")[None, :]
        reals = tf.cast((n - 1) // 2, "float64") + 0.5
        logits = self.logits_from_index(self.residue_index(n))
        if self.wide_weights is not None:
            logits = logits + self.wide_logits(n0)
        return reals, logits

    def residue_preferences(self) -> dict[int, np.ndarray]:
        """The learned score of every residue class, per small prime (for charts)."""
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
            "wide_prime_max": self.wide_prime_max,
            "density_power": self.density_power,
        }
