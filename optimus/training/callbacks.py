"""A training run's bookkeeping, as Keras callbacks.

`optimus.training.loop.train` drives them through `Callbacks` (below: not Keras' `CallbackList`), with
Keras' hooks read this way: one online batch (one continual-learning task) is an *epoch*, numbered
by the model's batch count (`epoch` = batches the model has trained after this one), and
one gradient step is a *train batch*. `on_epoch_end` receives the batch's history record.

- `StopRequest`: the app's stop file, Ctrl-C or SIGTERM set `model.stop_training`; the loop
  finishes the current step, saves and exits cleanly (a second Ctrl-C aborts).
- `History`: appends the record to history.jsonl (`on_batch_recorded`: before the consolidation).
- `Checkpoint`: commits the networks and the GAN's state atomically (optimus.store.checkpoint),
  AFTER `History` (a kill in between leaves a record past the checkpoint, which
  `checkpoint.read_history` ignores; never a checkpoint without its record).
- `TensorBoard`: Keras' own, fed the record's scalars.
- `RunStatus`: status.json (state, progress, ETA) for the app's live view, also as soon as the
  record exists; at the end it counts the checkpointed batches.
- `ProgressBar`: Keras' Progbar on the terminal.
- `RunEvents`: the start and end events in runs.jsonl.

`on_train_end(logs)` receives {"state", "message", "batches_done", "model_batches", "final"};
`Callbacks.on_train_end` calls each callback's on its own, so one failing (a full disk) cannot
keep the others (or the exception that ended the run) from getting through.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np

# The record's scalars that TensorBoard and the progress bar show.
from optimus.store import checkpoint, storage

SCALARS = ("d_loss", "g_loss", "hit_rate", "distinct_rate", "baseline", "lift", "d_balanced_accuracy")


class Callbacks:
    """The run's callbacks, called in order with the logs as given.

    Not `keras.callbacks.CallbackList`: it "pythonifies" logs on the way, flattening nested
    dicts and turning every number into a float (seen: history.jsonl got `"batch": 1.0`, which
    `checkpoint.read_history` rightly refuses, and `divisible_share` spread over 24 keys).
    """

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)

    def on_train_begin(self):
        for callback in self.callbacks:
            callback.on_train_begin()

    def on_epoch_begin(self, epoch):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch)

    def on_train_batch_end(self, step):
        for callback in self.callbacks:
            callback.on_train_batch_end(step)

    def on_batch_recorded(self, epoch, record: dict):
        """The batch's record, before the continual method consolidates on it and before the
        checkpoint (`on_epoch_end`): for the callbacks that show it (`RECORDING`)."""
        for callback in self.callbacks:
            if isinstance(callback, RECORDING):
                callback.on_epoch_end(epoch, record)

    def on_epoch_end(self, epoch, record: dict):
        for callback in self.callbacks:
            if not isinstance(callback, RECORDING):
                callback.on_epoch_end(epoch, record)

    def on_train_end(self, logs: dict, log=print) -> None:
        for callback in self.callbacks:
            try:
                callback.on_train_end(logs)
            except Exception as exc:  # noqa: BLE001 (reported, and the run's own outcome stands)
                log(f"could not record the end of the run ({type(callback).__name__}): {type(exc).__name__}: {exc}")


class StopRequest(keras.callbacks.Callback):
    """Stop file, Ctrl-C or SIGTERM -> `model.stop_training` (polled before each online batch
    and, when `mid_batch`, after each step: several workers must all run the same steps, so
    they only stop between batches, agreed by the loop)."""

    def __init__(self, model_dir: Path, mid_batch: bool = True):
        super().__init__()
        self.model_dir, self.mid_batch = Path(model_dir), mid_batch
        self.interrupted = False
        self._old_handlers = {}

    def _signal(self, signum, frame):
        if self.interrupted:  # a second Ctrl-C means it
            raise KeyboardInterrupt
        self.interrupted = True
        print("\nStopping after the current step (Ctrl-C again to abort)...", file=sys.stderr)

    def requested(self) -> bool:
        return self.interrupted or storage.stop_requested(self.model_dir)

    def on_train_begin(self, logs=None):
        with contextlib.suppress(ValueError):  # not the main thread (tests): no signal handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, self._signal)

    def on_epoch_begin(self, epoch, logs=None):
        if self.requested():
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        if self.mid_batch and self.requested():
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}
        storage.clear_stop(self.model_dir)


class History(keras.callbacks.Callback):
    """Each online batch's record, one line of history.jsonl."""

    def __init__(self, model_dir: Path):
        super().__init__()
        self.path = Path(model_dir) / storage.HISTORY

    def on_epoch_end(self, epoch, logs=None):
        storage.append_jsonl(self.path, logs)


class Checkpoint(keras.callbacks.Callback):
    """The networks and the GAN's state (optimisers, continual methods), committed atomically."""

    def __init__(self, model_dir: Path):
        super().__init__()
        self.model_dir = Path(model_dir)

    def save(self, batches_done: int) -> None:
        gan = self.model
        checkpoint.save(self.model_dir, gan.generator, gan.discriminator,
                        {"batches_done": np.array(batches_done), **gan.state()})

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch)


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard (per online batch, `epoch_<name>` in <log_dir>/train), given only
    the record's scalars (the record also holds a dict and integers)."""

    def __init__(self, log_dir, **kwargs):
        super().__init__(log_dir=str(log_dir), write_graph=False, update_freq="epoch", profile_batch=0, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, {k: float(logs[k]) for k in SCALARS if k in (logs or {})})


class RunStatus(keras.callbacks.Callback):
    """status.json: what the app's Train page shows while a run goes on, and after."""

    def __init__(self, model_dir: Path, run_id: str, batches_total: int, model_batches: int):
        super().__init__()
        self.path = Path(model_dir) / storage.STATUS
        started = time.time()
        self.status = {"run": run_id, "state": "running", "pid": os.getpid(), "batches_done": 0,
                       "batches_total": batches_total, "started": started, "updated": started,
                       "eta_seconds": None, "message": "", "model_batches": model_batches}

    def on_train_begin(self, logs=None):
        storage.write_json(self.path, self.status)

    def on_epoch_end(self, epoch, logs=None):
        s = self.status
        done = s["batches_done"] + 1
        elapsed = time.time() - s["started"]
        s.update(batches_done=done, updated=time.time(), model_batches=epoch,
                 eta_seconds=elapsed / done * (s["batches_total"] - done), last=logs)
        storage.write_json(self.path, s)

    def on_train_end(self, logs=None):
        # The checkpointed counts: a batch recorded but not yet saved when the run ended is not one.
        self.status.update(state=logs["state"], message=logs["message"], updated=time.time(), eta_seconds=0,
                           batches_done=logs["batches_done"], model_batches=logs["model_batches"])
        storage.write_json(self.path, self.status)


# Called with the record as soon as it exists (`Callbacks.on_batch_recorded`), the others after
# the consolidation: the record is on disk before the checkpoint, and the app shows the batch
# without waiting for the Fisher.
RECORDING = (History, RunStatus)


class ProgressBar(keras.callbacks.Callback):
    """Keras' Progbar over the run's online batches."""

    def __init__(self, batches_total: int):
        super().__init__()
        self.bar = keras.utils.Progbar(batches_total, stateful_metrics=["lift", "d_bal_acc", "hit_rate"])
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1
        self.bar.update(self.seen, values=[("d_loss", logs["d_loss"]), ("g_loss", logs["g_loss"]),
                                           ("hit_rate", logs["hit_rate"]), ("lift", logs["lift"]),
                                           ("d_bal_acc", logs["d_balanced_accuracy"])])


class RunEvents(keras.callbacks.Callback):
    """The run's start and end events in runs.jsonl (its lineage: parent, config, device)."""

    def __init__(self, model_dir: Path, run_id: str, cfg, start_batch: int, parent, device: dict):
        super().__init__()
        self.path = Path(model_dir) / storage.RUNS
        self.start = {"event": "start", "run": run_id, "parent": parent, "time": None,
                      "batches_planned": cfg.batches, "start_batch": start_batch,
                      "config": dataclasses.asdict(cfg), "device": device}

    def on_train_begin(self, logs=None):
        storage.append_jsonl(self.path, {**self.start, "time": time.time()})

    def on_train_end(self, logs=None):
        storage.append_jsonl(self.path, {
            "event": "end", "run": self.start["run"], "status": logs["state"], "message": logs["message"],
            "time": time.time(), "batches_done": logs["batches_done"], "model_batches": logs["model_batches"],
            "final": logs["final"],
        })
