"""The saved networks' forward passes in NumPy: what the Streamlit server runs instead of Keras.

The server samples, classifies and evaluates with these, so it never imports TensorFlow
(issue 18: TensorFlow in the server process cost 1.2 GB of RSS, about 1 s of Streamlit's file
watcher per new session and 0.3 s of `keras.backend.clear_session()` after every script run).
Training, `evaluate --save` and the continual benchmark keep Keras, in child processes.

A `.keras` file is a zip holding `config.json` (the layer graph) and `model.weights.h5`
(Keras 3 stores each layer's variables under `layers/<snake_case class name>[_k]/vars/<i>`,
k counting earlier layers of the same class in the model's layer list, nested models under
their own `layers/`). `load_network` reads both with the archive caps of `optimus.limits`
checked before anything is inflated, and builds the graph from the layer classes this project
saves (`optimus.nets.layers`, `optimus.nets.gln`, and the Keras layers of
`optimus.nets.networks`); any other class is refused. Nothing is unpickled or executed.

Equal to the Keras forward (tests/test_forward.py, on models trained in another process):
- the sieve generator: the same candidates and logits, hence the same samples, bit for bit.
  Its position step uses exp or pow in float64, where NumPy's and TensorFlow's results
  differ in the last bit for 15-28 % of inputs (measured on 10^6 latents), enough to move a
  window at 1e13 and beyond. So `eigen_exp` and `eigen_pow` are transcriptions of the
  vectorised routines TensorFlow's CPU kernels run (Eigen's `pexp_double` and `generic_pow`,
  as in the headers of the installed TensorFlow, built without FMA), made of IEEE operations
  that NumPy rounds the same way.
- the discriminators (dense, residue bits, residue factor lists, GLN): probabilities within
  1e-6 (float32 sums in another order).
"""

from __future__ import annotations

import ctypes
import io
import math
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np

from optimus import validate
from optimus.nets.encoding import Divisibility, factor_layout
from optimus.primes import small_odd_primes
from optimus.sampling import sieve
from optimus.store import storage

# Rows per block of a forward, at most; fewer for wide encodings, so that a block's
# [rows x primes] int64 residues stay within BLOCK_BYTES (disc_prime_max 100,000: 9,591 primes,
# 874 rows): a request's peak stays far below the 1 GB it may use (issue 18).
ROWS = 4096
BLOCK_BYTES = 64 << 20
MAX_JSON_BYTES = 1 << 20  # a network's config.json (the GLN's is the largest, about 3 KB)
# Doubles per SIMD packet of the installed TensorFlow's CPU kernels (AVX, no AVX-512)
PACKET = 4


class ForwardError(ValueError):
    """A saved network this module cannot run (damaged, or a layer class it does not know)."""


# --- TensorFlow's float64 exp and pow, bit for bit ---------------------------------------


def eigen_exp(x):
    """exp(x) in float64 as TensorFlow's CPU kernel computes it: Eigen's `pexp_double`
    (Cephes' rational approximation after a two-constant range reduction), without FMA
    (the installed TensorFlow says it was built without it). Matches tf.exp on 10^6 random
    inputs in [13, 36] and on every position of odd-sized arrays (tests/test_forward.py)."""
    x = np.minimum(np.asarray(x, dtype=np.float64), 709.784)
    fx = np.floor(1.4426950408889634073599 * x + 0.5)
    x = x - fx * 0.693145751953125
    x = x - fx * 1.42860682030941723212e-6
    x2 = x * x
    px = (1.26177193074810590878e-4 * x2 + 3.02994407707441961300e-2) * x2 + 9.99999999999999999910e-1
    px = px * x
    qx = ((3.00198505138664455042e-6 * x2 + 2.52448340349684104192e-3) * x2 + 2.27265548208155028766e-1) * x2
    qx = qx + 2.00000000000000000009e0
    y = 2.0 * (px / (qx - px)) + 1.0
    return np.ldexp(y, fx.astype(np.int64))


def _fast_twosum(x, y):
    s = x + y
    return s, y - (s - x)


def _split(x):
    gamma = 134217729.0 * x  # 2^27 + 1: Veltkamp's split of a double into two halves
    hi = (x - gamma) + gamma
    return hi, x - hi


def _twoprod(x, y):
    """(p_hi, p_lo) with x*y = p_hi + p_lo exactly: Dekker's product (Eigen without FMA)."""
    xh, xl = _split(x)
    yh, yl = _split(y)
    p = x * y
    lo = xh * yh + (-p)
    lo = xh * yl + lo
    lo = xl * yh + lo
    lo = xl * yl + lo
    return p, lo


def _twoprod_dw(x_hi, x_lo, y):
    c_hi, c_lo1 = _twoprod(x_hi, y)
    t_hi, t_lo1 = _fast_twosum(c_hi, x_lo * y)
    return _fast_twosum(t_hi, t_lo1 + c_lo1)


def _twoprod_dw2(x_hi, x_lo, y_hi, y_lo):
    a_hi, a_lo = _twoprod_dw(x_hi, x_lo, y_hi)
    b_hi, b_lo = _twoprod_dw(x_hi, x_lo, y_lo)
    return _fast_twosum_dw(a_hi, a_lo, b_hi, b_lo)


def _fast_twosum_dw(x_hi, x_lo, y_hi, y_lo):
    r_hi, r_lo = _fast_twosum(x_hi, y_hi)
    return _fast_twosum(r_hi, (y_lo + r_lo) + x_lo)


def _fast_twosum_f_dw(x, y_hi, y_lo):
    r_hi, r_lo = _fast_twosum(x, y_hi)
    return _fast_twosum(r_hi, y_lo + r_lo)


def _accurate_log2(x):
    """Eigen's accurate_log2<double> for x in [1/sqrt 2, sqrt 2]: log2 x as a double word."""
    t_hi, t_lo = _twoprod_dw(np.float64(2.88539008177792677), np.float64(4.07660016854549667e-17), x - 1.0)
    y = x + 1.0
    q_hi = t_hi / y  # doubleword_div_fp
    pi_hi, pi_lo = _twoprod(q_hi, y)
    q_lo = (((t_hi - pi_hi) - pi_lo) + t_lo) / y
    r_hi, r_lo = _fast_twosum(q_hi, q_lo)
    r2_hi, r2_lo = _twoprod_dw2(r_hi, r_lo, r_hi, r_lo)
    r4_hi, _ = _twoprod_dw2(r2_hi, r2_lo, r2_hi, r2_lo)
    q_even = 2.87074255468000586e-9 * r4_hi + 2.31032094540014656e-7
    q_odd = 2.38957980901884082e-8 * r4_hi + 2.27279857398537278e-6
    q_even = q_even * r4_hi + 2.31271023278625638e-5
    q_odd = q_odd * r4_hi + 2.47556738444535513e-4
    q_even = q_even * r4_hi + 2.88543873228900172e-3
    q = q_odd * r2_hi + q_even
    p_hi, p_lo = _twoprod_dw(r2_hi, r2_lo, q)
    p1_hi, p1_lo = _fast_twosum_dw(np.float64(0.0400377511598501157), np.float64(-4.77726582251425391e-19), p_hi, p_lo)
    p2_hi, p2_lo = _twoprod_dw2(r2_hi, r2_lo, p1_hi, p1_lo)
    p3_hi, p3_lo = _fast_twosum_f_dw(np.float64(1.0), p2_hi, p2_lo)
    return _twoprod_dw2(p3_hi, p3_lo, r_hi, r_lo)


def eigen_pow(x, y: float):
    """x**y for x > 0 (float64 array) and a finite scalar y, as TensorFlow's CPU kernel computes
    it: Eigen's `generic_pow` (log2 in double-word arithmetic, then exp2), without FMA."""
    x = np.asarray(x, dtype=np.float64)
    if y == 1.0:
        return x.copy()
    if y == 0.0:
        return np.ones_like(x)
    if np.any(~(x > 0)) or not np.all(np.isfinite(x)):
        raise ValueError("eigen_pow: x must be positive and finite")
    m, e = np.frexp(x)
    e = e.astype(np.float64)
    small = m < 0.70710678118654752440
    m = np.where(small, 2.0 * m, m)
    e = np.where(small, e - 1.0, e)
    rx_hi, rx_lo = _accurate_log2(m)
    y = np.float64(y)
    f1_hi, f1_lo = _twoprod(e, y)
    f2_hi, f2_lo = _twoprod_dw(rx_hi, rx_lo, y)
    f_hi, f_lo = _fast_twosum_dw(f1_hi, f1_lo, f2_hi, f2_lo)
    n_z = _eigen_round(f_hi)
    r_z = (f_hi - n_z) + f_lo
    n_r = _eigen_round(r_z)
    r_z = r_z - n_r
    n_z = n_z + n_r
    out = np.ldexp(_eigen_exp2(r_z), n_z.astype(np.int64))
    # The kernel runs packets of PACKET doubles and the last size % PACKET elements through
    # the C library's scalar pow (measured: exactly those differ from the packet routine).
    flat = out.reshape(-1)
    for i in range(flat.size - flat.size % PACKET, flat.size):
        flat[i] = math.pow(float(x.reshape(-1)[i]), float(y))
    return out


def _eigen_round(x):
    """Eigen's pround (AVX and SSE): trunc(x + copysign(0.49999999999999994, x))."""
    return np.trunc(x + np.copysign(0.49999999999999994, x))


def _eigen_exp2(x):
    """Eigen's generic_exp2: exp(ln2 * x) with ln2 * x as a double word."""
    x = np.clip(x, -1074.0, 1025.0)
    p_hi, p_lo = _twoprod(np.float64(0.693147180559945309417232121458), x)
    return eigen_exp(p_hi) * (1.0 + p_lo)


# --- reading a .keras file without Keras ---------------------------------------------------


def snake_case(name: str) -> str:
    """Keras 3's `naming.to_snake_case`: the name of a layer's group in model.weights.h5."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_archive(path, max_bytes: int) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """(config.json, {h5 group path: [vars/0, vars/1, ...]}) of a .keras file, its members'
    declared sizes checked against `max_bytes` before anything is inflated."""
    path = Path(path)
    validate.check_archive(path, max_bytes)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ForwardError(f"{path} is not a Keras 3 archive (no config.json or model.weights.h5)")
            if archive.getinfo("config.json").file_size > MAX_JSON_BYTES:
                raise ForwardError(f"{path}: config.json is larger than {MAX_JSON_BYTES:,} bytes")
            config = storage.loads_json(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise ForwardError(f"{path} is damaged or truncated ({type(exc).__name__}: {exc})") from None
    variables: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            def visit(name, obj):
                if isinstance(obj, h5py.Group) and name.endswith("vars"):
                    keys = sorted(obj.keys(), key=int)
                    variables[name[: -len("vars")].rstrip("/")] = [_numbers(obj[k], path) for k in keys]
            h5.visititems(visit)
    except (OSError, ValueError) as exc:
        raise ForwardError(f"{path}: model.weights.h5 is damaged ({type(exc).__name__}: {exc})") from None
    return config, variables


def _numbers(dataset, path) -> np.ndarray:
    """A weight's values: plain numbers stored in the file itself (an HDF5 dataset may instead
    point at other files on disk, external or virtual storage, or hold objects: refused)."""
    if dataset.external or dataset.is_virtual or dataset.dtype.kind not in "fiub":
        raise ForwardError(f"{path}: weight {dataset.name} is not a plain numeric array in the file")
    return np.asarray(dataset)


def _activation(spec):
    name = spec if isinstance(spec, str) or spec is None else spec.get("config", {}).get("name", spec.get("class_name"))
    name = name or "linear"
    if name == "linear":
        return lambda x: x
    if name == "relu":
        return lambda x: np.maximum(x, np.float32(0))
    if name == "sigmoid":
        return lambda x: _sigmoid(x)
    raise ForwardError(f"activation {name!r} has no NumPy forward here")


def _sigmoid(x):
    """1 / (1 + exp(-x)) in float32, in place (within one float32 ulp of the float64 formula,
    4x faster: 10,000 rows through the seed discriminator's 1,500 sigmoid units took 0.075 s)."""
    out = np.negative(np.asarray(x, dtype=np.float32))
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88 gives 0, as it should
        np.exp(out, out=out)
    out += np.float32(1)
    return np.reciprocal(out, out=out)


def _odd(x) -> np.ndarray:
    """n = 2*floor(x) + 1 (int64) for float64 reals: `layers.odd_from_real`."""
    return 2 * np.floor(np.asarray(x, dtype=np.float64)).astype(np.int64) + 1


def _log_feature(n) -> np.ndarray:
    return (np.log(np.asarray(n, dtype=np.float64)) / np.log(2.0**53)).astype(np.float32).reshape(-1, 1)


def _expect(arrays: list, shapes: list, what: str) -> list:
    got = [tuple(a.shape) for a in arrays]
    if got != [tuple(s) for s in shapes]:
        raise ForwardError(f"{what}: saved variables {got} do not match its config {shapes}")
    return arrays


# NumPy's bundled OpenBLAS: the names of its thread-count setter and getter (numpy 2 wheels
# prefix them; plain OpenBLAS builds do not).
_BLAS_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads")
_BLAS_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads")


def _blas_function(names):
    """The first of `names` exported by an OpenBLAS library that NumPy loaded, or None."""
    folder = Path(np.__file__).parent
    for lib in [*sorted(folder.parent.glob("numpy.libs/*openblas*")), *sorted(folder.glob("**/*openblas*.so*"))]:
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for name in names:
            if hasattr(handle, name):
                return getattr(handle, name)
    return None


def blas_threads(threads: int | None = None) -> int | None:
    """NumPy's OpenBLAS threads: set to `threads` (process-wide) when given; returns the count
    in use, None where NumPy's BLAS is not an OpenBLAS this can reach. The Streamlit server runs
    these forwards for many sessions on few cores: with one BLAS thread per product the seed
    discriminator's forward on 5,000 integers cost 35 ms of CPU against 108 ms with OpenBLAS's
    default threads, which spin while they wait (measured on the shared 2-core machine, load 11).
    The shipped models' probabilities are bit-identical either way (tested); in general a
    product's float32 sums may differ in the last bit with the thread count (as they do
    between machines with different core counts)."""
    if threads is not None:
        setter = _blas_function(_BLAS_SET)
        if setter is None:
            return None
        setter(int(threads))
    getter = _blas_function(_BLAS_GET)
    return None if getter is None else int(getter())


def block_rows(width: int) -> int:
    """Rows per block for an encoding of `width` int64 columns (see BLOCK_BYTES)."""
    return int(max(64, min(ROWS, BLOCK_BYTES // (8 * max(width, 1)))))


class Layer:
    """A layer's NumPy forward: `outputs = layer(inputs)`; built from its saved config and vars."""

    def __init__(self, config: dict, variables: list):
        self.config, self.name = config, config.get("name")

    def __call__(self, x):
        raise NotImplementedError


class Identity(Layer):  # InputLayer, Dropout (inference)
    def __call__(self, x):
        return x


class InputLayer(Layer):
    def __call__(self, x):
        shape = self.config.get("batch_shape") or self.config.get("batch_input_shape")
        return np.asarray(x, dtype=self.config.get("dtype", "float32")).reshape(-1, *shape[1:])


class Dense(Layer):
    def __init__(self, config, variables):
        super().__init__(config, variables)
        self.kernel = variables[0].astype(np.float32)
        self.bias = variables[1].astype(np.float32) if config.get("use_bias", True) else None
        _expect(variables, [self.kernel.shape] + ([(config["units"],)] if self.bias is not None else []), self.name)
        if self.kernel.shape[1] != config["units"]:
            raise ForwardError(f"{self.name}: kernel {self.kernel.shape} for {config['units']} units")
        self.activation = _activation(config.get("activation"))
        self._padded = None  # the kernel and a zero row, for _sparse_product

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float32)
        out = self._sparse_product(x) if x.ndim == 2 and x.shape[1] >= 256 else None
        if out is None:
            out = x @ self.kernel
        if self.bias is not None:
            out += self.bias
        return self.activation(out)

    def _sparse_product(self, x, rows_per_block: int = 256):
        """x @ kernel from the kernel rows that x's non-zeros pick, when at most 1 entry in 16 is
        non-zero (a divisibility encoding: 2-8 of 1,229 per row), else None. Per row, its
        non-zeros' column indices and values in slots (padded with a zero row of the kernel),
        then one small product per row: 10,000 rows through the seed discriminator's 1,229 x
        1,000 kernel in 0.07 s against 0.26 s for the dense product (float32, sums in another
        order: within 1e-6). The count comes first: listing the non-zeros of a dense hidden
        layer's output (the seed discriminator's 1,000 sigmoid units) only to refuse them cost
        more than the dense product it decided on."""
        nonzero = np.count_nonzero(x)
        if nonzero * 16 > x.size or nonzero == 0:
            return None
        flat = np.flatnonzero(x)
        rows, cols = np.divmod(flat, x.shape[1])
        counts = np.bincount(rows, minlength=x.shape[0])
        rank = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        index = np.full((x.shape[0], int(counts.max())), self.kernel.shape[0], dtype=np.int64)
        weight = np.zeros(index.shape, dtype=np.float32)
        index[rows, rank], weight[rows, rank] = cols, x.reshape(-1)[flat]
        if self._padded is None:
            self._padded = np.vstack([self.kernel, np.zeros((1, self.kernel.shape[1]), dtype=np.float32)])
        out = np.empty((x.shape[0], self.kernel.shape[1]), dtype=np.float32)
        for lo in range(0, x.shape[0], rows_per_block):
            hi = lo + rows_per_block
            out[lo:hi] = np.einsum("bsu,bs->bu", self._padded[index[lo:hi]], weight[lo:hi])
        return out


class LeakyReLU(Layer):
    def __call__(self, x):
        slope = np.float32(self.config.get("negative_slope", 0.3))
        return np.where(x >= 0, x, slope * x).astype(np.float32)


class Absolute(Layer):
    def __call__(self, x):
        return np.abs(x)


class Add(Layer):
    def __call__(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Activation(Layer):
    def __call__(self, x):
        return _activation(self.config["activation"])(x)


class ScalarInput(Layer):
    def __call__(self, x):
        return np.asarray(x, dtype=np.float64).reshape(-1, 1).astype(np.float32) / np.float32(self.config["scale"])


class DivisibilityEncoding(Layer):
    """One bit per odd prime <= prime_max (p divides n, n != p), then log n: `layers.DivisibilityEncoding`."""

    def __init__(self, config, variables):
        super().__init__(config, variables)
        self.primes = small_odd_primes(int(config["prime_max"])).astype(np.int64)
        self.divisibility = Divisibility(self.primes)

    def features(self, n):
        n = np.asarray(n, dtype=np.int64).reshape(-1, 1)
        divides = self.divisibility.matrix(n)
        return np.concatenate([divides.astype(np.float32), _log_feature(n)], axis=1)

    def __call__(self, x):
        return self.features(_odd(x))


class FactorEncoding(Layer):
    """The indices of n's odd prime factors <= prime_max, then log n: `layers.FactorEncoding`."""

    def __init__(self, config, variables):
        super().__init__(config, variables)
        self.primes = small_odd_primes(int(config["prime_max"])).astype(np.int64)
        self.slots = int(config["slots"])
        self.divisibility = Divisibility(self.primes)

    def features(self, n):
        n = np.asarray(n, dtype=np.int64).reshape(-1)
        factors = factor_layout(*self.divisibility.pairs(n), n.size, self.slots)
        return np.concatenate([factors.astype(np.float32), _log_feature(n)], axis=1)

    def __call__(self, x):
        return self.features(_odd(x))


class FactorDense(Layer):
    """Kernel rows of n's factors summed, plus log n's row and the bias: `layers.FactorDense`."""

    def __init__(self, config, variables):
        super().__init__(config, variables)
        units, k = int(config["units"]), int(config["num_primes"])
        self.kernel, self.log_kernel, self.bias = (v.astype(np.float32) for v in _expect(
            variables, [(k, units), (1, units), (units,)], self.name))
        self.slots = int(config["slots"])
        self.activation = _activation(config.get("activation"))

    def __call__(self, features):
        index = features[:, : self.slots].astype(np.int64)
        rows = self.kernel[np.maximum(index - 1, 0)] * (index > 0)[..., None].astype(np.float32)
        out = rows.sum(axis=1) + features[:, self.slots :] @ self.log_kernel + self.bias
        return self.activation(out)


class BernoulliGLN(Layer):
    """The GLN's prediction (`gln.BernoulliGLN.call`): halfspace contexts, geometric mixing."""

    def __init__(self, config, variables):
        super().__init__(config, variables)
        sizes = [int(s) for s in config["layer_sizes"]] + [1]
        dim, ctx = int(config["input_dim"]), int(config["context_dim"])
        shapes, fan_in = [], dim + 1
        for size in sizes:
            shapes += [(size, 2**ctx, fan_in), (size, ctx, dim), (size, ctx)]
            fan_in = size + 1
        variables = _expect(variables, shapes + [()], self.name)
        self.layers = [tuple(v.astype(np.float32) for v in variables[i : i + 3]) for i in range(0, 3 * len(sizes), 3)]
        eps = float(config["eps"])
        self.clip = np.float32(math.log((1.0 - eps) / eps))
        self.bias = np.float32(config["bias_logit"])
        self.powers = (2 ** np.arange(ctx)).astype(np.int64)

    def __call__(self, features):
        side = np.asarray(features, dtype=np.float32)
        batch = side.shape[0]
        bias = np.full((batch, 1), self.bias, dtype=np.float32)
        x = np.concatenate([np.clip(side, -self.clip, self.clip), bias], axis=1)
        rows = np.arange(batch)[:, None]
        for weights, normals, offsets in self.layers:
            size, contexts = weights.shape[0], weights.shape[1]
            if len(self.powers):
                projection = (side @ normals.reshape(-1, normals.shape[-1]).T).reshape(batch, size, -1)
                ctx = ((projection > offsets[None]).astype(np.int64) * self.powers).sum(axis=-1)
            else:
                ctx = np.zeros((batch, size), dtype=np.int64)
            every = (x @ weights.reshape(size * contexts, -1).T).reshape(batch, size, contexts)
            logits = np.clip(every[rows, np.arange(size)[None, :], ctx], -self.clip, self.clip)
            x = np.concatenate([logits, bias], axis=1)
        return _sigmoid(logits)


class SieveWindow(Layer):
    """The sieve generator (`layers.SieveWindow`), with the attributes `optimus.sampling.sieve`
    reads from the Keras layer: primes, window, scores, wide weights, position."""

    PHI = 0.6180339887498949
    numpy_forward = True

    def __init__(self, config, variables):
        super().__init__(config, variables)
        self.out_lo, self.out_hi = float(config["out_lo"]), float(config["out_hi"])
        self.window, self.prime_max = int(config["window"]), int(config["prime_max"])
        self.wide_prime_max = int(config.get("wide_prime_max", 0))
        self.density_power = float(config.get("density_power", 1.0))
        self.primes = small_odd_primes(self.prime_max).astype(np.int64)
        wide = small_odd_primes(self.wide_prime_max).astype(np.int64)
        self.wide_primes = wide[wide > self.prime_max]
        shapes = [(int(self.primes.sum()),)] + ([(2,)] if len(self.wide_primes) else [])
        _expect(variables, shapes, self.name)
        self.scores = variables[0].astype(np.float32)
        self.wide_weights = variables[1].astype(np.float32) if len(self.wide_primes) else None

    @staticmethod
    def wide_position(wide: np.ndarray) -> np.ndarray:
        if len(wide) < 2:
            return np.zeros(len(wide))
        return np.log(wide / wide[0]) / np.log(wide[-1] / wide[0])

    def position(self, u, out_lo=None, out_hi=None):
        """x0 = F^-1(u) / 2, bit for bit as the layer's TensorFlow ops compute it."""
        lo = self.out_lo if out_lo is None else float(out_lo)
        hi = self.out_hi if out_hi is None else float(out_hi)
        u = np.asarray(u, dtype=np.float64)
        if self.density_power == 1.0:
            log_lo, log_hi = np.log(lo), np.log(hi)
            return eigen_exp(log_lo + u * (log_hi - log_lo)) / 2.0
        e = 1.0 - self.density_power
        a, b = lo**e, hi**e
        return eigen_pow(a + u * (b - a), 1.0 / e) / 2.0

    def residue_preferences(self) -> dict[int, np.ndarray]:
        offsets = np.concatenate([[0], np.cumsum(self.primes)[:-1]])
        return {int(p): self.scores[o : o + p] for p, o in zip(self.primes, offsets, strict=True)}

    def __call__(self, z, out_lo=None, out_hi=None):
        """(reals [B, W] float64, logits [B, W] float64): the layer's outputs."""
        n0 = sieve.first_candidates(self, z, out_lo, out_hi)
        n = n0[:, None] + 2 * np.arange(self.window, dtype=np.int64)[None, :]
        return ((n - 1) // 2).astype(np.float64) + 0.5, sieve.window_logits(self, n0)


LAYERS = {
    "InputLayer": InputLayer, "Dense": Dense, "LeakyReLU": LeakyReLU, "Dropout": Identity,
    "Add": Add, "Activation": Activation, "Absolute": Absolute, "ScalarInput": ScalarInput,
    "DivisibilityEncoding": DivisibilityEncoding, "FactorEncoding": FactorEncoding,
    "FactorDense": FactorDense, "BernoulliGLN": BernoulliGLN, "SieveWindow": SieveWindow,
}


class Graph(Layer):
    """A Functional or Sequential model's layer graph, run in the saved order."""

    def __init__(self, config: dict, variables: dict[str, list], prefix: str = ""):
        super().__init__(config["config"], [])
        self.sequential = config["class_name"] == "Sequential"
        used: dict[str, int] = {}
        self.layers, self.inbound = [], {}
        for spec in self.config["layers"]:
            cls = spec["class_name"]
            base = snake_case(cls)
            used[base] = used.get(base, -1) + 1
            path = f"{prefix}layers/{base}" + (f"_{used[base]}" if used[base] else "")
            if cls in ("Functional", "Sequential"):
                layer = Graph(spec, variables, path + "/")
            elif cls in LAYERS:
                layer = LAYERS[cls](spec["config"], variables.get(path, []))
            else:
                raise ForwardError(f"layer class {cls!r} has no NumPy forward (only Optimus's saved networks run here)")
            self.layers.append(layer)
            self.inbound[layer.name] = spec.get("inbound_nodes", [])
        self.by_name = {layer.name: layer for layer in self.layers}
        if not self.sequential:
            self.inputs = [self.config["input_layers"]] if isinstance(self.config["input_layers"][0], str) \
                else self.config["input_layers"]
            outputs = self.config["output_layers"]
            self.outputs = [outputs] if isinstance(outputs[0], str) else outputs

    def get_layer(self, name: str):
        return self.by_name[name]

    def __call__(self, x):
        if self.sequential:
            for layer in self.layers:
                x = layer(x)
            return x
        values = {(self.inputs[0][0], 0): self.by_name[self.inputs[0][0]](x)}
        for layer in self.layers:
            nodes = self.inbound[layer.name]
            if not nodes:
                continue
            args = _resolve(nodes[0]["args"], values)
            out = layer(args[0] if len(args) == 1 else args)
            for i, value in enumerate(out if isinstance(out, tuple) else (out,)):
                values[(layer.name, i)] = value
        result = [values[(name, index)] for name, _, index in self.outputs]
        return result[0] if len(result) == 1 else tuple(result)


def _resolve(arg, values: dict):
    """A node's arguments with each saved tensor reference replaced by its computed value.
    (A module function: a nested recursive closure is a reference cycle that kept every
    intermediate array of a call alive until the next garbage collection, 76 MB per sample.)"""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        name, _, index = arg["config"]["keras_history"]
        return values[(name, index)]
    if isinstance(arg, list):
        return [_resolve(a, values) for a in arg]
    return arg


# --- the networks --------------------------------------------------------------------------


class Generator:
    """A saved generator's forward. `sieve` is its SieveWindow (None for the seed's dense one)."""

    numpy_forward = True

    def __init__(self, graph: Graph):
        self.graph, self.name = graph, graph.name
        layers = [layer for layer in graph.layers if not isinstance(layer, InputLayer)]
        self.sieve = layers[0] if len(layers) == 1 and isinstance(layers[0], SieveWindow) else None

    def __call__(self, latents):
        """Reals [B, 1] (dense) or (reals, logits) [B, W] (sieve), like the Keras model."""
        return self.graph(np.asarray(latents, dtype=np.float64).reshape(-1, 1))

    def residue_preferences(self):
        return None if self.sieve is None else self.sieve.residue_preferences()


class Discriminator:
    """A saved discriminator's forward: reals x -> P(2*floor(x)+1 is prime), in row blocks."""

    numpy_forward = True

    def __init__(self, graph: Graph):
        self.graph, self.name = graph, graph.name
        self.encoding, self.head = graph.get_layer("encoding"), graph.get_layer("head")

    def probabilities(self, n) -> np.ndarray:
        """float64 [B] for odd integers n (int64): the encoding reads n itself, never a real."""
        n = np.asarray(n, dtype=np.int64).reshape(-1)
        out = np.empty(n.size, dtype=np.float64)
        rows = block_rows(len(getattr(self.encoding, "primes", ())))
        for i in range(0, n.size, rows):
            part = n[i : i + rows]
            if hasattr(self.encoding, "features"):
                prob = self.head(self.encoding.features(part))
            else:  # the seed's ScalarInput reads the real x = (n - 1)/2 + 1/2
                prob = self.head(self.encoding(((part - 1) // 2).astype(np.float64) + 0.5))
            out[i : i + rows] = np.asarray(prob, dtype=np.float64).reshape(-1)
        return out

    def __call__(self, reals):
        """[B, 1] float32 probabilities for reals x, like the Keras model."""
        return self.probabilities(_odd(np.asarray(reals, dtype=np.float64).reshape(-1))).astype(np.float32).reshape(-1, 1)


def load_network(path, max_bytes: int):
    """The Generator or Discriminator saved in a .keras file (ForwardError if it is neither)."""
    config, variables = read_archive(path, max_bytes)
    if config.get("class_name") not in ("Functional", "Sequential"):
        raise ForwardError(f"{path} holds a {config.get('class_name')!r}, not an Optimus network")
    graph = Graph(config, variables)
    if graph.name == "generator":
        return Generator(graph)
    if graph.name == "discriminator":
        return Discriminator(graph)
    raise ForwardError(f"{path} holds a network named {graph.name!r}, not an Optimus generator or discriminator")


def generate(generator: Generator, latents, rng: np.random.Generator, temperature: float = 1.0,
             out_lo=None, out_hi=None) -> np.ndarray:
    """The generator's reals x (float64) for latent integers: `networks.generate`, in NumPy.
    A sieve generator draws from `optimus.sampling.sieve` (the same rng use as `networks.choose`)."""
    if generator.sieve is not None:
        return sieve.generate(generator.sieve, latents, rng, temperature, out_lo, out_hi)
    if out_lo is not None or out_hi is not None:
        raise ValueError("only a sieve generator has a band to move (this generator has no sampling band)")
    z = np.asarray(latents, dtype=np.float64).reshape(-1, 1).astype(np.float32)
    out = np.empty(len(z), dtype=np.float64)
    for i in range(0, len(z), ROWS):
        out[i : i + ROWS] = np.asarray(generator.graph(z[i : i + ROWS]), dtype=np.float64).reshape(-1)
    return out
