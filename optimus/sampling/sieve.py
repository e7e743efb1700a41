"""Fast sampling from the sieve generator: the same draws as the Keras forward, in NumPy.

The generator's forward (`optimus.nets.layers.SieveWindow.call`) builds, for B latents, a [B, W, P]
tensor of residues (window W = 32 candidates, P = 24 primes), gathers one score per entry and
sums over primes: about 800 gathers per latent, in int64/float64. That is what training needs
(it is differentiable), but for drawing samples it does far more work than necessary, because a
candidate's residues follow from its window's first candidate n0: (n0 + 2j) mod p.

This path computes, per latent, n0 with the layer's own TensorFlow ops (so the candidates are
bit-identical), then the residues n0 mod m once for a few *groups* of primes whose product m is
small, and reads each group's contribution to all W logits from a precomputed table
T_m[r, j] = sum over p | m of scores_p[(r + 2j) mod p] (Chinese remainder theorem: r = n0 mod m
determines every n0 mod p for p | m). With W = 32, the 24 primes fall into 14 tables of at most
4,096 rows; a latent costs 14 row reads and adds instead of 768 gathers.

The choice is the same Gumbel-max as `optimus.nets.networks.choose`: the same uniforms, drawn from the
same `rng` in the same order (row-major, in chunks: NumPy's generator yields the same doubles
either way), the same `logits / temperature - log(-log(u))`, argmax. The only difference is
rounding: the tables add scores in float64, the layer in float32, so logits agree to about
1e-6 and a choice could differ only when two candidates of one latent tie within that (tested:
none in tens of thousands of draws with randomised scores).

Tables are cached per layer and rebuilt whenever the scores change (training moves them).

The wide primes (one shared-form "p divides n" weight per odd prime up to 31,623 in the
`default` preset, about 3,400 of them) have no CRT tables: their products are far too large.
Each divides at most one candidate of a window (p > W), found with one division of the
window's end by p (`_add_wide_logits`); those 3,390 divisions per window are now the cost of a
draw (measured on the shared 2-core machine, load 2.5: 70k windows/s for the generator alone,
down from 3 M/s without wide primes; 10,000 samples with `evaluation.sample`, discriminator
and exact primality included, in 0.37 s).
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from optimus.primes import bigint
from optimus.primes.bigint import MAX_RESIDUE_PRIME, RESIDUE_ROWS, residues
from optimus.primes.crt import product_groups

# Each table holds m x W float64 values; groups of primes are formed so that a table stays
# below this many bytes (W = 32: m <= 4096, 14 tables for the 24 primes; measured on the 2-core
# dev machine: 2.5M latents/s with 256 KiB tables (19 of them), 2.9M with 1 MiB, 2.4M with 2 MiB).
TABLE_BYTES = 1 << 20
CHUNK = 4096  # latents per chunk: the [CHUNK, W] working arrays stay in L2
# Latents per block of wide-prime logits: 3,390 primes x a few NumPy calls each cost about
# 30 ms of call overhead per block, whatever its size ([65,536, 64] float64: 32 MB).
WIDE_BLOCK = 65_536

_lock = threading.Lock()
_tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> (scores bytes, tables)


def _values(variable) -> np.ndarray:
    """A Keras variable's values, or the array a NumPy forward (optimus.nets.forward) holds."""
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)


def sieve_layer(generator):
    """The SieveWindow of a generator built by `build_generator` (input -> sieve), else None.
    For a NumPy forward (optimus.nets.forward.Generator), its NumPy SieveWindow (or None)."""
    if getattr(generator, "numpy_forward", False):  # a Generator, or its SieveWindow itself
        if hasattr(generator, "sieve"):
            return generator.sieve
        return generator if hasattr(generator, "position") else None
    import keras  # TensorFlow: the pages import sieve

    from optimus.nets.layers import SieveWindow  # TensorFlow: the pages import sieve

    layers = [layer for layer in getattr(generator, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) == 1 and isinstance(layers[0], SieveWindow) and len(generator.outputs) == 2:
        return layers[0]
    return None


def prime_groups(primes: np.ndarray, window: int, table_bytes: int | None = None) -> list[list[int]]:
    """Consecutive primes grouped so that each group's product m keeps m x window x 8 bytes
    within table_bytes (default TABLE_BYTES; a prime that alone exceeds it gets a group of its own)."""
    return product_groups(primes, max(1, (TABLE_BYTES if table_bytes is None else table_bytes) // (8 * window)))


def build_tables(scores: np.ndarray, primes: np.ndarray, window: int) -> list[tuple[int, np.ndarray]]:
    """[(m, T_m)] with T_m[r, j] = sum over p in the group of scores_p[(r + 2j) mod p], float64."""
    scores = np.asarray(scores, dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum(primes)[:-1]]).astype(np.int64)
    offset_of = {int(p): int(o) for p, o in zip(primes, offsets, strict=True)}
    steps = 2 * np.arange(window, dtype=np.int64)[None, :]
    tables = []
    for group in prime_groups(primes, window):
        m = int(np.prod(group))
        r = np.arange(m, dtype=np.int64)[:, None]
        table = np.zeros((m, window), dtype=np.float64)
        for p in group:
            table += scores[offset_of[p] + (r + steps) % p]
        tables.append((m, table))
    return tables


def _tables_of(layer) -> list[tuple[int, np.ndarray]]:
    scores = _values(layer.scores)
    key = scores.tobytes()
    with _lock:
        cached = _tables.get(layer)
        if cached is not None and cached[0] == key:
            return cached[1]
    tables = build_tables(scores, layer.primes, layer.window)
    with _lock:
        _tables[layer] = (key, tables)
    return tables


def first_candidates(layer, latents, out_lo=None, out_hi=None) -> np.ndarray:
    """n0 [B] (int64) for latent integers: `layer.first_candidates`, bit for bit.

    Every step is exact or correctly rounded in IEEE float64, and so identical in NumPy
    (floormod is exact; NumPy's np.mod and TensorFlow's floormod compute it the same way),
    except exp and pow: NumPy's and TensorFlow's differ in the last bit for about 1 input in 6,
    which moves floor(x0) when x0 is within an ulp of an integer. So the position runs in
    TensorFlow (`layer.position`), on a tensor of the layer's shape [B, 1]. (TensorFlow's
    float64 floormod is the slow step of the layer's version: about 65 ns per latent, against
    3 ns here.) out_lo/out_hi: the band, as in `layer.first_candidates`.
    """
    z = np.asarray(latents, dtype=np.float64).reshape(-1, 1)
    u = np.mod(z * layer.PHI, 1.0)
    if getattr(layer, "numpy_forward", False):  # Eigen's exp/pow transcribed (optimus.nets.forward)
        x0 = layer.position(u, out_lo, out_hi)
    else:
        import tensorflow as tf  # TensorFlow: the pages import sieve

        x0 = layer.position(tf.constant(u), out_lo, out_hi).numpy()
    return (2 * np.floor(x0).astype(np.int64) + 1).reshape(-1)


def _wide_of(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(wide primes, their w_p in float64), or None for a layer without wide primes."""
    if getattr(layer, "wide_weights", None) is None:
        return None
    a, b = (float(v) for v in _values(layer.wide_weights).astype(np.float64))
    wide = layer.wide_primes
    # the layer holds t_p in float32: the same rounding keeps the draws bit-identical to it
    position = layer.wide_position(wide).astype(np.float32).astype(np.float64)
    return wide, a + b * position


def gumbel_keys(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                inplace: bool = False) -> np.ndarray:
    """logits / temperature + Gumbel noise, the one Gumbel draw of every sampler here: its argmax
    is a draw from softmax(logits / temperature), its top k a draw of k without replacement
    (Kool et al. 2019). The noise is -log(-log u), u = rng.uniform(1e-12, 1.0) in row-major
    order, so the same rng gives the same draws whatever the caller. inplace: overwrite logits
    (float64), as the chunked sampler does to stay in L2."""
    out = logits if inplace else np.array(logits, dtype=np.float64)
    scale = max(temperature, 1e-6)
    if scale != 1.0:
        out /= scale
    u = rng.uniform(1e-12, 1.0, size=out.shape)
    np.log(u, out=u)
    np.negative(u, out=u)
    np.log(u, out=u)
    out -= u
    return out


def _add_wide_logits(logits: np.ndarray, n0: np.ndarray, wide) -> None:
    """Add w_p to the one candidate of each window that a wide prime p divides (in place): the
    layer's `wide_logits` in NumPy. In halves: candidate j of the window at odd n0 is 2(h0 + j) + 1,
    h0 = (n0 - 1) / 2, and p divides 2x + 1 iff x = k (mod p), k = (p - 1) / 2. The largest such x
    up to the window's last half e = h0 + W - 1 is e - d, d = (e + p - k) mod p, so p divides
    candidate j = W - 1 - d when d < W (p > W: at most one per window; the largest, as before).
    One prime at a time, because NumPy divides an array by a scalar with libdivide (an
    elementwise mod is about 10x slower, and np.remainder does not use libdivide), in uint32 when
    e + p fits (7x faster than int64: 3,390 primes x 10,000 windows in about 0.03 s instead of 0.1 s
    on the shared 2-core machine), else uint64. The weights are summed in the same order as
    before (bincount over the primes in order), so the logits are bit-identical."""
    primes, weights = wide
    window = logits.shape[1]
    if n0.size == 0 or primes.size == 0:
        return
    last = (n0 >> 1) + (window - 1)  # e; n0 is odd and positive, so n0 >> 1 = h0
    dtype = np.uint32 if int(last.max()) + int(primes.max()) < 2**32 else np.uint64
    last = last.astype(dtype)
    shifted, rem = np.empty_like(last), np.empty_like(last)
    hit = np.empty(last.shape, dtype=bool)
    rows, offsets, counts = [], [], []
    for p in primes.tolist():
        prime = dtype(p)
        np.add(last, dtype(p - (p - 1) // 2), out=shifted)
        np.floor_divide(shifted, prime, out=rem)
        np.multiply(rem, prime, out=rem)
        np.subtract(shifted, rem, out=rem)  # d
        np.less(rem, window, out=hit)
        found = hit.nonzero()[0]
        rows.append(found)
        offsets.append(rem[found])
        counts.append(found.size)
    index = np.concatenate(rows) * window + (window - 1) - np.concatenate(offsets).astype(np.int64)
    flat = logits.reshape(-1)
    flat += np.bincount(index, weights=np.repeat(weights, counts), minlength=flat.size)


def _window_logits(tables, n0: np.ndarray) -> np.ndarray:
    """Logits [len(n0), W] (float64) of the windows starting at n0."""
    logits = None
    for m, table in tables:
        rows = np.take(table, n0 % m, axis=0)
        if logits is None:
            logits = rows
        else:
            logits += rows
    return logits


def _layer_window_logits(layer, n0: np.ndarray) -> np.ndarray:
    """Logits [len(n0), W] (float64) of the windows starting at odd n0 [B] (int64), from the
    layer's own CRT tables and float32 wide weights (bit-identical draws to its forward)."""
    if n0.size == 0:
        return np.zeros((0, layer.window))
    logits = _window_logits(_tables_of(layer), n0)
    wide = _wide_of(layer)
    if wide is not None:
        _add_wide_logits(logits, n0, wide)
    return logits


def window_logits(sieve, starts, width: int | None = None) -> np.ndarray:
    """float64 [B, width]: the logit of every candidate n0 + 2j (j < width) of the windows that
    start at the odd integers n0 = starts[b]: the one window-logit function of the project.

    `sieve`: a generator's SieveWindow layer, Keras or NumPy (`optimus.nets.forward`) (starts:
    int64 below 2^53; width: the layer's; the same logits as its forward, to float32 rounding), or
    a `LearnedSieve` (starts: Python ints
    of any size; width: any, default the model's), through `window_batch`."""
    if not isinstance(sieve, LearnedSieve):  # a SieveWindow: the Keras layer or its NumPy forward
        return _layer_window_logits(sieve, np.asarray(starts, dtype=np.int64))
    return window_batch(sieve, [int(v) for v in starts], sieve.window if width is None else width)[0]


_ADDITIVE_PROBE_MAX = 20_000_000  # probe entries (sum of p) x K: ~1 s and 160 MB at most
_additive_cache: dict = {}


def additive_tables(sieve, width: int):
    """(base, [(m, T_m)]) when the sieve's logit is a sum of one score per prime and residue
    (checked, not assumed: the contract only promises `logits(residues)`), else None.

    Probing `logits` with one non-zero residue at a time gives every score relative to residue
    0; 64 random residue vectors then confirm that the sum reproduces `logits` (to 1e-9). The
    window's logits then come from the CRT tables of `optimus.sampling.sieve.build_tables`: a few
    contiguous row reads per window instead of W x K gathers (measured: 4096 windows of 256
    candidates, 24 primes: ~0.02 s against ~0.4 s).
    """
    p = sieve.primes
    key = (id(sieve), width)
    if key in _additive_cache and _additive_cache[key][0] is sieve:
        return _additive_cache[key][1]
    result = None
    total = int(p.sum())
    if p.size and total * p.size <= _ADDITIVE_PROBE_MAX:
        offsets = np.concatenate([[0], np.cumsum(p)[:-1]]).astype(np.int64)
        which = np.repeat(np.arange(p.size), p)
        probe = np.zeros((total, p.size), dtype=np.int64)
        probe[np.arange(total), which] = np.arange(total) - offsets[which]
        base = float(sieve.logits(np.zeros((1, p.size), dtype=np.int64))[0])
        scores = sieve.logits(probe) - base
        test = np.random.default_rng(0).integers(0, p, size=(64, p.size))
        predicted = base + scores[offsets + test].sum(axis=1)
        actual = sieve.logits(test)
        if np.allclose(predicted, actual, rtol=0, atol=1e-9 * max(1.0, float(np.abs(actual).max()))):
            result = (base, build_tables(scores, p, width))
    if len(_additive_cache) > 8:
        _additive_cache.clear()
    _additive_cache[key] = (sieve, result)
    return result


def first_multiples(starts: list[int], moduli: np.ndarray, width: int):
    """(rows, cols, j): every window b = rows[i] and prime p = moduli[cols[i]] with
    n0 + 2j = 0 (mod p) for a candidate j < width of the window starting at odd n0 = starts[b].

    j = -n0 / 2 mod p = n0 (p - 1) / 2 mod p comes straight out of one `ResidueTable` product
    (factor (p - 1) / 2), in blocks of rows, so that nothing of size [windows, primes] is kept:
    the first multiple and then j + p, j + 2p, ... while < width."""
    out_rows, out_cols, out_j = [], [], []
    if not len(starts) or not moduli.size:
        return (np.zeros(0, dtype=np.int64),) * 3
    table = bigint.residue_table(moduli, max(starts).bit_length() + 1, (moduli - 1) // 2)
    several = np.flatnonzero(moduli < width)  # primes with more than one multiple per window
    step = max(1, min(RESIDUE_ROWS, (1 << 21) // moduli.size))  # [rows, K] within 16 MB
    for r in range(0, len(starts), step):
        j = table.reduce(table.limbs(starts[r : r + step]))
        rows, cols = np.nonzero(j < width)
        out_rows.append(rows + r)
        out_cols.append(cols)
        out_j.append(j[rows, cols].astype(np.int64))
        if several.size:  # then j + p, j + 2p, ...: [rows, primes < width, multiples] at once
            p = moduli[several]
            more = (j[:, several].astype(np.int64)[:, :, None]
                    + p[None, :, None] * np.arange(1, -(-width // int(p.min())) + 1)[None, None, :])
            rows, which, _ = np.nonzero(more < width)
            out_rows.append(rows + r)
            out_cols.append(several[which])
            out_j.append(more[more < width])
    if not out_rows:
        return (np.zeros(0, dtype=np.int64),) * 3
    return np.concatenate(out_rows), np.concatenate(out_cols), np.concatenate(out_j)


def _small_logits(sieve, starts: list[int], width: int) -> np.ndarray:
    """float64 [B, width] for a sieve without wide primes: CRT tables when its logit is a sum
    over primes (`additive_tables`), else its `logits` on [rows, W, K] residue blocks."""
    tables = additive_tables(sieve, width)
    if tables is not None:
        base, groups = tables
        moduli = np.array([m for m, _ in groups], dtype=np.int64)
        if moduli.max() < MAX_RESIDUE_PRIME:
            rows = residues(starts, moduli)
            out = np.full((len(starts), width), base)
            for g, (_, table) in enumerate(groups):
                out += np.take(table, rows[:, g], axis=0)
            return out
    p = sieve.primes
    r0 = residues(starts, p)
    steps = (2 * np.arange(width, dtype=np.int64))[:, None] % p  # [W, K]
    # [rows, W, K] residue blocks of ~64K entries stay in L2 (measured, 4096 windows of 256 x 24
    # primes: 0.36 s in blocks of 64K entries, 0.68 s in blocks of 4M)
    rows = max(1, 65_536 // max(1, width * p.size))
    out = np.empty((len(r0), width), dtype=np.float64)
    for i in range(0, len(r0), rows):
        res = r0[i : i + rows, None, :] + steps[None]
        res -= p * (res >= p)
        out[i : i + rows] = sieve.logits(res)
    return out


def window_batch(sieve, starts: list[int], width: int, deep: np.ndarray | None = None):
    """(logits [B, width], divisible [B, width] bool, struck): the sieve's logits of the windows
    starting at `starts`; `divisible` marks the candidates a learned prime divides; candidates a
    `deep` prime divides get logit -inf (struck: how many; they need n0 > max(deep)).

    A sieve with wide primes (one "p divides n" weight each, thousands of them) is split: its
    small primes go through the CRT tables, and each wide prime p adds its weight to the
    candidates j < width that it divides (`first_multiples`, with the deep primes in the same
    matrix product). Measured on the shipped model (24 small + 3,376 wide primes), 1,000
    verified 100-digit primes: 21.5 s through `logits` on [B, W, K] residue blocks, 1.0 s
    split this way with int64 `%` on the residues, and less again with one product giving j.
    """
    wide = getattr(sieve, "wide_primes", np.zeros(0, dtype=np.int64))
    small = sieve.small_sieve() if wide.size else sieve
    out = _small_logits(small, starts, width)
    divisible = np.zeros(out.shape, dtype=bool)  # by a wide prime (the small ones: `_coprime`)
    extra = deep if deep is not None else np.zeros(0, dtype=np.int64)
    # one product for the wide primes (+ weight) and the deep ones (-inf)
    rows, cols, j = first_multiples(starts, np.concatenate([wide, extra]), width)
    learned = cols < wide.size
    if wide.size:
        divisible[rows[learned], j[learned]] = True
        # bincount, not np.add.at: ~10x faster on ~10^5 hits per batch (measured)
        flat = rows[learned] * width + j[learned]
        out += np.bincount(flat, weights=sieve.wide_scores[cols[learned]], minlength=out.size).reshape(out.shape)
    struck = 0
    if extra.size:
        hit = ~learned
        out[rows[hit], j[hit]] = -np.inf
        struck = int(np.isinf(out).sum())
    return out, divisible, struck


def coprime_small(sieve, starts: list[int], rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """bool: candidate starts[rows] + 2 offsets is coprime to every small (non-wide) learned prime."""
    small = sieve.small_sieve().primes if getattr(sieve, "wide_primes", np.zeros(0)).size else sieve.primes
    r0 = residues(starts, small)
    return ((r0[rows] + 2 * offsets[:, None]) % small != 0).all(axis=1)





def choose_odd(layer, latents, rng: np.random.Generator, temperature: float = 1.0,
               out_lo=None, out_hi=None) -> np.ndarray:
    """One odd integer per latent [B] (int64): the same draws as
    `to_odd(models.choose(*models.propose(generator, latents), rng, temperature))`;
    out_lo/out_hi move the band (float64's exact range: the windows must stay below 2**53)."""
    n0 = first_candidates(layer, latents, out_lo, out_hi)
    out = np.empty(n0.shape, dtype=np.int64)
    if n0.size == 0:
        return out
    tables = _tables_of(layer)
    wide = _wide_of(layer)
    window = layer.window
    wide_logits, wide_start = None, 0
    for start in range(0, n0.size, CHUNK):
        first = n0[start : start + CHUNK]
        logits = _window_logits(tables, first)
        if wide is not None:
            # in blocks of WIDE_BLOCK latents: the per-prime loop's call overhead is per block
            if wide_logits is None or start + first.size > wide_start + len(wide_logits):
                wide_start = start
                block = n0[start : start + max(WIDE_BLOCK, first.size)]
                wide_logits = np.zeros((block.size, window))
                _add_wide_logits(wide_logits, block, wide)
            logits += wide_logits[start - wide_start : start - wide_start + first.size]
        pick = np.argmax(gumbel_keys(logits, rng, temperature, inplace=True), axis=1)
        np.multiply(pick, 2, out=pick)
        np.add(first, pick, out=out[start : start + CHUNK])
    return out


def generate(layer, latents, rng: np.random.Generator, temperature: float = 1.0,
             out_lo=None, out_hi=None) -> np.ndarray:
    """The generator's real outputs x (float64), x = (n - 1)/2 + 1/2 so that to_odd(x) = n:
    what `models.generate` returns for a sieve generator."""
    n = choose_odd(layer, latents, rng, temperature, out_lo, out_hi)
    return ((n - 1) // 2).astype(np.float64) + 0.5


# --- the learned sieve, at any size ---------------------------------------------------------
# The contract between a trained sieve generator and everything that samples with it beyond
# float64 (big integers, any number of digits): the generator's preferences are a function of
# the residues n mod p of a candidate n for a fixed list of odd primes p. Whatever the layer's
# parameterisation, `learned_sieve(generator)` exposes exactly that, so a sampler only has to
# compute residues exactly (for Python ints of any size) and call `logits`.


class LearnedSieve:
    """A sieve generator's learned preference over candidates, as a function of residues.

    `primes`: int64 [K], the odd primes whose residues the generator reads (ascending): the
    small primes with full residue tables, then the wide primes with one "divides" weight.
    `logits(residues)`: residues int64 [..., K] with residues[..., k] = n mod primes[k]
    -> float64 [...], the candidate's logit (the same as the layer computes for that n).
    `window`: candidates per latent in the trained model (a sampler may use more).
    """

    def __init__(self, primes: np.ndarray, scores: np.ndarray, window: int,
                 wide_primes: np.ndarray | None = None, wide_scores: np.ndarray | None = None):
        self._small = len(primes)
        wide_primes = np.zeros(0, dtype=np.int64) if wide_primes is None else np.asarray(wide_primes, dtype=np.int64)
        self.primes = np.concatenate([np.asarray(primes, dtype=np.int64), wide_primes])
        self._scores = np.asarray(scores, dtype=np.float64)
        self._offsets = np.concatenate([[0], np.cumsum(self.primes[: self._small])[:-1]]).astype(np.int64)
        self._wide = np.zeros(0) if wide_scores is None else np.asarray(wide_scores, dtype=np.float64)
        self.window = int(window)
        self._small_sieve = None if self._wide.size else self

    def logits(self, residues: np.ndarray) -> np.ndarray:
        residues = np.asarray(residues, dtype=np.int64)
        small = np.take(self._scores, residues[..., : self._small] + self._offsets).sum(axis=-1)
        if not self._wide.size:
            return small
        return small + ((residues[..., self._small :] == 0) * self._wide).sum(axis=-1)

    @property
    def scores(self) -> np.ndarray:
        """float64: the small primes' residue scores, prime after prime (sum of p entries)."""
        return self._scores

    @property
    def wide_primes(self) -> np.ndarray:
        """int64: the primes that carry only a "p divides n" weight (the last of `primes`)."""
        return self.primes[self._small :]

    @property
    def wide_scores(self) -> np.ndarray:
        """float64: the weight added to a candidate's logit for each wide prime dividing it."""
        return self._wide

    def small_sieve(self) -> LearnedSieve:
        """The same sieve without its wide primes: the part with full residue tables."""
        if self._small_sieve is None:
            self._small_sieve = LearnedSieve(self.primes[: self._small], self._scores, self.window)
        return self._small_sieve

    def divides_scores(self) -> np.ndarray:
        """float64 [K]: score of residue 0 minus the mean score of the other residues, per
        prime: how strongly the generator avoids multiples of each p (negative = avoids)."""
        out = np.empty(len(self.primes))
        for k, (p, o) in enumerate(zip(self.primes[: self._small], self._offsets, strict=True)):
            table = self._scores[o : o + p]
            out[k] = table[0] - table[1:].mean()
        out[self._small :] = self._wide
        return out


def learned_sieve(generator) -> LearnedSieve | None:
    """The learned sieve of a sieve generator (a model from `build_generator`, or its layer),
    else None (the seed's dense generator has none)."""
    if getattr(generator, "numpy_forward", False):
        layer = sieve_layer(generator)
    else:
        from optimus.nets.layers import SieveWindow  # TensorFlow: the pages import sieve

        layer = generator if isinstance(generator, SieveWindow) else sieve_layer(generator)
    if layer is None:
        return None
    wide = _wide_of(layer)
    return LearnedSieve(layer.primes, _values(layer.scores), layer.window, *(wide or (None, None)))
