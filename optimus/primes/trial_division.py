"""Exact primality in TensorFlow, by trial division, for integers below a known bound.

Every composite n has a prime factor <= sqrt(n). With the odd primes up to P in a table and q
the first prime above P, every n < q**2 is therefore decided exactly by dividing it by the
table's primes (and by 2): nothing probabilistic, no host round trip, so an online batch's
labels can be computed inside the same graph as the generator on a CPU, a GPU or under a
`tf.distribute` strategy. Above the bound the answer would be wrong, so callers check the
bound (`TrialDivision.bound`) and fall back to `optimus.primes.is_prime` (NumPy) beyond it.

The default table (P = 31,623, the discriminator's, 3,400 odd primes) covers n < 31,627**2
= 1,000,267,129: the default preset's whole band [1e6, 1e9) plus its 64-candidate windows.

Cost, measured on the shared 2-core CPU: 32,768 odd candidates below 10**9 by the 3,400
primes, 0.26 s (chunks of 64 primes; 256: 0.69 s, 1,024: 1.03 s in the same run) and 0.72 s
under load (`python -m optimus bench batch`, `trial_division_s`); NumPy's sieve lookup
(`optimus.primes.is_prime`) takes 8-14 ms for the same values, so on a CPU this is worth it
only where it saves a host round trip. int32 and float64 remainders were no faster (0.22 and
0.25 s). The loop stops at the first chunk of primes above sqrt(max n), so small integers pay
only for the primes they need.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from optimus.primes.sieve import small_odd_primes

DEFAULT_PRIME_MAX = 31_623  # the default discriminator's table: the bound covers the default band


def first_prime_above(p: int) -> int:
    """The smallest prime > p (p >= 1), by trial division (p is a table size, small)."""
    q = p + 1
    while q < 2 or any(q % d == 0 for d in range(2, int(q**0.5) + 1)):
        q += 1
    return q


class TrialDivision:
    """is_prime for int64 tensors n < `bound`, exact, in TensorFlow.

    prime_max: the table holds the odd primes <= prime_max; bound = q**2 for q the first prime
    above the table's largest. chunk: primes tested per step; memory is len(n) x chunk int64.
    """

    def __init__(self, prime_max: int = DEFAULT_PRIME_MAX, chunk: int = 64):
        if prime_max < 3:
            raise ValueError(f"prime_max must be at least 3, got {prime_max}")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        table = small_odd_primes(prime_max)
        self.prime_max, self.chunk, self.num_primes = int(prime_max), int(chunk), int(table.size)
        self.bound = first_prime_above(int(table[-1])) ** 2  # exact for every n < bound
        # Padded to whole chunks with a prime's square larger than any n below the bound, so
        # the padding never divides and the loop's stop test (p*p > max n) stays valid.
        pad = -len(table) % self.chunk
        padded = np.concatenate([table, np.full(pad, self.bound, dtype=np.int64)])
        self._chunks = tf.constant(padded.reshape(-1, self.chunk), dtype="int64")
        self._num_chunks = padded.size // self.chunk

    def __call__(self, n):
        """Bool tensor: n is prime, for an int64 tensor n of any shape with 0 <= n < bound
        (negative n are not prime). Values at or above `bound` give undefined answers:
        check `bound` first (`in_range`)."""
        n = tf.convert_to_tensor(n, dtype=tf.int64)
        flat = tf.reshape(n, (-1, 1))
        top = tf.reduce_max(tf.concat([tf.reshape(flat, (-1,)), tf.zeros([1], tf.int64)], 0))
        chunks = self._chunks

        def needed(i, composite):
            # Chunks are ascending: once a chunk's first prime exceeds sqrt(max n), none divides.
            return tf.logical_and(i < self._num_chunks, chunks[tf.minimum(i, self._num_chunks - 1), 0] ** 2 <= top)

        def step(i, composite):
            p = chunks[i][None, :]
            hit = tf.logical_and(tf.equal(tf.math.floormod(flat, p), 0), p * p <= flat)
            return i + 1, tf.logical_or(composite, tf.reduce_any(hit, axis=1))

        _, composite = tf.while_loop(needed, step, (tf.constant(0), tf.zeros(tf.shape(flat)[:1], tf.bool)))
        odd = tf.equal(tf.math.floormod(flat[:, 0], 2), 1)
        prime = tf.logical_or(tf.equal(flat[:, 0], 2),
                              tf.logical_and(tf.logical_and(flat[:, 0] > 2, odd), tf.logical_not(composite)))
        return tf.reshape(prime, tf.shape(n))

    def in_range(self, n_max) -> bool:
        """Whether integers up to n_max (inclusive) are all decided exactly."""
        return float(n_max) < self.bound
