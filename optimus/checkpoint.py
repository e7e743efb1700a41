"""Saving and loading a model directory, so that a killed run never leaves it half-written.

A checkpoint is three files that must agree: generator.keras, discriminator.keras and
state.npz (optimiser and EWC state, batches done). Each is first written in full under a
`.new` name; then `commit.json` is written atomically (the commit point); then the `.new`
files are renamed over the old ones and the commit record removed. Whoever opens the
directory next finishes an interrupted commit (roll forward) or discards `.new` files that
were never committed (roll back), so the directory always holds one complete version.

Models load with safe_mode=True and arrays with allow_pickle=False: nothing loaded can run code.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimus import storage
from optimus.config import TrainConfig

COMMIT = "commit.json"
FILES = (storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE)

# Config fields that fix the networks' shapes: a run may change anything else when it resumes.
ARCHITECTURE_FIELDS = (
    "preset", "generator", "discriminator", "gen_depth", "gen_width", "leaky_slope",
    "opposite_l2", "disc_widths", "disc_dropout", "disc_l2", "out_lo", "out_hi", "window",
    "gen_prime_max", "disc_prime_max", "disc_hidden",
)


class CheckpointError(ValueError):
    """A model directory is missing, damaged or incompatible; the message says what is wrong."""


@dataclass
class Checkpoint:
    config: TrainConfig
    generator: object
    discriminator: object
    state: dict
    path: Path

    @property
    def batches_done(self) -> int:
        return int(self.state.get("batches_done", 0))


def has_checkpoint(model_dir) -> bool:
    model_dir = Path(model_dir)
    recover(model_dir)
    return all((model_dir / f).exists() for f in FILES)


def recover(model_dir) -> None:
    """Finish or discard an interrupted commit (see module docstring)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return
    commit = model_dir / COMMIT
    if commit.exists():
        for name in FILES:
            new = model_dir / f"{name}.new"
            if new.exists():
                os.replace(new, model_dir / name)
        commit.unlink()
    for name in FILES:
        with contextlib.suppress(FileNotFoundError):
            (model_dir / f"{name}.new").unlink()


def save(model_dir, generator, discriminator, state: dict) -> None:
    """Write a complete checkpoint atomically (see module docstring)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    recover(model_dir)
    with storage.atomic_path(model_dir / f"{storage.GENERATOR}.new", suffix=".keras") as tmp:
        generator.save(tmp)
    with storage.atomic_path(model_dir / f"{storage.DISCRIMINATOR}.new", suffix=".keras") as tmp:
        discriminator.save(tmp)
    with storage.atomic_path(model_dir / f"{storage.STATE}.new", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **state)
    storage.write_json(model_dir / COMMIT, {"files": list(FILES), "batches_done": int(state.get("batches_done", 0))})
    recover(model_dir)


def saved_batches(model_dir) -> int | None:
    """Batches done by the checkpoint on disk (None if there is none)."""
    model_dir = Path(model_dir)
    recover(model_dir)
    try:
        with np.load(model_dir / storage.STATE, allow_pickle=False) as data:
            return int(data["batches_done"])
    except Exception:
        return None


def read_history(model_dir) -> list[dict]:
    """The history of the saved networks: one record per batch up to the checkpoint.

    A record is appended before its checkpoint is committed, so a run killed in between leaves
    a record for a batch whose weights were never saved; it is left out here, and when the
    batch is trained again its new record (later in the file) is the one kept.
    """
    done = saved_batches(model_dir)
    by_batch: dict[int, dict] = {}
    for record in storage.read_jsonl(Path(model_dir) / storage.HISTORY):
        batch = record.get("batch")
        if isinstance(batch, int) and (done is None or batch <= done):
            by_batch[batch] = record
    return [by_batch[b] for b in sorted(by_batch)]


def load_config(model_dir) -> TrainConfig:
    path = Path(model_dir) / storage.CONFIG
    if not path.exists():
        raise CheckpointError(f"{model_dir}: no {storage.CONFIG} (not a model directory, or never trained)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_state(model_dir) -> dict:
    from optimus import limits, validate

    path = Path(model_dir) / storage.STATE
    try:
        validate.check_archive(path, limits.MAX_STATE_BYTES)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"{model_dir}: {storage.STATE} is missing") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError (object arrays), EOFError ...
        raise CheckpointError(f"{path} is damaged or unreadable ({type(exc).__name__}: {exc})") from None


def load_network(path):
    import keras

    import optimus.layers  # noqa: F401  (registers the custom objects)

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path.parent}: {path.name} is missing")
    from optimus import limits, validate

    try:
        validate.check_archive(path, limits.MAX_KERAS_BYTES)
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} could not be loaded safely ({type(exc).__name__}: {msg})") from None


def load(model_dir, finish_commits: bool = True) -> Checkpoint:
    """Load a model directory, raising CheckpointError with what is wrong.

    finish_commits=False reads without finishing or discarding an interrupted commit (a
    non-chief worker reading the directory its chief writes)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir} does not exist or is not a directory")
    if finish_commits:
        recover(model_dir)
    config = load_config(model_dir)
    check_archives(model_dir, config)
    generator = load_network(model_dir / storage.GENERATOR)
    discriminator = load_network(model_dir / storage.DISCRIMINATOR)
    state = load_state(model_dir)
    if generator.name != "generator" or discriminator.name != "discriminator":
        raise CheckpointError(f"{model_dir}: the .keras files are not an Optimus generator/discriminator pair")
    from optimus.models import build_discriminator, build_generator

    for built, loaded, label in (
        (build_generator(config), generator, "generator"),
        (build_discriminator(config), discriminator, "discriminator"),
    ):
        want = [tuple(w.shape) for w in built.weights]
        got = [tuple(w.shape) for w in loaded.weights]
        if want != got:
            raise CheckpointError(
                f"{model_dir}: {label}.keras does not match config.json (preset {config.preset!r}): "
                "the files come from different models"
            )
    return Checkpoint(config, generator, discriminator, state, model_dir)


def check_archives(model_dir, config: TrainConfig) -> None:
    """Refuse archives whose uncompressed size exceeds what `config`'s networks can need
    (optimus.limits, before anything is inflated); CheckpointError names the file and the cap."""
    from optimus import limits, validate

    params = config.parameter_counts()
    caps = {
        storage.GENERATOR: params["generator"] * limits.KERAS_BYTES_PER_PARAMETER + limits.ARCHIVE_SLACK_BYTES,
        storage.DISCRIMINATOR: params["discriminator"] * limits.KERAS_BYTES_PER_PARAMETER + limits.ARCHIVE_SLACK_BYTES,
        storage.STATE: sum(params.values()) * limits.STATE_BYTES_PER_PARAMETER + limits.ARCHIVE_SLACK_BYTES,
    }
    for name, cap in caps.items():
        if (Path(model_dir) / name).exists():
            try:
                validate.check_archive(Path(model_dir) / name, cap)
            except ValueError as exc:
                raise CheckpointError(str(exc)) from None


def check_compatible(saved: TrainConfig, wanted: TrainConfig, source) -> None:
    """Refuse to continue a model with a config whose networks have other shapes."""
    for name in ARCHITECTURE_FIELDS:
        if getattr(saved, name) != getattr(wanted, name):
            raise CheckpointError(
                f"{source} was trained with {name}={getattr(saved, name)!r}; cannot continue it with "
                f"{name}={getattr(wanted, name)!r} (start a new model directory instead)"
            )
