"""Online adversarial training with Elastic Weight Consolidation.

Every online batch of latent integers is a task (as in the seed): the generator proposes
reals, exact primality labels their odd integers, the discriminator trains on an undersampled
(balanced) set of them and the generator trains towards "prime" through the discriminator;
then each network's Fisher information is computed on the batch and its weights anchored, so
later batches pay lambda/2 * sum F_i (theta_i - theta*_i)**2 for moving what mattered.

`train()` is the whole loop, top to bottom. The CLI (`python -m optimus train`) and the app's
Train page both run it, the app in a child process so a closed tab doesn't stop it.

`train(..., device=...)` runs under a `tf.distribute.Strategy` (`optimus.distribute`): the
gradient steps run per replica on shards of the batch (see `_Networks._compile_step` for how
the losses are scaled); on one device, the default strategy, nothing changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from optimus import checkpoint, primes, storage
from optimus.config import TrainConfig

# Primes whose multiples the history tracks in every batch record (`divisible_share`).
SIEVE_CHART_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


class TrainingDiverged(RuntimeError):
    """Losses or weights became inf/NaN, or outputs left the exact range."""


def undersample(labels, prime_ratio: float, min_batch: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a subset where primes make up `prime_ratio`, dropping composites only.

    All primes are kept; composites are dropped at random until the ratio is reached, but the
    subset never shrinks below `min_batch` (or the whole set, if smaller). Returned sorted.
    """
    labels = np.asarray(labels, dtype=bool)
    prime_idx = np.flatnonzero(labels)
    comp_idx = np.flatnonzero(~labels)
    n_primes = len(prime_idx)
    keep_comp = int(round(n_primes * (1.0 - prime_ratio) / prime_ratio))
    keep_comp = max(keep_comp, min(min_batch, len(labels)) - n_primes)
    keep_comp = min(max(keep_comp, 0), len(comp_idx))
    chosen = rng.choice(comp_idx, size=keep_comp, replace=False) if keep_comp else comp_idx[:0]
    return np.sort(np.concatenate([prime_idx, chosen]))


def generator_report(n_values) -> dict:
    """How good a batch of generated odd integers is, against the magnitude-matched baseline."""
    n = np.asarray(n_values, dtype=np.int64)
    if n.size == 0:
        raise ValueError("no generated values to report on")
    flags = primes.is_prime(n)
    distinct = np.unique(n)
    distinct_primes = np.unique(n[flags])
    baseline = primes.magnitude_matched_baseline(n)
    lo, hi = int(n.min()), int(n.max())
    distinct_prime_rate = len(distinct_primes) / n.size
    try:  # exact prime counting stops at 10**10; the magnitude-matched baseline estimates above
        same_range = primes.odd_prime_density(lo, hi)
    except ValueError:
        same_range = float("nan")
    return {
        "count": int(n.size),
        "hit_rate": float(flags.mean()),
        "distinct_rate": len(distinct) / n.size,
        "distinct_prime_rate": distinct_prime_rate,
        "same_range_probability": same_range,
        "baseline": float(baseline),
        "lift": float(distinct_prime_rate / baseline) if baseline > 0 else float("nan"),
        "lo": lo,
        "hi": hi,
    }


class _Interrupt:
    """Ctrl-C or SIGTERM: finish the current step, save, exit cleanly."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:  # a second Ctrl-C means it
            raise KeyboardInterrupt
        self.requested = True
        print("\nStopping after the current step (Ctrl-C again to abort)...", file=sys.stderr)


class _Networks:
    """The compiled pieces of one training run: optimisers, EWC, and the step functions."""

    def __init__(self, cfg: TrainConfig, generator, discriminator):
        import keras
        import tensorflow as tf

        from optimus import distribute
        from optimus.ewc import EWC, dense_layers_of, fisher_diagonal
        from optimus.models import discriminator_parts

        self.cfg, self.tf = cfg, tf
        # The strategy whose scope this is built in (train() enters it; the default strategy
        # otherwise): every variable below (optimisers, EWC) is created under it.
        self.strategy = tf.distribute.get_strategy()
        self.distributed = not distribute.is_default(self.strategy)
        self.replicas = int(self.strategy.num_replicas_in_sync)
        if cfg.discriminator == "gln" and self.replicas > 1:
            raise ValueError(f"the GLN discriminator learns by local updates on one replica and cannot be "
                             f"mirrored over {self.replicas} replicas; use --device auto, cpu or gpu")
        self.generator, self.discriminator = generator, discriminator
        self.encoding, self.head = discriminator_parts(discriminator)
        self.sieve = cfg.generator == "sieve"
        self.gln = cfg.discriminator == "gln"
        self.g_vars = generator.trainable_variables
        # A GLN's neurons learn by their own local updates: no gradient, so no Fisher either.
        self.d_vars = [] if self.gln else self.head.trainable_variables
        self.g_opt = keras.optimizers.Adam(cfg.lr_generator)
        self.d_opt = keras.optimizers.Adam(cfg.lr_discriminator)
        self.g_opt.build(self.g_vars)
        self.d_opt.build(self.d_vars)
        from optimus.config import LEGACY_EWC_MODES

        mode = {method: mode for mode, method in LEGACY_EWC_MODES.items()}[cfg.method]  # until the GAN uses the plugins
        self.g_ewc = EWC(self.g_vars, mode=mode, lam=cfg.ewc_lambda, gamma=cfg.ewc_gamma)
        self.d_ewc = EWC(self.d_vars, mode=mode, lam=cfg.ewc_lambda, gamma=cfg.ewc_gamma)
        self._fisher = fisher_diagonal
        # Dense layers take the per-example shortcut in the Fisher (optimus.ewc).
        self.d_dense = [] if self.gln else dense_layers_of(self.head)
        self.g_dense = dense_layers_of(generator)
        # Class-balanced focal loss for the discriminator (as the seed's code had it).
        self.d_loss_fn = keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction=None
        )
        if self.sieve:  # the README's recipe: focal loss as the generator's base loss
            self.g_loss_fn = keras.losses.BinaryFocalCrossentropy(gamma=cfg.focal_gamma, reduction=None)
        else:  # the seed's code: plain cross-entropy towards "prime" (plus the opposite L2)
            self.g_loss_fn = keras.losses.BinaryCrossentropy(reduction=None)
        self.d_step = self._gln_d_step if self.gln else self._compile_step(self._d_step)
        self.g_step = self._compile_step(self._g_step)
        self.d_fisher = tf.function(self._d_fisher, reduce_retracing=True)
        self.g_fisher = tf.function(self._g_fisher, reduce_retracing=True)
        self.g_candidate_probs = tf.function(self._g_candidate_probs, reduce_retracing=True)

    # --- optimiser state, for checkpoints ------------------------------------------------
    def state(self) -> dict:
        out = {}
        for prefix, opt in (("opt_g", self.g_opt), ("opt_d", self.d_opt)):
            for i, v in enumerate(opt.variables):
                out[f"{prefix}/{i}"] = np.asarray(v)
        for prefix, ewc in (("ewc_g", self.g_ewc), ("ewc_d", self.d_ewc)):
            for k, v in ewc.state().items():
                out[f"{prefix}/{k}"] = np.asarray(v)
        return out

    def load_state(self, state: dict) -> None:
        for prefix, opt in (("opt_g", self.g_opt), ("opt_d", self.d_opt)):
            saved = [state[f"{prefix}/{i}"] for i in range(len(opt.variables)) if f"{prefix}/{i}" in state]
            if len(saved) != len(opt.variables):
                raise checkpoint.CheckpointError(f"state.npz: optimiser state {prefix} is incomplete")
            for var, value in zip(opt.variables, saved, strict=True):
                if tuple(var.shape) != value.shape:
                    raise checkpoint.CheckpointError(
                        f"state.npz: {prefix} variable {var.path} has shape {value.shape}, expected {tuple(var.shape)}"
                    )
                var.assign(value)
        for prefix, ewc in (("ewc_g", self.g_ewc), ("ewc_d", self.d_ewc)):
            sub = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + "/")}
            try:
                ewc.load_state(sub)
            except ValueError as exc:
                raise checkpoint.CheckpointError(f"state.npz: {prefix}: {exc}") from None

    # --- compiled steps -------------------------------------------------------------------
    # Under a strategy with R replicas each step runs once per replica on its shard of the
    # batch, and the Keras optimiser SUMS the replicas' gradients before applying them. So
    # every per-replica loss is that replica's share of the single-device loss: batch means
    # become sums over the shard divided by the GLOBAL batch (or weight) size, and terms every
    # replica computes in full (EWC penalty, weight regularisers) are divided by R. The summed
    # gradient is then the single-device gradient, and SUM-reducing the returned losses gives
    # the single-device losses (tests/test_distribute.py checks the weights match). With one
    # replica the formulas are the single-device ones, unchanged.
    def _compile_step(self, fn):
        tf = self.tf
        if not self.distributed:
            return tf.function(fn, reduce_retracing=True)
        strategy = self.strategy

        def step(*args):
            per_replica = strategy.run(fn, args=args)
            return tf.nest.map_structure(lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), per_replica)

        return tf.function(step, reduce_retracing=True)

    def shard_rows(self, *tensors):
        """The discriminator's (padded, weighted) rows as per-replica shards; unchanged on one device."""
        if not self.distributed:
            return tensors
        from optimus import distribute

        return distribute.shard(self.strategy, tensors, distribute.split_sizes(int(tensors[0].shape[0]), self.replicas))

    def shard_latents(self, latents, candidate_features):
        """Latents and their candidates' features (window rows per latent), shard by shard."""
        if not self.distributed:
            return latents, candidate_features
        from optimus import distribute

        sizes = distribute.split_sizes(int(latents.shape[0]), self.replicas)
        return distribute.shard(self.strategy, (latents, candidate_features), sizes)

    def _replica_share(self, term):
        """A term every replica computes in full: each contributes 1/R of it."""
        return term if self.replicas == 1 else term / self.replicas

    def _latent_mean(self, values):
        """Mean over the batch's latents; per replica, its shard's part of the global mean."""
        tf = self.tf
        if self.replicas == 1:
            return tf.reduce_mean(values)
        return tf.reduce_sum(values) / self.cfg.batch_size

    def _regularization(self, model, share):
        """model.losses, summed; on R replicas this replica's part: weight regularisers / R, and
        activity regularisers (Keras divides them by the LOCAL batch size) times `share`, the
        replica's fraction of the global batch."""
        tf = self.tf
        losses = [tf.cast(x, "float32") for x in model.losses]
        if self.replicas == 1:
            return tf.add_n([tf.constant(0.0)] + losses)
        # model.losses lists add_loss/activity losses first, then one per regularised weight.
        n_weight = sum(1 for v in model.trainable_weights if getattr(v, "regularizer", None) is not None)
        activity, weight = losses[: len(losses) - n_weight], losses[len(losses) - n_weight :]
        return (tf.add_n([tf.constant(0.0)] + weight) / self.replicas
                + tf.add_n([tf.constant(0.0)] + activity) * tf.cast(share, "float32"))

    def _d_step(self, features, labels, weights, total_weight):
        """`total_weight`: max(sum of the weights over the whole batch, 1), the mean's divisor."""
        tf = self.tf
        with tf.GradientTape() as tape:
            prob = self.head(features, training=True)
            loss = tf.reduce_sum(self.d_loss_fn(labels[:, None], prob) * weights) / total_weight
            total = loss + self._replica_share(self.d_ewc.penalty())
            if self.cfg.apply_regularizers:
                share = tf.cast(tf.shape(features)[0], "float32") / float(self.d_rows)
                total += self._regularization(self.head, share)
        grads = tape.gradient(total, self.d_vars)
        self.d_opt.apply_gradients(zip(grads, self.d_vars, strict=True))
        return loss

    @property
    def d_rows(self) -> int:
        """Rows of the discriminator's (padded) batch: cfg.disc_rows, or one per candidate."""
        candidates = self.cfg.batch_size * (self.cfg.window if self.sieve else 1)
        return min(self.cfg.disc_rows, candidates) if self.cfg.disc_rows else candidates


    def _gln_d_step(self, features, labels, weights, total_weight=None):
        """The GLN's online local update on the undersampled rows (they come first)."""
        k = int(np.sum(np.asarray(weights) > 0))
        return self.head.update(features[:k], labels[:k])

    def _g_candidate_probs(self, latents, candidate_features):
        """Probability, under the generator, of each candidate, and the discriminator's view."""
        tf = self.tf
        _, logits = self.generator(latents, training=True)
        probs = tf.nn.softmax(logits / self.cfg.temperature, axis=1)
        d = tf.reshape(self.head(candidate_features, training=False), tf.shape(probs))
        return probs, d

    def _g_terms(self, latents, candidate_features):
        """Per-latent probability that the generator's output is prime, per the discriminator."""
        tf = self.tf
        if self.sieve:
            probs, d = self._g_candidate_probs(latents, candidate_features)
            expected = tf.reduce_sum(probs * d, axis=1)  # exact expectation over the window
            entropy = -tf.reduce_sum(probs * tf.math.log(probs + 1e-12), axis=1)
            return expected, entropy, tf.constant(0.0)
        x = self.generator(latents, training=True)
        d = tf.reshape(self.head(self.encoding(x), training=False), (-1,))
        reg = tf.constant(0.0)
        if self.cfg.apply_regularizers:  # the original loop never added these (ANCHORS.md)
            reg = self._regularization(self.generator, tf.cast(tf.shape(latents)[0], "float32") / self.cfg.batch_size)
        return d, tf.zeros_like(d), reg

    def _g_step(self, latents, candidate_features):
        tf = self.tf
        with tf.GradientTape() as tape:
            expected, entropy, reg = self._g_terms(latents, candidate_features)
            loss = self._latent_mean(self.g_loss_fn(tf.ones_like(expected)[:, None], expected[:, None]))
            total = (loss + reg - self.cfg.entropy_weight * self._latent_mean(entropy)
                     + self._replica_share(self.g_ewc.penalty()))
        grads = tape.gradient(total, self.g_vars)
        self.g_opt.apply_gradients(zip(grads, self.g_vars, strict=True))
        return loss, reg

    def _d_fisher(self, features, labels):
        tf = self.tf

        def log_likelihood(f, y):
            p = tf.clip_by_value(tf.reshape(self.head(f, training=False), (-1,)), 1e-7, 1 - 1e-7)
            return y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p)

        return self._fisher(log_likelihood, self.d_vars, features, labels, dense_layers=self.d_dense)

    def _g_fisher(self, latents, candidate_features):
        tf = self.tf
        if self.sieve:
            window = self.cfg.window
            feats = tf.reshape(candidate_features, (-1, window, candidate_features.shape[-1]))

            def log_likelihood(z, f):
                _, logits = self.generator(z, training=False)
                probs = tf.nn.softmax(logits / self.cfg.temperature, axis=1)
                d = tf.reshape(self.head(tf.reshape(f, (-1, f.shape[-1])), training=False), tf.shape(probs))
                return tf.math.log(tf.reduce_sum(probs * d, axis=1) + 1e-7)

            return self._fisher(log_likelihood, self.g_vars, latents, feats)

        def log_likelihood(z):  # the seed's: log D(G(z)), no label
            x = self.generator(z, training=False)
            return tf.math.log(tf.reshape(self.head(self.encoding(x), training=False), (-1,)) + 1e-7)

        return self._fisher(log_likelihood, self.g_vars, latents, dense_layers=self.g_dense)


def _finite(variables) -> bool:
    return all(np.all(np.isfinite(np.asarray(v))) for v in variables)


def _prepare_dir(cfg: TrainConfig, model_dir: Path, from_dir: Path | None, resume: bool):
    """Networks to start from (new, resumed, or copied from --from) and the run's parent.

    `resume`: `model_dir` holds a complete model (`checkpoint.resumable`). Sources are read
    only (`checkpoint.load` never writes), so a non-chief worker may read its chief's directory.
    """
    from optimus.models import build_discriminator, build_generator

    source = from_dir if from_dir is not None else (model_dir if resume else None)
    if source is None:
        return build_generator(cfg), build_discriminator(cfg), {}, None
    # The same calls on every worker: under MultiWorkerMirroredStrategy each variable's creation
    # is a collective, so all workers must create the same variables in the same order.
    ck = checkpoint.load(source)
    checkpoint.check_compatible(ck.config, cfg, source)
    runs = storage.read_jsonl(source / storage.RUNS)
    parent = {"model_dir": str(source), "run": runs[-1].get("run") if runs else None, "batches_done": ck.batches_done}
    if source != model_dir:
        # Carry the lineage and history over; the parent directory itself is never touched.
        for name in (storage.HISTORY, storage.RUNS):
            if (source / name).exists() and not (model_dir / name).exists():
                shutil.copyfile(source / name, model_dir / name)
    return ck.generator, ck.discriminator, ck.state, parent


def _next_run_id(previous_runs: list[dict]) -> str:
    """One past the highest run number on record: a count would reuse an id whose start event
    was lost (a torn line), and with it the run's logs/ folder."""
    numbers = [0]
    for event in previous_runs:
        run = event.get("run")
        if isinstance(run, str) and run.startswith("run-") and run[4:].isdigit():
            numbers.append(int(run[4:]))
    return f"run-{max(numbers) + 1:03d}"


def train(cfg: TrainConfig, model_dir, from_dir=None, progress: bool = True, log=print, device="auto") -> dict:
    """Run `cfg.batches` online batches into `model_dir`; returns the final status dict.

    `device`: auto, cpu, gpu, mirrored or multiworker (`optimus.distribute`), or a
    `tf.distribute.Strategy`. It is recorded in the run's start event in runs.jsonl, not in
    config.json, so a model resumes on any machine. Under multi-worker training only the
    chief writes `model_dir`; the other workers run the same steps and write into a temporary
    directory that is removed at the end.
    """
    from optimus import distribute

    cfg.validate()
    if not str(model_dir).strip():
        raise ValueError("the model directory is empty: name a directory to train into")
    model_dir = Path(model_dir)
    if model_dir.is_symlink():
        raise ValueError(f"{model_dir} is a symbolic link; train into the directory itself (links are never written through)")
    from_dir = Path(from_dir) if from_dir is not None else None
    if from_dir is not None and from_dir.resolve() == model_dir.resolve():
        from_dir = None
    # First, before TensorFlow initialises its devices (hiding GPUs only works then).
    strategy = distribute.strategy_for(device, local_updates=cfg.discriminator == "gln")
    info = distribute.describe(strategy, device)
    if not distribute.is_chief(strategy):
        return _train_worker(cfg, model_dir, from_dir, log, strategy, info)
    with storage.run_lock(model_dir):
        # Only the lock holder may finish or discard an interrupted commit and clear temp files.
        checkpoint.recover(model_dir)
        checkpoint.refuse_existing_target(model_dir, from_dir)
        resume = checkpoint.resumable(model_dir) if from_dir is None else False
        return _train_locked(cfg, model_dir, from_dir, progress, log, strategy, info, resume=resume)


def _train_worker(cfg, model_dir: Path, from_dir: Path | None, log, strategy, info) -> dict:
    """A non-chief worker: the chief's computation, written into a temporary directory."""
    import tempfile

    source = from_dir if from_dir is not None else model_dir
    # Let the chief finish or discard an interrupted commit before reading its directory.
    deadline = time.time() + 300
    while (source / checkpoint.COMMIT).exists() or any((source / f"{n}.new").exists() for n in checkpoint.FILES):
        if time.time() > deadline:
            raise RuntimeError(f"{source}: a checkpoint commit is still pending after 300 s")
        time.sleep(0.2)
    if not checkpoint.resumable(source):
        source = None
    scratch = Path(tempfile.mkdtemp(prefix=f"optimus-worker-{info['task'] or 'x'}-".replace(":", "")))
    log(f"worker {info['task']}: not the chief, writing into {scratch} (removed at the end)")
    try:
        with storage.run_lock(scratch):
            return _train_locked(cfg, scratch, source, False, log, strategy, info, resume=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train_locked(cfg: TrainConfig, model_dir: Path, from_dir: Path | None, progress: bool, log,
                  strategy=None, info=None, resume: bool = False) -> dict:
    import keras
    import tensorflow as tf

    from optimus import distribute

    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    info = info or {}
    storage.clear_stale_stop(model_dir)
    keras.utils.set_random_seed(cfg.seed)
    # Every variable (networks, optimisers, EWC state) is created, or loaded, under the
    # strategy's scope (the default strategy needs none: one device, as before). The loop runs
    # outside it: steps enter it through strategy.run, and the Fisher, a per-batch side job on
    # the whole batch, reads the mirrored variables from the cross-replica context.
    with contextlib.nullcontext() if distribute.is_default(strategy) else strategy.scope():
        generator, discriminator, state, parent = _prepare_dir(cfg, model_dir, from_dir, resume)
        nets = _Networks(cfg, generator, discriminator)
        if state:
            nets.load_state(state)
    workers = distribute.num_workers(strategy)
    done = int(state.get("batches_done", 0)) if state else 0
    # config.json first: a run killed before its first save leaves config.json alone, which
    # `checkpoint.resumable` reads as "nothing trained yet".
    storage.write_bytes(model_dir / storage.CONFIG, (cfg.to_json() + "\n").encode())  # allow_nan=False
    if not state or from_dir is not None:
        # A new (or newly branched) directory holds a loadable version from the first moment.
        checkpoint.save(model_dir, generator, discriminator, {"batches_done": np.array(done), **nets.state()})
    run_id = _next_run_id(storage.read_jsonl(model_dir / storage.RUNS))
    storage.append_jsonl(model_dir / storage.RUNS, {
        "event": "start", "run": run_id, "parent": parent, "time": time.time(),
        "batches_planned": cfg.batches, "start_batch": done, "config": dataclasses.asdict(cfg),
        "device": info,
    })
    log(f"{run_id}: training {model_dir} from batch {done} for {cfg.batches} batches")
    if info and info.get("replicas", 1) * info.get("workers", 1) > 1:
        log(f"device: {info['strategy']}, {info['replicas']} replicas on {info['workers']} worker(s): "
            f"{', '.join(info['devices'])}")
    log(cfg.to_json())

    interrupt = _Interrupt()
    old_handlers = {}
    with contextlib.suppress(ValueError):  # not the main thread (tests): no signal handlers
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, interrupt)

    started = time.time()
    status = {"run": run_id, "state": "running", "pid": os.getpid(), "batches_done": 0,
              "batches_total": cfg.batches, "started": started, "updated": started,
              "eta_seconds": None, "message": "", "model_batches": done}
    storage.write_json(model_dir / storage.STATUS, status)
    writer = tf.summary.create_file_writer(str(model_dir / storage.TENSORBOARD / run_id))
    bar = keras.utils.Progbar(cfg.batches, stateful_metrics=["lift", "d_bal_acc", "hit_rate"]) if progress else None
    final, end_state, message = {}, "done", ""
    try:
        for k in range(cfg.batches):
            stop = interrupt.requested or storage.stop_requested(model_dir)
            if workers > 1:  # every worker stops at the same batch, or the collectives hang
                stop = distribute.any_worker(strategy, stop)
            if stop:
                end_state, message = "stopped", f"stopped by request after {k} batches"
                break
            t0 = time.time()
            record, stopped = _online_batch(
                nets, cfg, done + 1,
                # Mid-batch stops only on one worker: several must run the same number of steps.
                (lambda: False) if workers > 1 else (lambda: interrupt.requested or storage.stop_requested(model_dir)))
            done += 1
            record.update({"run": run_id, "batch": done, "time": time.time(), "seconds": time.time() - t0})
            # Record first, then commit the checkpoint: a kill in between leaves a record past
            # the checkpoint, which checkpoint.read_history ignores (never a checkpoint without
            # its record).
            storage.append_jsonl(model_dir / storage.HISTORY, record)
            checkpoint.save(model_dir, generator, discriminator, {"batches_done": np.array(done), **nets.state()})
            final = record
            with writer.as_default():
                for key in ("d_loss", "g_loss", "hit_rate", "distinct_rate", "baseline", "lift", "d_balanced_accuracy"):
                    tf.summary.scalar(key, record[key], step=done)
            elapsed = time.time() - started
            status.update(batches_done=k + 1, updated=time.time(), model_batches=done,
                          eta_seconds=elapsed / (k + 1) * (cfg.batches - k - 1), last=record)
            storage.write_json(model_dir / storage.STATUS, status)
            if bar is not None:
                bar.update(k + 1, values=[("d_loss", record["d_loss"]), ("g_loss", record["g_loss"]),
                                          ("hit_rate", record["hit_rate"]), ("lift", record["lift"]),
                                          ("d_bal_acc", record["d_balanced_accuracy"])])
            if stopped:
                end_state, message = "stopped", f"stopped by request during batch {done}; saved"
                break
    except TrainingDiverged as exc:
        end_state, message = "failed", f"{exc}. The last good checkpoint (batch {done}) is kept."
        log(message)
    except KeyboardInterrupt:
        end_state, message = "stopped", f"aborted; the last good checkpoint (batch {done}) is kept"
    except BaseException as exc:
        # A full disk, a damaged file, a bug: the run failed, whatever it was; say so, then let
        # the exception go on (a non-zero exit).
        end_state = "failed"
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500] + f" (the last good checkpoint, batch {done}, is kept)"
        raise
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        status.update(state=end_state, message=message, updated=time.time(), eta_seconds=0)
        # Each step on its own: on a full disk one may fail, and the others (and the exception
        # that ended the run) must still get through.
        for step in (
            writer.close,
            lambda: storage.clear_stop(model_dir),
            lambda: storage.write_json(model_dir / storage.STATUS, status),
            lambda: storage.append_jsonl(model_dir / storage.RUNS, {
                "event": "end", "run": run_id, "status": end_state, "message": message, "time": time.time(),
                "batches_done": status["batches_done"], "model_batches": done, "final": final,
            }),
        ):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 (reported, and the run's own outcome stands)
                log(f"could not record the end of {run_id}: {type(exc).__name__}: {exc}")
    return status


def _online_batch(nets: _Networks, cfg: TrainConfig, batch_index: int, should_stop) -> tuple[dict, bool]:
    """One online batch (one EWC task). Returns its history record and whether a stop came."""
    import tensorflow as tf

    from optimus.models import choose, propose

    rng = np.random.default_rng([cfg.seed, batch_index])
    latents = rng.integers(cfg.latent_lo, cfg.latent_hi + 1, size=cfg.batch_size)
    reals, logits = propose(nets.generator, latents)
    if not np.all(np.isfinite(reals)) or reals.max() >= 2.0**52:
        raise TrainingDiverged(
            f"batch {batch_index}: generator outputs left the exact range (max {np.nanmax(reals):.3g}, "
            "must stay finite and below 2**52)" + (
                "; the seed's opposite-L2 term is unbounded below and drives weights without limit"
                if cfg.opposite_l2 and cfg.generator == "dense" else "")
        )
    flat = reals.reshape(-1)
    n_pool = primes.to_odd(flat)
    labels = primes.is_prime(n_pool)
    if nets.sieve and hasattr(nets.encoding, "window_features"):  # windows: the fast, identical path
        features = nets.encoding.window_features(n_pool[:: cfg.window], cfg.window)
    else:
        features = nets.encoding(flat.reshape(-1, 1))
    z = tf.constant(latents.reshape(-1, 1), dtype=nets.generator.inputs[0].dtype)

    # The discriminator's batch: undersampled to the wanted prime ratio, subsampled or padded
    # to a fixed size (zero weights) so the compiled step never retraces.
    chosen = undersample(labels, cfg.prime_ratio, cfg.min_batch, rng)
    rows = nets.d_rows
    if len(chosen) > rows:
        chosen = np.sort(rng.choice(chosen, size=rows, replace=False))
    pad = np.zeros(rows, dtype=np.int64)
    pad[: len(chosen)] = chosen
    weights = np.zeros(rows, dtype=np.float32)
    weights[: len(chosen)] = 1.0
    d_features = tf.gather(features, pad)
    d_labels = tf.constant(labels[pad].astype(np.float32))
    d_weights = tf.constant(weights)
    d_total = tf.constant(max(float(len(chosen)), 1.0), dtype=tf.float32)  # the weighted mean's divisor
    # Under a strategy: each replica's shard of the rows (of the latents and their candidates).
    d_args = nets.shard_rows(d_features, d_labels, d_weights)
    g_args = nets.shard_latents(z, features)

    stopped = False
    for _ in range(cfg.steps):
        d_loss = nets.d_step(*d_args, d_total)
        g_loss, g_reg = nets.g_step(*g_args)
        if should_stop():
            stopped = True
            break
    d_loss, g_loss, g_reg = float(d_loss), float(g_loss), float(g_reg)
    if not (math.isfinite(d_loss) and math.isfinite(g_loss) and math.isfinite(g_reg)):
        raise TrainingDiverged(f"batch {batch_index}: loss became inf/NaN (d_loss={d_loss}, g_loss={g_loss}, g_reg={g_reg})")
    if not (_finite(nets.g_vars) and _finite(nets.d_vars)):
        raise TrainingDiverged(f"batch {batch_index}: weights became inf/NaN")

    # What the generator now produces for this batch's latents, judged by exact primality.
    reals_after, logits_after = propose(nets.generator, latents)
    outputs = choose(reals_after, logits_after, rng, cfg.temperature)
    if not np.all(np.isfinite(outputs)) or outputs.max() >= 2.0**52:
        raise TrainingDiverged(f"batch {batch_index}: generator outputs left the exact range (max {np.nanmax(outputs):.3g})")
    odd_outputs = primes.to_odd(outputs)
    report = generator_report(odd_outputs)
    from optimus.metrics import balanced_accuracy

    d_prob = np.asarray(nets.head(features, training=False)).reshape(-1)
    d_bal = balanced_accuracy(labels, d_prob)

    # Consolidate: Fisher on this batch, anchor the weights (EWC's "task end").
    # The penalties paid during this batch (after consolidating they restart from zero).
    penalty_g, penalty_d = float(nets.g_ewc.penalty()), float(nets.d_ewc.penalty())
    if cfg.method != "none":
        # A fixed sample size per run (with replacement when the undersampled set is smaller)
        # keeps d_fisher's input shape constant: no retracing, and the Dense shortcut applies.
        m = min(cfg.fisher_samples, len(flat))
        pick = rng.choice(chosen, size=m, replace=len(chosen) < m)
        nets.d_ewc.consolidate(nets.d_fisher(tf.gather(features, pick), tf.constant(labels[pick].astype(np.float32))))
        mg = min(cfg.fisher_samples, cfg.batch_size)
        rows = np.sort(rng.choice(cfg.batch_size, size=mg, replace=False))
        if nets.sieve:
            cand = tf.reshape(features, (cfg.batch_size, cfg.window, -1))
            g_fisher = nets.g_fisher(tf.gather(z, rows), tf.reshape(tf.gather(cand, rows), (mg * cfg.window, -1)))
        else:
            g_fisher = nets.g_fisher(tf.gather(z, rows), features[:0])
        nets.g_ewc.consolidate(g_fisher)
    record = {
        "d_loss": d_loss, "g_loss": g_loss, "g_regularizer": g_reg,
        "hit_rate": report["hit_rate"], "distinct_rate": report["distinct_rate"],
        "distinct_prime_rate": report["distinct_prime_rate"], "baseline": report["baseline"],
        "lift": report["lift"], "d_balanced_accuracy": float(d_bal),
        "ewc_penalty_g": penalty_g, "ewc_penalty_d": penalty_d,
        "out_lo": report["lo"], "out_hi": report["hi"],
        # The sieve as it emerges, batch by batch: share of this batch's outputs divisible by
        # each small odd prime p (chance: 1/p; a perfect sieve: 0). Any generator has it.
        "divisible_share": {str(p): float(np.mean(odd_outputs % p == 0)) for p in SIEVE_CHART_PRIMES},
    }
    return record, stopped
