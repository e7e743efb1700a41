"""The continual-learning benchmark: how much does each method forget old primality tasks?

A task is a stream of balanced batches (half primes, half composites, labelled by the exact
`optimus.primes.is_prime`). Two families:

- `factor` (default): task j contrasts primes with composites whose smallest prime factor is
  p_j (3, 5, 7, 11, 13), all odd integers in [10**6, 10**9). Tasks teach different rules ("a
  multiple of 3 is composite", then "... of 5"), so plain fine-tuning forgets (ANCHORS.md).
- `range`: task j contrasts primes with odd composites in [lo_j, hi_j) (default: the decades
  [10**4, 10**5) ... [10**8, 10**9)). Divisibility rules hold in every range, so expect little
  forgetting with the Fourier encoding: a control.

Methods (the same labelled samples per task for every method): every continual-learning
method of `optimus.continual`'s registry (`none` = fine-tuning, `ewc`, `online-ewc`, `l2`,
`si`, `replay`, and any plugin registered later) protecting one MLP, `joint` (all tasks' data
shuffled together, same total budget: the upper bound) on the same MLP, and `gln` (a Bernoulli
gated linear network with online local updates: no Fisher, no replay).

Reported per method: the accuracy matrix R[i][j] = balanced accuracy on task j's held-out test
set after training on tasks 0..i, ACC, BWT (Lopez-Paz & Ranzato 2017), forgetting (Chaudhry et
al. 2018) and wall time. Penalty strengths are tuned on a validation split, never on test.
Held-out sets are disjoint from training data by construction: a hash of n assigns every odd
integer to exactly one of train / validation / test.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from optimus import continual
from optimus.evaluation.metrics import acc, balanced_accuracy, bwt, forgetting
from optimus.nets.encoding import encode, encoding_name
from optimus.primes import is_prime, small_odd_primes, uniform_odd
from optimus.validate import parse_int

FAMILIES = ("factor", "range")
# METHODS (what --methods and the pages offer) and PENALTY_METHODS (those with a lambda to
# tune) are read from optimus.continual's registry on each access (module __getattr__ below),
# so a method registered later, in a plugin file or a test, is offered too. Besides the
# registry, two baselines that are not a method protecting the MLP (so not registry entries;
# README, "The continual-learning benchmark"): "joint" is a schedule (every task's data at
# once, no sequence: the upper bound) and "gln" another learner (its gating is its memory).
BASELINES = {"joint": "all tasks at once, same budget: the upper bound",
             "gln": "gated linear network, local online updates, no Fisher, no replay"}
EXTRA_METHODS = tuple(BASELINES)
FACTOR_PRIMES = (3, 5, 7, 11, 13)
FACTOR_RANGE = (10**6, 10**9)
DECADES = tuple((10**k, 10 ** (k + 1)) for k in range(4, 9))
MAX_TASKS = 20
MAX_FACTOR_PRIME = 997
MAX_HI = 10**10
# A range this wide holds about 430 primes even near 10**10 (and thousands of odd
# composites), so its validation part (a 10% hash bucket) gets primes with overwhelming
# probability; at width 1,000 it would miss them about 1% of the time.
MIN_RANGE_WIDTH = 10_000

# Penalty-strength grids, searched on the validation split (log-spaced, half decades in the
# region that matters; the per-sample Fisher of this MLP is small per weight, so EWC needs
# lambda in the hundreds to thousands on `factor`, and the smallest values on `range`, where
# there is little to forget).
LAMBDA_GRIDS = {
    # A 1-2-5 grid: the validation optimum sits between 1e2 and 1e4 on the factor family, and a
    # decade-wide step there moves BWT by a third.
    "ewc": (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 1e2, 2e2, 5e2, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5),
    "online-ewc": (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 1e2, 2e2, 5e2, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5),
    "l2": (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
    # SI's c (Zenke et al. used 0.1-1 on split MNIST). Measured, seed 0, default settings:
    # the validation optimum is 1 on factor; on range, where there is little to forget, the
    # smallest value wins whatever the grid's bottom (as for EWC).
    "si": (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3),
    # Replay's lam weighs the stored samples' mean loss against the current task's: 1 = equal.
    # Measured, seed 0, default settings, on a grid 0.1-10: the validation optimum sat at its
    # top on factor (10: 0.758, 3: 0.753); on 0.03-100 it is 30 (0.759). On range the
    # smallest value wins, as for every penalty.
    "replay": (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
}
DEFAULT_LAMBDA_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3)  # a registered method without a grid here


def lambda_grid(method: str) -> tuple:
    return LAMBDA_GRIDS.get(method, DEFAULT_LAMBDA_GRID)


def method_names() -> tuple[str, ...]:
    """Every method the benchmark runs: the registry's, then the BASELINES."""
    return continual.names() + EXTRA_METHODS


def penalty_method_names() -> tuple[str, ...]:
    """The registry's methods with a lambda (tuned on the validation split unless fixed)."""
    return tuple(m for m in continual.names() if continual.get(m).uses_lambda)


def method_summary(name: str) -> str:
    """One line per method for menus: the registry's summary, or a baseline's."""
    return BASELINES.get(name) or continual.get(name).summary


def __getattr__(name: str):
    if name == "METHODS":
        return method_names()
    if name == "PENALTY_METHODS":
        return penalty_method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Task:
    """Primes against odd composites in [lo, hi); if `factor` is set, only composites whose
    smallest prime factor is `factor`."""

    lo: int
    hi: int
    factor: int | None = None

    @property
    def name(self) -> str:
        if self.factor is not None:
            return f"spf {self.factor}"
        return f"[{_short(self.lo)}, {_short(self.hi)})"


def _short(n: int) -> str:
    if n >= 10 and 10 ** round(math.log10(n)) == n:
        return f"1e{round(math.log10(n))}"
    return str(n)


@dataclass
class ForgettingConfig:
    """Every knob of one benchmark run (saved in the result's "config")."""

    family: str = "factor"
    tasks: list = field(default_factory=list)  # primes (factor) or [lo, hi] pairs (range)
    methods: list = field(default_factory=lambda: list(method_names()))
    encoding: str = "fourier"
    seed: int = 0
    steps_per_task: int = 150
    batch_size: int = 256
    learning_rate: float = 1e-3  # Adam, for the MLP methods
    hidden: tuple = (128, 64)
    fisher_samples: int = 500  # per-sample Fisher, from the task's training data
    # "empirical": squared gradients of log p(true label); "expected": the Fisher under the
    # model's own Bernoulli output, E_y[(d log p(y|x))^2] = p (1 - p) (d logit)^2, exactly.
    fisher: str = "empirical"
    online_gamma: float = 1.0
    test_size: int = 4000  # per task, half primes (binomial noise of an accuracy ~0.008)
    val_size: int = 2000  # per task, for tuning penalty strengths
    factor_range: tuple = FACTOR_RANGE
    # GLN: hidden layers of 64 and 32 gated neurons, 2**8 weight vectors each, constant eta,
    # axis-aligned halfspaces (each hyperplane thresholds one feature). Chosen on the
    # validation split of `factor`: the paper's dense Gaussian hyperplanes reached ACC 0.69
    # there, no better than fine-tuning, because a dense random normal barely moves when one
    # residue changes, so old and new tasks share contexts and overwrite each other's
    # weights; axis-aligned ones reached 0.88 (mean of seeds 0-2; 0.82 with 32-16 neurons).
    gln_layers: tuple = (64, 32)
    gln_context_dim: int = 8
    gln_learning_rate: float = 0.01
    gln_w_max: float = 10.0
    gln_context_sparsity: int = 1
    gln_context_bias_std: float = 0.2


# --- task lists ----------------------------------------------------------------------------

def _odd_prime(p: int) -> bool:
    # Above MAX_FACTOR_PRIME the callers refuse the task anyway, so is_prime is not asked
    # (it refuses values beyond its exact range).
    return p >= 3 and p % 2 == 1 and (p > MAX_FACTOR_PRIME or is_prime(p))


def parse_tasks(family: str, text_list) -> list:
    """CLI/app task list -> the `tasks` argument of run_benchmark.

    `factor`: odd primes ("3", "5", ...) -> list[int]. `range`: "LO:HI" pairs with
    0 < LO < HI <= 10**10 -> list[tuple[int, int]] (odd integers LO <= n < HI). Raises
    ValueError with a one-line message. An empty list means the family's defaults.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; choose from {', '.join(FAMILIES)}")
    items = [t for text in text_list for t in str(text).replace(",", " ").split()]
    if not items:
        return list(FACTOR_PRIMES) if family == "factor" else list(DECADES)
    if len(items) < 2:
        raise ValueError("need at least 2 tasks to measure forgetting")
    if len(items) > MAX_TASKS:
        raise ValueError(f"at most {MAX_TASKS} tasks, got {len(items)}")
    out = []
    if family == "factor":
        for item in items:
            p = parse_int(item, what="factor task")
            if not _odd_prime(p):
                raise ValueError(f"factor task {item!r} is not an odd prime")
            if p > MAX_FACTOR_PRIME:
                raise ValueError(f"factor task {p} is above {MAX_FACTOR_PRIME}")
            out.append(p)
    else:
        for item in items:
            if item.count(":") != 1:
                raise ValueError(f"range task {item!r} is not of the form LO:HI")
            lo, hi = (parse_int(part, what="range bound") for part in item.split(":"))
            if not 0 < lo < hi <= MAX_HI:
                raise ValueError(f"range task {item!r} must satisfy 0 < LO < HI <= 10**10")
            if hi - lo < MIN_RANGE_WIDTH:
                raise ValueError(f"range task {item!r} is narrower than {MIN_RANGE_WIDTH}")
            out.append((lo, hi))
    if len(set(out)) != len(out):
        raise ValueError("tasks must be distinct")
    return out


def make_tasks(family: str, tasks=None, factor_range=FACTOR_RANGE) -> list[Task]:
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; choose from {', '.join(FAMILIES)}")
    if family == "factor":
        lo, hi = factor_range
        primes = list(tasks) if tasks else list(FACTOR_PRIMES)
        for p in primes:
            if not _odd_prime(int(p)) or int(p) > MAX_FACTOR_PRIME:
                raise ValueError(f"factor task {p} is not an odd prime <= {MAX_FACTOR_PRIME}")
            if int(p) * int(p) >= hi:
                raise ValueError(f"factor task {p}: no composite with smallest factor {p} below {hi}")
        return [Task(int(lo), int(hi), int(p)) for p in primes]
    pairs = [tuple(int(v) for v in pair) for pair in (tasks or DECADES)]
    for lo, hi in pairs:
        if not 0 < lo < hi <= MAX_HI or hi - lo < MIN_RANGE_WIDTH:
            raise ValueError(f"range task [{lo}, {hi}) must satisfy 0 < lo < hi <= 10**10, hi - lo >= {MIN_RANGE_WIDTH}")
    return [Task(lo, hi) for lo, hi in pairs]


# --- data ----------------------------------------------------------------------------------

SPLITS = {"train": (3, 10), "val": (2, 3), "test": (0, 2)}  # buckets of a hash of n, out of 10


def _split_bucket(n: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random bucket 0..9 per integer (splitmix64 finaliser). A hash, because
    a plain residue such as n mod 10 would give the test set a biased set of residues."""
    z = n.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(10)).astype(np.int64)


def in_split(n: np.ndarray, split: str) -> np.ndarray:
    lo, hi = SPLITS[split]
    b = _split_bucket(n)
    return (b >= lo) & (b < hi)


def _split_fraction(split: str) -> float:
    lo, hi = SPLITS[split]
    return (hi - lo) / 10.0


def _draw_primes(task: Task, count: int, split: str, rng) -> np.ndarray:
    out, have = [], 0
    # About 2 / ln(n) of odd integers are prime; draw enough for one round, usually.
    rate = _split_fraction(split) * 2.0 / math.log(task.hi)
    for _ in range(1000):
        if have >= count:
            break
        n = uniform_odd(task.lo, task.hi - 1, int(1.3 * (count - have) / rate) + 1024, rng)
        n = n[in_split(n, split)]
        n = n[is_prime(n)]
        out.append(n)
        have += len(n)
    if have < count:
        raise RuntimeError(f"task {task.name}: could not draw {count} primes for {split}")
    return np.concatenate(out)[:count]


def _draw_composites(task: Task, count: int, split: str, rng) -> np.ndarray:
    out, have = [], 0
    for _ in range(1000):
        if have >= count:
            break
        # Composites: most odd integers; spf p: a fraction prod_{q<p} (1 - 1/q) >= 0.16 of m.
        size = int(1.5 * (count - have) / (_split_fraction(split) * 0.16)) + 1024
        if task.factor is None:
            n = uniform_odd(task.lo, task.hi - 1, size, rng)
            n = n[in_split(n, split) & (n > 1)]
            n = n[~is_prime(n)]
        else:
            # n = p m with m odd, m > 1 and free of primes below p: smallest factor exactly p.
            p = task.factor
            m_lo, m_hi = -(-task.lo // p), -(-task.hi // p)
            m = uniform_odd(max(m_lo, 3), m_hi - 1, size, rng)
            for q in small_odd_primes(p - 1):
                m = m[m % q != 0]
            n = p * m
            n = n[in_split(n, split) & (n >= task.lo) & (n < task.hi)]
        out.append(n)
        have += len(n)
    if have < count:
        raise RuntimeError(f"task {task.name}: could not draw {count} composites for {split}")
    return np.concatenate(out)[:count]


def sample_task(task: Task, count: int, split: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """`count` integers of `task` from `split` (half primes), shuffled, and their labels from
    `optimus.primes.is_prime` (float32, 1 = prime)."""
    half = count // 2
    n = np.concatenate([_draw_primes(task, half, split, rng), _draw_composites(task, count - half, split, rng)])
    n = n[rng.permutation(len(n))]
    return n, np.asarray(is_prime(n), dtype=np.float32)


def _balanced_batches(primes: np.ndarray, composites: np.ndarray, batch_size: int, rng):
    """[steps, batch] integers and labels; every batch is exactly half primes."""
    half = batch_size // 2
    steps = len(primes) // half
    p = primes[rng.permutation(len(primes))][: steps * half].reshape(steps, half)
    c = composites[rng.permutation(len(composites))][: steps * half].reshape(steps, half)
    n = np.concatenate([p, c], axis=1)
    y = np.concatenate([np.ones_like(p), np.zeros_like(c)], axis=1).astype(np.float32)
    return n, y


@dataclass
class _TaskData:
    train_n: np.ndarray  # [steps, batch] int64
    train_x: np.ndarray  # [steps, batch, features] float32
    train_y: np.ndarray  # [steps, batch] float32
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _features(n: np.ndarray, encoding: str) -> np.ndarray:
    flat = encode(np.asarray(n).reshape(-1), encoding)
    return flat.reshape(*np.shape(n), flat.shape[-1]).astype(np.float32)


def _make_data(cfg: ForgettingConfig, tasks: list[Task]) -> list[_TaskData]:
    data = []
    for index, task in enumerate(tasks):
        # One generator per (seed, task, split): the data never depend on which methods run.
        half = cfg.steps_per_task * cfg.batch_size // 2
        rng = np.random.default_rng([cfg.seed, index, 0])
        primes = _draw_primes(task, half, "train", rng)
        composites = _draw_composites(task, half, "train", rng)
        train_n, train_y = _balanced_batches(primes, composites, cfg.batch_size, rng)
        # Labels come from the exact test, not from how the integers were drawn.
        if not np.array_equal(np.asarray(is_prime(train_n.reshape(-1)), np.float32), train_y.reshape(-1)):
            raise RuntimeError(f"task {task.name}: drawn classes disagree with is_prime")
        val_n, val_y = sample_task(task, cfg.val_size, "val", np.random.default_rng([cfg.seed, index, 1]))
        test_n, test_y = sample_task(task, cfg.test_size, "test", np.random.default_rng([cfg.seed, index, 2]))
        data.append(_TaskData(train_n, _features(train_n, cfg.encoding), train_y,
                              _features(val_n, cfg.encoding), val_y, _features(test_n, cfg.encoding), test_y))
    return data


# --- learners ------------------------------------------------------------------------------

class _MLPLearner:
    """An MLP (Keras, Adam) learning the tasks in order, protected by one continual-learning
    method from the registry: its compiled task loop adds `method.penalty()` to the loss and
    calls `method.after_step`; `consolidate` ends a task with `method.after_task(x, y)`. One
    learner per method; `reset` rewinds it, so lambda-tuning runs reuse the traced graphs."""

    def __init__(self, input_dim: int, cfg: ForgettingConfig, method: str):
        # TensorFlow only here and in the learners below: the pages import this module for its
        # settings and task lists, and run the benchmark in a child process.
        import keras  # TensorFlow: the pages import this module for its settings
        import tensorflow as tf  # TensorFlow: as above

        from optimus.continual import fisher, step  # TensorFlow: as above

        self.tf, self._fisher, self._apply_step = tf, fisher, step.apply_step
        layers = [keras.Input(shape=(input_dim,))]
        for i, width in enumerate(cfg.hidden):
            layers.append(keras.layers.Dense(width, activation="relu",
                                             kernel_initializer=keras.initializers.GlorotUniform(seed=cfg.seed + i)))
        layers.append(keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=cfg.seed + 99)))
        self.model = keras.Sequential(layers)
        self.variables = self.model.trainable_variables
        self.optimizer = keras.optimizers.Adam(cfg.learning_rate)
        self.optimizer.build(self.variables)
        learner = continual.Learner(
            self.variables,
            log_likelihood=self.expected_log_likelihood if cfg.fisher == "expected" else self.log_likelihood,
            loss=self.loss,
            sample_spec=(tf.TensorSpec([input_dim], tf.float32), tf.TensorSpec([], tf.float32)))
        self.method = continual.create(method, learner, gamma=cfg.online_gamma, seed=cfg.seed)
        self._initial = [np.array(v) for v in self.variables]
        # Adam's variables include its learning rate: restore the snapshot, don't zero them.
        self._initial_optimizer = [np.array(v) for v in self.optimizer.variables]
        self._train = tf.function(self._train_steps, reduce_retracing=True)
        self._predict = tf.function(self._probabilities, reduce_retracing=True)

    def reset(self, lam: float) -> None:
        for v, value in zip(self.variables, self._initial, strict=True):
            v.assign(value)
        for v, value in zip(self.optimizer.variables, self._initial_optimizer, strict=True):
            v.assign(value)
        self.method.reset()
        self.method.lam = lam

    def _train_steps(self, xs, ys):
        tf = self.tf
        loss = tf.constant(0.0)
        for i in tf.range(tf.shape(xs)[0]):
            with tf.GradientTape(persistent=self.method.needs_step_gradients) as tape:
                loss = tf.reduce_mean(self.loss(xs[i], ys[i], training=True))
                penalty = self.method.penalty()
                total = loss + penalty
            # The GAN's rule (optimus.continual.step): the task loss's own gradient only for
            # methods that read it (SI's path integral); the others keep one backward pass.
            self._apply_step(self.optimizer, self.method, self.variables, tape, loss, penalty, total)
        return loss

    def _probabilities(self, x):
        return self.tf.sigmoid(self.model(x, training=False)[:, 0])

    def loss(self, x, y, training=False):
        """[B] binary cross-entropy per sample (replay re-applies it to stored samples)."""
        return -self._fisher.bernoulli_log_likelihood_from_logits(self.model(x, training=training)[:, 0], y)

    def log_likelihood(self, x, y):
        return self._fisher.bernoulli_log_likelihood_from_logits(self.model(x, training=False)[:, 0], y)

    def expected_log_likelihood(self, x, y):
        return self._fisher.expected_bernoulli_score(self.model(x, training=False)[:, 0])  # y is unused

    def train(self, xs, ys) -> None:
        self._train(xs, ys)

    def consolidate(self, x, y) -> None:
        self.method.after_task(x, y)

    def predict(self, x) -> np.ndarray:
        return self._predict(x).numpy()


class _GLNLearner:
    def __init__(self, input_dim: int, cfg: ForgettingConfig):
        from optimus.nets.gln import build_gln  # TensorFlow: see _MLPLearner.__init__

        self.model = build_gln(input_dim, cfg.gln_layers, cfg.gln_context_dim, seed=cfg.seed,
                               learning_rate=cfg.gln_learning_rate, w_max=cfg.gln_w_max,
                               context_sparsity=cfg.gln_context_sparsity, context_bias_std=cfg.gln_context_bias_std)

    def train(self, xs, ys) -> None:
        for x, y in zip(xs, ys, strict=True):
            self.model.update(x, y)

    def consolidate(self, x, y) -> None:  # nothing to do: gating is the GLN's memory
        pass

    def predict(self, x) -> np.ndarray:
        return self.model(x).numpy()[:, 0]


# --- the benchmark -------------------------------------------------------------------------

class _Progress:
    def __init__(self, callback, total_units: int):
        self.callback, self.total, self.done = callback, max(total_units, 1), 0

    def step(self, message: str, units: int = 1) -> None:
        self.done += units
        if self.callback is not None:
            self.callback(min(self.done / self.total, 1.0), message)


def _accuracy_row(learner, data: list[_TaskData], split: str) -> list[float]:
    xs = [d.val_x if split == "val" else d.test_x for d in data]
    ys = [d.val_y if split == "val" else d.test_y for d in data]
    probs = learner.predict(np.concatenate(xs))  # one call for every task's held-out set
    bounds = np.cumsum([0] + [len(x) for x in xs])
    return [balanced_accuracy(y, probs[a:b]) for y, a, b in zip(ys, bounds[:-1], bounds[1:], strict=True)]


def _run_sequence(learner, data: list[_TaskData], cfg: ForgettingConfig, split: str, progress, label: str):
    """Train on the tasks in order; R[i] = accuracies on every task after task i."""
    R = []
    for i, d in enumerate(data):
        learner.train(d.train_x, d.train_y)
        k = min(cfg.fisher_samples, d.train_x.shape[0] * d.train_x.shape[1])
        flat_x = d.train_x.reshape(-1, d.train_x.shape[-1])
        learner.consolidate(flat_x[:k], d.train_y.reshape(-1)[:k])
        R.append(_accuracy_row(learner, data, split))
        progress.step(f"{label}: task {i + 1}/{len(data)}")
    return R


def _run_joint(learner, data: list[_TaskData], cfg: ForgettingConfig, progress) -> list:
    """All tasks' training samples pooled and re-dealt into balanced batches: the same number
    of steps and samples as the sequential methods, in one pass. R's rows are all the final
    evaluation (there is no sequence), so its BWT and forgetting are 0 by construction."""
    rng = np.random.default_rng([cfg.seed, 10**6])
    x = np.concatenate([d.train_x.reshape(-1, d.train_x.shape[-1]) for d in data])
    y = np.concatenate([d.train_y.reshape(-1) for d in data])
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    index, labels = _balanced_batches(pos, neg, cfg.batch_size, rng)
    learner.train(x[index], labels)
    progress.step("joint: trained on all tasks", units=len(data))
    row = _accuracy_row(learner, data, "test")
    return [list(row) for _ in data]


def _summary(R, seconds: float) -> dict:
    return {"R": [[round(float(v), 4) for v in row] for row in R], "acc": round(acc(R), 4),
            "bwt": round(bwt(R), 4), "forgetting": round(forgetting(R), 4), "seconds": round(seconds, 2)}


class _Bench:
    """Data and learners shared by tuning and the final runs of one benchmark."""

    def __init__(self, cfg: ForgettingConfig):
        self.cfg = cfg
        self.tasks = make_tasks(cfg.family, cfg.tasks or None, cfg.factor_range)
        self.data = _make_data(cfg, self.tasks)
        self.input_dim = self.data[0].train_x.shape[-1]
        self._learners = {}

    def learner(self, method: str):
        key = "none" if method == "joint" else method  # joint: no method, all tasks' data at once
        if key not in self._learners:
            self._learners[key] = _GLNLearner(self.input_dim, self.cfg) if key == "gln" else _MLPLearner(self.input_dim, self.cfg, key)
        return self._learners[key]

    def tune(self, method: str, grid, progress) -> dict:
        scores = []
        for lam in grid:
            learner = self.learner(method)
            learner.reset(lam)
            R = _run_sequence(learner, self.data, self.cfg, "val", progress, f"tuning {method} lambda={lam:g}")
            scores.append(acc(R))
        best = float(grid[int(np.argmax(scores))])
        return {"grid": [float(g) for g in grid], "val_acc": [round(s, 4) for s in scores], "best": best}

    def run(self, method: str, lam: float, progress) -> dict:
        start = time.perf_counter()
        if method == "gln":
            self._learners.pop("gln", None)  # a fresh GLN per run
            R = _run_sequence(self.learner("gln"), self.data, self.cfg, "test", progress, "gln")
        else:
            learner = self.learner(method)
            learner.reset(lam if method in penalty_method_names() else 0.0)
            if method == "joint":
                R = _run_joint(learner, self.data, self.cfg, progress)
            else:
                R = _run_sequence(learner, self.data, self.cfg, "test", progress, method)
        return _summary(R, time.perf_counter() - start)


def _validate(cfg: ForgettingConfig) -> None:
    if cfg.family not in FAMILIES:
        raise ValueError(f"unknown task family {cfg.family!r}; choose from {', '.join(FAMILIES)}")
    cfg.encoding = encoding_name(cfg.encoding)  # results saved as "residue" read as "fourier"
    unknown = [m for m in cfg.methods if m not in method_names()]
    if unknown or not cfg.methods:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(method_names())}")
    if not 1 <= cfg.steps_per_task <= 10_000:
        raise ValueError(f"steps per task must be in [1, 10000], got {cfg.steps_per_task}")
    if not (2 <= cfg.batch_size <= 4096 and cfg.batch_size % 2 == 0):
        raise ValueError(f"batch size must be even and in [2, 4096], got {cfg.batch_size}")
    if not 0 <= cfg.seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {cfg.seed}")
    if cfg.fisher not in ("empirical", "expected"):
        raise ValueError(f"fisher must be 'empirical' or 'expected', got {cfg.fisher!r}")
    if cfg.tasks and len(cfg.tasks) < 2:
        raise ValueError("need at least 2 tasks to measure forgetting")


def _lambdas(method_lambda, methods) -> dict:
    """Fixed penalty strengths from the `method_lambda` argument; missing ones get tuned.
    A number sets EWC's and online EWC's lambda (l2's scale differs: it stays tuned); a dict
    sets any of them by method name."""
    if method_lambda is None:
        return {}
    if isinstance(method_lambda, dict):
        fixed = {m: float(v) for m, v in method_lambda.items()}
    else:
        fixed = {"ewc": float(method_lambda), "online-ewc": float(method_lambda)}
    for m, v in fixed.items():
        if m not in penalty_method_names():
            raise ValueError(f"lambda given for {m!r}, which has no penalty")
        if not 0.0 <= v <= 1e9:
            raise ValueError(f"lambda for {m} must be in [0, 1e9], got {v}")
    return {m: v for m, v in fixed.items() if m in methods}


def tune_lambda(method: str = "ewc", grid=None, progress=None, **config) -> dict:
    """Search `grid` (default lambda_grid(method)) for the penalty strength with the best ACC
    on the validation split; `config` as ForgettingConfig. Returns grid, val_acc and best."""
    if method not in penalty_method_names():
        raise ValueError(f"method {method!r} has no lambda; choose from {', '.join(penalty_method_names())}")
    cfg = ForgettingConfig(**config)
    _validate(cfg)
    bench = _Bench(cfg)
    grid = tuple(grid or lambda_grid(method))
    return bench.tune(method, grid, _Progress(progress, len(grid) * len(bench.tasks)))


def run_benchmark(family: str = "factor", tasks=None, methods=None, encoding: str = "fourier", seed: int = 0,
                  method_lambda=None, steps_per_task: int = 150, batch_size: int = 256, progress=None,
                  **options) -> dict:
    """Run the benchmark; returns a JSON-serialisable dict.

    `tasks`: parse_tasks' output (None: the family's defaults). `methods`: a subset of METHODS
    (None: all). `method_lambda` (`ewc_lambda` in settings saved before: read too): None tunes
    every penalty method on the validation split; a number fixes EWC's and online EWC's; a
    dict fixes any by method name. `progress(fraction, message)` is called after every task of
    every run. `options`: other ForgettingConfig fields.
    """
    method_lambda = _older_lambda(method_lambda, options)
    cfg = _config(family, tasks, methods, encoding, seed, steps_per_task, batch_size, options)
    fixed = _lambdas(method_lambda, cfg.methods)
    to_tune = [m for m in cfg.methods if m in penalty_method_names() and m not in fixed]
    started = time.perf_counter()
    bench = _Bench(cfg)
    T = len(bench.tasks)
    units = T * (len(cfg.methods) + sum(len(lambda_grid(m)) for m in to_tune))
    progress = _Progress(progress, units)
    progress.step(f"data ready: {T} tasks, {cfg.steps_per_task * cfg.batch_size} training samples each", units=0)

    tuning, lambdas = {}, dict(fixed)
    tune_start = time.perf_counter()
    for m in to_tune:
        tuning[m] = bench.tune(m, lambda_grid(m), progress)
        lambdas[m] = tuning[m]["best"]
    tune_seconds = time.perf_counter() - tune_start

    results = {}
    for m in cfg.methods:
        results[m] = bench.run(m, lambdas.get(m, 0.0), progress)
        if m in lambdas:
            results[m]["lambda"] = lambdas[m]

    config = dataclasses.asdict(cfg)
    config["tasks"] = [list(t) if isinstance(t, tuple) else t for t in (cfg.tasks or
                       ([t.factor for t in bench.tasks] if family == "factor" else [[t.lo, t.hi] for t in bench.tasks]))]
    return {
        "config": config,
        "tasks": [t.name for t in bench.tasks],
        "methods": results,
        "method_lambda": lambdas,
        "tuning": tuning,
        "seconds": {"total": round(time.perf_counter() - started, 2), "tuning": round(tune_seconds, 2)},
    }


def _older_lambda(method_lambda, options: dict):
    """`method_lambda`, or the `ewc_lambda` of settings saved before the rename (taken out of
    `options`); ValueError when both are given."""
    if "ewc_lambda" not in options:
        return method_lambda
    older = options.pop("ewc_lambda")
    if method_lambda is not None and older is not None:
        raise ValueError("give method_lambda or its older name ewc_lambda, not both")
    return older if method_lambda is None else method_lambda


def _config(family, tasks, methods, encoding, seed, steps_per_task, batch_size, options) -> ForgettingConfig:
    """The checked ForgettingConfig of `run_benchmark`'s arguments (ValueError naming the first bad one)."""
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(ForgettingConfig)})
    if unknown:
        raise ValueError(f"unknown benchmark options {unknown}")
    cfg = ForgettingConfig(family=family, tasks=list(tasks or []), methods=list(methods or method_names()),
                           encoding=encoding, seed=int(seed), steps_per_task=int(steps_per_task),
                           batch_size=int(batch_size), **options)
    _validate(cfg)
    return cfg


MAX_SEEDS = 10


def check_settings(family: str = "factor", tasks=None, methods=None, encoding: str = "fourier", seed: int = 0,
                   method_lambda=None, steps_per_task: int = 150, batch_size: int = 256, **options) -> None:
    """ValueError naming the first bad setting of `run_benchmark(...)`, without running it (a
    launcher checks before it spawns a process)."""
    method_lambda = _older_lambda(method_lambda, dict(options))
    options.pop("ewc_lambda", None)
    cfg = _config(family, tasks, methods, encoding, seed, steps_per_task, batch_size, options)
    _lambdas(method_lambda, cfg.methods)
    make_tasks(cfg.family, cfg.tasks or None, cfg.factor_range)


def _spread(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
            "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}


def run_seeds(seeds, progress=None, **settings) -> dict:
    """`run_benchmark(**settings)` once per seed (data, initial weights and tuning all follow the
    seed); returns {"seeds", "runs" (one result per seed), "mean", "spread"}. "mean" is shaped
    like one run's result (R, ACC, BWT, forgetting per method averaged over seeds), so the
    single-run charts draw it; "spread" holds mean, std, min and max over seeds of ACC, BWT and
    forgetting per method. `progress(fraction, message)` covers all seeds."""
    seeds = [int(s) for s in seeds]
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds):
        raise ValueError(f"give 1 to {MAX_SEEDS} distinct seeds, got {seeds}")
    runs = []
    for k, seed in enumerate(seeds):
        def step(fraction, message, k=k, seed=seed):
            if progress is not None:
                progress((k + fraction) / len(seeds), f"seed {seed} ({k + 1}/{len(seeds)}): {message}")

        runs.append(run_benchmark(seed=seed, progress=step, **settings))
    first = runs[0]
    methods, spread = {}, {}
    for method in first["methods"]:
        per_seed = [r["methods"][method] for r in runs]
        methods[method] = {
            "R": np.round(np.mean([m["R"] for m in per_seed], axis=0), 4).tolist(),
            **{k: round(float(np.mean([m[k] for m in per_seed])), 4) for k in ("acc", "bwt", "forgetting")},
            "seconds": round(float(np.sum([m["seconds"] for m in per_seed])), 2),
        }
        lambdas = [m["lambda"] for m in per_seed if "lambda" in m]
        if lambdas:
            methods[method]["lambda"] = float(np.median(lambdas))
        spread[method] = {k: _spread([m[k] for m in per_seed]) for k in ("acc", "bwt", "forgetting")}
    config = dict(first["config"], seed=None)
    mean = {"config": config, "tasks": first["tasks"], "methods": methods, "tuning": {},
            "method_lambda": {m: methods[m]["lambda"] for m in methods if "lambda" in methods[m]},
            "seconds": {"total": round(sum(r["seconds"]["total"] for r in runs), 2),
                        "tuning": round(sum(r["seconds"]["tuning"] for r in runs), 2)}}
    return {"seeds": seeds, "runs": runs, "mean": mean, "spread": spread}


def format_table(result: dict) -> str:
    """A plain-text summary of run_benchmark's result, one line per method."""
    lines = [f"family {result['config']['family']}, encoding {result['config']['encoding']}, "
             f"tasks: {', '.join(result['tasks'])}",
             f"{'method':<11} {'ACC':>6} {'BWT':>7} {'forget':>7} {'seconds':>8}  lambda"]
    for method, r in result["methods"].items():
        lam = f"{r['lambda']:g}" if "lambda" in r else ""
        lines.append(f"{method:<11} {r['acc']:6.3f} {r['bwt']:+7.3f} {r['forgetting']:7.3f} {r['seconds']:8.1f}  {lam}")
    for method, t in result.get("tuning", {}).items():
        pairs = ", ".join(f"{g:g}: {a:.3f}" for g, a in zip(t["grid"], t["val_acc"], strict=True))
        lines.append(f"tuned {method} lambda on validation ACC -> {t['best']:g} ({pairs})")
    lines.append(f"total {result['seconds']['total']:.1f} s (tuning {result['seconds']['tuning']:.1f} s)")
    return "\n".join(lines)
