"""Online adversarial training, one continual-learning task per online batch.

Every online batch of latent integers is a task (as in the seed): the generator proposes
reals, exact primality labels their odd integers, the discriminator trains on an undersampled
(balanced) set of them and the generator trains towards "prime" through the discriminator
(`optimus.training.gan.PrimeGAN`, a Keras model with its own `train_step`); then each network's
continual-learning method consolidates on the batch (EWC: the Fisher information, and the
weights anchored, so later batches pay lambda/2 * sum F_i (theta_i - theta*_i)**2 for moving
what mattered).

`train()` is the whole loop, top to bottom (`_train_locked`); the run's bookkeeping (history,
checkpoint, status, stop request, TensorBoard, progress bar) are Keras callbacks
(`optimus.training.callbacks`). The CLI (`python -m optimus train`) and the app's Train page both run
it, the app in a child process so a closed tab doesn't stop it.

`train(..., device=...)` runs under a `tf.distribute.Strategy` (`optimus.training.distribute`): the
GAN's step runs per replica on shards of the batch (`PrimeGAN.distribute_batch`; the losses are
scaled with `tf.nn.compute_average_loss`); on one device, the default strategy, nothing changes.

Public seams for the benchmark and the tests: `build_gan`, `prepare_batch`, `run_online_batch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from optimus import limits, primes
from optimus.config import TrainConfig
from optimus.evaluation.metrics import balanced_accuracy, generator_report
from optimus.nets.networks import build_discriminator, build_generator, choose, propose
from optimus.primes import SIEVE_CHART_PRIMES
from optimus.store import checkpoint, storage
from optimus.training import callbacks as cb
from optimus.training import distribute
from optimus.training.gan import PrimeGAN, losses_from_config
from optimus.training.online_batch import ExactRangeError, OnlineBatches


class TrainingDiverged(RuntimeError):
    """Losses or weights became inf/NaN, or outputs left the exact range."""



def build_gan(cfg: TrainConfig, generator, discriminator):
    """The run's `gan.PrimeGAN`, compiled: Adam for each network, the losses cfg names, and
    the continual-learning method cfg.method for each. Call under the strategy's scope."""
    gan = PrimeGAN(cfg, generator, discriminator)
    d_loss, g_loss = losses_from_config(cfg)
    gan.compile(d_optimizer=keras.optimizers.Adam(cfg.lr_discriminator),
                g_optimizer=keras.optimizers.Adam(cfg.lr_generator), d_loss=d_loss, g_loss=g_loss)
    return gan


# --- the warm trainer's head start (optimus/training/spare.py) --------------------------------
# The fields a prewarmed GAN's graphs do not hold: the loop reads them in Python (batches,
# steps), they only name the preset, or they are optimiser variables assigned when a run takes
# it (the learning rates). The `default` and `demo` presets differ only in these.
WARM_FREE_FIELDS = ("preset", "batches", "steps", "lr_generator", "lr_discriminator")
WARM_LOG = "its GAN traced ahead while the warm trainer waited (optimus.training.loop.prewarm)"
_warm: dict = {}  # "gan", "key": the prewarmed GAN, never trained, and the config it was built for


def _warm_key(cfg: TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in WARM_FREE_FIELDS}


def prewarm(cfg: TrainConfig) -> bool:
    """Build cfg's GAN and trace its compiled batch and training step, without running them, for
    the next run of this process (the warm trainer calls it while it waits for a job).

    A new model's first batch was mostly tracing: of its 3.1 s of CPU (demo preset, 2-core
    machine), 1.1 s traced the batch's graph and about 0.9 s the step's. A run whose config
    differs from cfg only in WARM_FREE_FIELDS, from new networks on TensorFlow's default
    strategy, takes this GAN (`_take_warm`): its own freshly built networks' weights are copied
    in, so it trains the same numbers as a cold run (tests/test_spare.py), and its first step
    reuses the traces (tests/test_gan_retrace.py counts them). The judge's eager calls
    run once on placeholder latents (inference only: no variable changes). Returns whether a GAN
    is kept: not for a config whose batch is not one graph (the dense generator's), nor where a
    GPU is seen (a run's --device chooses the devices before TensorFlow initialises them); an
    exception keeps none."""
    _warm.clear()
    if tf.config.list_physical_devices("GPU"):
        return False
    gan = build_gan(cfg, build_generator(cfg), build_discriminator(cfg))
    if gan.distributed:
        return False
    gan.batches = OnlineBatches(gan.generator, gan.encoding, cfg, d_rows=gan.d_rows)
    if not (gan.batches.graph and gan.batches.band_fits):
        return False
    specs = gan.batches.trace()
    gan.train_function.get_concrete_function(gan.distribute_batch(specs))
    propose(gan.generator, np.full(cfg.batch_size, cfg.latent_lo, dtype=np.float64))
    # A few rows: the head's 32,768 would hold 120 MB more in the waiting trainer, for no time saved.
    gan.head(tf.zeros([8, *specs["candidate_features"].shape[1:]], specs["candidate_features"].dtype), training=False)
    _warm.update(gan=gan, key=_warm_key(cfg))
    return True


def _take_warm(cfg: TrainConfig, generator, discriminator):
    """The prewarmed GAN (`prewarm`) holding `generator`'s and `discriminator`'s weights, set up
    for cfg, or None where it does not fit cfg; taken once (a later run builds its own)."""
    gan, key = _warm.pop("gan", None), _warm.pop("key", None)
    if gan is None or key != _warm_key(cfg):
        return None
    pairs = ((gan.generator, generator), (gan.discriminator, discriminator))
    # Every variable, not only the weights: a dropout layer's seed state is one too.
    # (by position: the run's networks, built after these, carry other layer names)
    if any([(tuple(v.shape), v.dtype) for v in warm.variables] != [(tuple(v.shape), v.dtype) for v in new.variables]
           for warm, new in pairs):
        return None
    for warm, new in pairs:
        for target, value in zip(warm.variables, new.variables, strict=True):
            target.assign(value)
    gan.cfg = gan.batches.cfg = cfg
    gan.g_optimizer.learning_rate = cfg.lr_generator
    gan.d_optimizer.learning_rate = cfg.lr_discriminator
    return gan


def prepare_batch(gan, cfg: TrainConfig, batch_index: int) -> dict:
    """Online batch `batch_index` (`optimus.training.online_batch`: one compiled graph where the range
    allows): the step's tensors `z`, `candidate_features`, `d_features`, `d_labels`,
    `d_weights`, `d_total`, and in NumPy what the record and the consolidation read: `labels`
    (per candidate), `n_pool` (the candidates' odd integers), `chosen` (the undersampled rows)."""
    if getattr(gan, "batches", None) is None:  # built once per run: its graphs trace once
        gan.batches = OnlineBatches(gan.generator, gan.encoding, cfg, d_rows=gan.d_rows)
    try:
        batch = dict(gan.batches(batch_index))
    except ExactRangeError as exc:
        raise TrainingDiverged(
            f"batch {batch_index}: {exc}" + (
                "; the seed's opposite-L2 term is unbounded below and drives weights without limit"
                if cfg.opposite_l2 and cfg.generator == "dense" else "")
        ) from None
    for key in ("labels", "n_pool", "chosen"):
        batch[key] = batch[key].numpy()
    return batch


def run_online_batch(gan, cfg: TrainConfig, batch_index: int, callbacks=None) -> dict:
    """One online batch (one continual-learning task): prepare it, `cfg.steps` GAN steps
    (fewer when a callback sets `gan.stop_training`), judge the generator, consolidate.
    Returns the batch's history record."""
    batch, rng, record = train_and_judge(gan, cfg, batch_index, callbacks)
    gan.consolidate(batch, rng)
    return record


def train_and_judge(gan, cfg: TrainConfig, batch_index: int, callbacks=None) -> tuple[dict, np.random.Generator, dict]:
    """`run_online_batch` up to its record: (batch, rng, record); the caller consolidates with
    `gan.consolidate(batch, rng)` (the loop does, once the record is on disk)."""
    rng = np.random.default_rng([cfg.seed, batch_index])
    batch = prepare_batch(gan, cfg, batch_index)
    inputs = gan.distribute_batch(batch)
    for step in range(cfg.steps):
        logs = gan.train_function(inputs)
        if callbacks is not None:
            callbacks.on_train_batch_end(step)
        if gan.stop_training:
            break
    record = _judge(gan, cfg, batch, {k: float(v) for k, v in logs.items()}, batch_index, rng)
    return batch, rng, record


def _judge(gan, cfg: TrainConfig, batch: dict, logs: dict, batch_index: int, rng) -> dict:
    """The divergence checks, and the batch's record: what the generator now produces for this
    batch's latents, judged by exact primality, and how well the discriminator separates them."""
    if not all(math.isfinite(v) for v in logs.values()):
        raise TrainingDiverged(f"batch {batch_index}: loss became inf/NaN ("
                               + ", ".join(f"{k}={v}" for k, v in logs.items()) + ")")
    if not (_finite(gan.g_vars) and _finite(gan.d_vars)):
        raise TrainingDiverged(f"batch {batch_index}: weights became inf/NaN")
    # z holds the latents exactly (float64 for the sieve; the seed's float32 is its input dtype).
    reals_after, logits_after = propose(gan.generator, np.asarray(batch["z"]).reshape(-1))
    outputs = choose(reals_after, logits_after, rng, cfg.temperature)
    if not limits.exact_reals(outputs):
        raise TrainingDiverged(f"batch {batch_index}: generator outputs left the exact range (max {np.nanmax(outputs):.3g})")
    odd_outputs = primes.to_odd(outputs)
    report = generator_report(odd_outputs)
    d_prob = np.asarray(gan.head(batch["candidate_features"], training=False)).reshape(-1)
    return {
        "d_loss": logs["d_loss"], "g_loss": logs["g_loss"], "g_regularizer": logs["g_regularizer"],
        "hit_rate": report["hit_rate"], "distinct_rate": report["distinct_rate"],
        "distinct_prime_rate": report["distinct_prime_rate"], "baseline": report["baseline"],
        "lift": report["lift"], "d_balanced_accuracy": float(balanced_accuracy(batch["labels"], d_prob)),
        # The penalties paid during this batch (after consolidating they restart from zero).
        "method_penalty_g": float(gan.g_method.penalty()), "method_penalty_d": float(gan.d_method.penalty()),
        "out_lo": report["lo"], "out_hi": report["hi"],
        # The sieve as it emerges, batch by batch: share of this batch's outputs divisible by
        # each small odd prime p (chance: 1/p; a perfect sieve: 0). Any generator has it.
        "divisible_share": {str(p): float(np.mean(odd_outputs % p == 0)) for p in SIEVE_CHART_PRIMES},
    }


def _finite(variables) -> bool:
    return all(np.all(np.isfinite(np.asarray(v))) for v in variables)


def _prepare_dir(cfg: TrainConfig, model_dir: Path, from_dir: Path | None, resume: bool):
    """Networks to start from (new, resumed, or copied from --from) and the run's parent.

    `resume`: `model_dir` holds a complete model (`checkpoint.resumable`). Sources are read
    only (`checkpoint.load` never writes), so a non-chief worker may read its chief's directory.
    """
    source = from_dir if from_dir is not None else (model_dir if resume else None)
    if source is None:
        return build_generator(cfg), build_discriminator(cfg), {}, None
    # The same calls on every worker: under MultiWorkerMirroredStrategy each variable's creation
    # is a collective, so all workers must create the same variables in the same order.
    ck = checkpoint.load(source)
    checkpoint.check_compatible(ck.config, cfg, source)
    runs = storage.read_jsonl(source / storage.RUNS)
    parent = {"model_dir": str(source), "run": runs[-1].get("run") if runs else None, "batches_done": ck.batches_done}
    return ck.generator, ck.discriminator, ck.state, parent


LINEAGE = (storage.HISTORY, storage.RUNS)


def _carry_lineage(source: Path, model_dir: Path) -> None:
    """Copy `source`'s history and runs into `model_dir` (a branch's target, which holds no
    model: `checkpoint.refuse_existing_target`), each atomically; the source is never touched.
    Called only once every check has passed. Copies left there by an earlier attempt are
    replaced, never continued: they may be of an older state of `source`."""
    for name in LINEAGE:
        if (source / name).exists():
            with storage.atomic_path(model_dir / name) as tmp:
                shutil.copyfile(source / name, tmp)
        else:
            with contextlib.suppress(FileNotFoundError):
                (model_dir / name).unlink()


def _discard_branch(model_dir: Path) -> None:
    """A branch that failed before its first checkpoint was committed: remove what it wrote (the
    lineage copies and config.json), so that no later run continues from them."""
    if (model_dir / checkpoint.COMMIT).exists() or any((model_dir / n).exists() for n in checkpoint.FILES):
        return  # a checkpoint is (being) committed: leave it to `checkpoint.recover`
    for name in (*LINEAGE, storage.CONFIG):
        with contextlib.suppress(FileNotFoundError):
            (model_dir / name).unlink()


def _new_dirs(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist, deepest first."""
    out = []
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            break
        out.append(p)
    return out


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

    `device`: auto, cpu, gpu, mirrored or multiworker (`optimus.training.distribute`), or a
    `tf.distribute.Strategy`. It is recorded in the run's start event in runs.jsonl, not in
    config.json, so a model resumes on any machine. Under multi-worker training only the
    chief writes `model_dir`; the other workers run the same steps and write into a temporary
    directory that is removed at the end.
    """
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
    created = _new_dirs(model_dir)
    try:
        with storage.run_lock(model_dir):
            # Only the lock holder may finish or discard an interrupted commit and clear temp files.
            checkpoint.recover(model_dir)
            checkpoint.refuse_existing_target(model_dir, from_dir)
            resume = checkpoint.resumable(model_dir) if from_dir is None else False
            return _train_locked(cfg, model_dir, from_dir, progress, log, strategy, info, resume=resume)
    except BaseException:
        # A refused run leaves no directory behind that it made (rmdir removes empty ones only).
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def _train_worker(cfg, model_dir: Path, from_dir: Path | None, log, strategy, info) -> dict:
    """A non-chief worker: the chief's computation, written into a temporary directory."""
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
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    info = info or {}
    storage.clear_stale_stop(model_dir)
    keras.utils.set_random_seed(cfg.seed)
    # Every variable (networks, optimisers, continual state) is created, or loaded, under the
    # strategy's scope (the default strategy needs none). The loop runs outside it: the step
    # enters it through strategy.run, and the consolidation, a per-batch side job on the whole
    # batch, reads the mirrored variables from the cross-replica context.
    with contextlib.nullcontext() if distribute.is_default(strategy) else strategy.scope():
        generator, discriminator, state, parent = _prepare_dir(cfg, model_dir, from_dir, resume)
        warm = _take_warm(cfg, generator, discriminator) if not state and distribute.is_default(strategy) else None
        gan = warm if warm is not None else build_gan(cfg, generator, discriminator)
        if state:
            gan.load_state(state)  # the last check (a method switch): nothing is written before it
    done = int(state.get("batches_done", 0)) if state else 0
    branch = from_dir is not None and from_dir != model_dir
    saver = cb.Checkpoint(model_dir)
    saver.set_model(gan)
    try:
        if branch:  # carry the lineage and history over, now that every check has passed
            _carry_lineage(from_dir, model_dir)
        # config.json first: a run killed before its first save leaves config.json alone, which
        # `checkpoint.resumable` reads as "nothing trained yet".
        storage.write_bytes(model_dir / storage.CONFIG, (cfg.to_json() + "\n").encode())  # allow_nan=False
        if not state or from_dir is not None:
            saver.save(done)  # a new (or newly branched) directory holds a loadable version at once
    except BaseException:
        if branch:
            _discard_branch(model_dir)
        raise
    run_id = _next_run_id(storage.read_jsonl(model_dir / storage.RUNS))
    log(f"{run_id}: training {model_dir} from batch {done} for {cfg.batches} batches")
    if warm is not None:
        log(WARM_LOG)
    if info and info.get("replicas", 1) * info.get("workers", 1) > 1:
        log(f"device: {info['strategy']}, {info['replicas']} replicas on {info['workers']} worker(s): "
            f"{', '.join(info['devices'])}")
    log(cfg.to_json())

    workers = distribute.num_workers(strategy)
    start = done
    status = cb.RunStatus(model_dir, run_id, cfg.batches, done)
    callbacks = [
        cb.RunEvents(model_dir, run_id, cfg, done, parent, info),
        # Mid-batch stops only on one worker: several must run the same number of steps.
        cb.StopRequest(model_dir, mid_batch=workers == 1),
        cb.History(model_dir),  # the record first (on_batch_recorded), then the checkpoint
        status,  # the batch on screen as soon as it is recorded
        saver,
        cb.TensorBoard(model_dir / storage.TENSORBOARD / run_id),
        *([cb.ProgressBar(cfg.batches)] if progress else []),
    ]
    callback_list = cb.Callbacks(callbacks, model=gan)
    end = {"state": "done", "message": "", "final": {}}
    try:
        callback_list.on_train_begin()
        for _ in range(cfg.batches):
            callback_list.on_epoch_begin(done)
            # Every worker stops at the same batch, or the collectives hang.
            if distribute.any_worker(strategy, gan.stop_training):
                end.update(state="stopped", message=f"stopped by request after {done - start} batches")
                break
            t0 = time.time()
            batch, rng, record = train_and_judge(gan, cfg, done + 1, callback_list)
            record.update({"run": run_id, "batch": done + 1, "time": time.time(), "seconds": time.time() - t0})
            # History and status first, so the batch is on screen while the continual method
            # consolidates on it (the Fisher: about a second of a run's first batch, tracing)
            # and the checkpoint is committed; a kill in between leaves a record past the
            # checkpoint, which checkpoint.read_history ignores (as between History and Checkpoint).
            callback_list.on_batch_recorded(done + 1, record)
            gan.consolidate(batch, rng)
            done += 1
            callback_list.on_epoch_end(done, record)  # checkpoint, TensorBoard, bar
            end["final"] = record
            if gan.stop_training:
                end.update(state="stopped", message=f"stopped by request during batch {done}; saved")
                break
    except TrainingDiverged as exc:
        end.update(state="failed", message=f"{exc}. The last good checkpoint (batch {done}) is kept.")
        log(end["message"])
    except KeyboardInterrupt:
        end.update(state="stopped", message=f"aborted; the last good checkpoint (batch {done}) is kept")
    except BaseException as exc:
        # A full disk, a damaged file, a bug: the run failed, whatever it was; say so, then let
        # the exception go on (a non-zero exit).
        end.update(state="failed", message=f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                   + f" (the last good checkpoint, batch {done}, is kept)")
        raise
    finally:
        end.update(batches_done=done - start, model_batches=done)  # the checkpointed batches
        callback_list.on_train_end(end, log)  # each on its own (a full disk may fail one)
    return status.status
