"""Saving and loading a model directory, so that a killed run never leaves it half-written.

A checkpoint is three files that must agree: generator.keras, discriminator.keras and
state.npz (optimiser and EWC state, batches done). Each is first written in full under a
`.new` name; then `commit.json` is written atomically (the commit point); then the `.new`
files are renamed over the old ones and the commit record removed. The next holder of the
run lock finishes an interrupted commit (roll forward) or discards `.new` files that were never
committed (roll back), so the directory always holds one complete version.

Readers never write. They read the committed version as it stands: with a commit record, a
`.new` file in place of its old name; without one, the old names. A load fingerprints those
files (inode, mtime, size) before and after reading them and starts over if a commit changed
them in between, so a reader polling a live run never mixes two versions nor disturbs the
trainer (readers that ran `recover()` themselves tore live checkpoints: weights from one batch,
optimiser and EWC state from another).

Models load with safe_mode=True and arrays with allow_pickle=False: nothing loaded can run code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimus import config as config_mod
from optimus import limits, validate
from optimus.config import TrainConfig, check_types
from optimus.store import storage

COMMIT = "commit.json"
FILES = (storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE)

# A config.json is about 2 KB (every field, disc_widths up to limits.MAX_DEPTH entries): a
# file 32 times that size is not a config, and is refused before it is parsed.
MAX_CONFIG_BYTES = 64 << 10

# Config fields that fix the networks' shapes: a run may change anything else when it resumes.
ARCHITECTURE_FIELDS = (
    "preset", "generator", "discriminator", "gen_depth", "gen_width", "leaky_slope",
    "opposite_l2", "disc_widths", "disc_dropout", "disc_l2", "out_lo", "out_hi", "window",
    "gen_prime_max", "disc_prime_max", "disc_hidden", "gen_wide_prime_max", "out_density_power",
    "disc_factor_slots",
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


def _committed_paths(model_dir: Path) -> dict[str, Path]:
    """Where each file of the committed version is, read without changing anything."""
    committed = (model_dir / COMMIT).exists()
    paths = {}
    for name in FILES:
        new = model_dir / f"{name}.new"
        paths[name] = new if committed and new.exists() else model_dir / name
    return paths


def _fingerprint(paths: dict[str, Path]) -> tuple:
    out = []
    for name, path in sorted(paths.items()):
        try:
            st = path.stat()
            out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((name, None))
    return tuple(out)


# A reader that keeps meeting commits in progress gives up after this many tries, 0.02 s
# apart: a trainer commits once per online batch, so a second of retries is plenty.
_READ_ATTEMPTS = 50


def _read_committed(model_dir: Path, read, names=FILES):
    """read(paths) on one committed version of `names`, retried while a commit changes them."""
    for _ in range(_READ_ATTEMPTS):
        paths = {n: p for n, p in _committed_paths(model_dir).items() if n in names}
        before = _fingerprint(paths)
        try:
            result = read(paths)
        except (FileNotFoundError, CheckpointError):
            result = None
            if _fingerprint({n: p for n, p in _committed_paths(model_dir).items() if n in names}) == before:
                raise
        else:
            if _fingerprint({n: p for n, p in _committed_paths(model_dir).items() if n in names}) == before:
                return result
        time.sleep(0.02)
    raise CheckpointError(f"{model_dir}: the checkpoint kept changing while it was read (a run is saving); try again")


def has_checkpoint(model_dir) -> bool:
    """All three checkpoint files are present (reads only)."""
    return all(p.exists() for p in _committed_paths(Path(model_dir)).values())


def missing_files(model_dir) -> list[str]:
    """The files of a model (config.json and the checkpoint's three) that are absent."""
    model_dir = Path(model_dir)
    paths = {storage.CONFIG: model_dir / storage.CONFIG, **_committed_paths(model_dir)}
    return [name for name, path in paths.items() if not path.exists()]


def resumable(model_dir) -> bool:
    """The one rule that decides "resume": True if `model_dir` holds a complete model to
    continue, False if it holds none (a new model may start there); CheckpointError naming the
    missing files for a partial directory, which nothing may silently start over.

    A directory holding only config.json and no runs is a first run killed before its first
    save (it writes config.json first): nothing was trained, so it counts as empty.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return False
    missing = missing_files(model_dir)
    if not missing:
        return True
    present = [n for n in (storage.CONFIG, *FILES) if n not in missing]
    if not present:
        return False
    if present == [storage.CONFIG] and not (model_dir / storage.RUNS).exists() and not (model_dir / storage.HISTORY).exists():
        return False
    raise CheckpointError(
        f"{model_dir} is a partial model directory: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
        f"missing (present: {', '.join(present)}); restore {'it' if len(missing) == 1 else 'them'} "
        "from a backup, or train into a new directory (nothing was changed)"
    )


def holds_model(model_dir) -> bool:
    """True if `model_dir` holds a model, complete or partial (a target `--from` may not overwrite)."""
    try:
        return resumable(model_dir)
    except CheckpointError:
        return True


def refuse_existing_target(model_dir, from_dir) -> None:
    """The rule shared by the CLI and the app: a copy of `from_dir` never overwrites a model."""
    if from_dir is not None and Path(from_dir).absolute() != Path(model_dir).absolute() and holds_model(model_dir):
        raise CheckpointError(
            f"{model_dir} already holds a model: choose a new directory for the copy of {from_dir}, "
            f"or continue {model_dir} without --from"
        )


def recover(model_dir) -> None:
    """Finish or discard an interrupted commit, and remove temporary files of killed writes.

    Only the holder of the run lock may call this (it renames and deletes files a live trainer
    may be writing)."""
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
    storage.remove_temp_files(model_dir, [f"{n}.new" for n in FILES] + [COMMIT, storage.CONFIG, storage.STATUS])


def save(model_dir, generator, discriminator, state: dict) -> None:
    """Write a complete checkpoint atomically (see module docstring); run-lock holder only."""
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
    """Batches done by the checkpoint on disk (None if there is none or it is unreadable)."""
    model_dir = Path(model_dir)
    try:
        state = _read_committed(model_dir, lambda paths: _read_state(paths[storage.STATE], ("batches_done",)),
                                 names=(storage.STATE,))
    except (CheckpointError, FileNotFoundError):
        return None
    return int(state["batches_done"])


# history.jsonl keys renamed since files were first written (EWC was once the only method):
# old -> current. Records are read with the current names; files are never rewritten.
LEGACY_HISTORY_KEYS = {"ewc_penalty_g": "method_penalty_g", "ewc_penalty_d": "method_penalty_d"}


def read_history(model_dir) -> list[dict]:
    """The history of the saved networks: one record per batch up to the checkpoint.

    A record is appended before its checkpoint is committed, so a run killed in between leaves
    a record for a batch whose weights were never saved; it is left out here, and when the
    batch is trained again its new record (later in the file) is the one kept. Keys of
    LEGACY_HISTORY_KEYS read as their current names.
    """
    done = saved_batches(model_dir)
    by_batch: dict[int, dict] = {}
    for record in storage.read_jsonl(Path(model_dir) / storage.HISTORY):
        batch = record.get("batch")
        if isinstance(batch, int) and (done is None or batch <= done):
            by_batch[batch] = {LEGACY_HISTORY_KEYS.get(k, k): v for k, v in record.items()}
    return [by_batch[b] for b in sorted(by_batch)]


def load_config(model_dir) -> TrainConfig:
    path = Path(model_dir) / storage.CONFIG
    if not path.exists():
        raise CheckpointError(f"{model_dir}: no {storage.CONFIG} (not a model directory, or never trained)")
    return read_config_file(path)


def _read_state(path: Path, keys=None) -> dict:
    """state.npz as a dict of arrays (only `keys` if given), with `batches_done` checked;
    CheckpointError naming the file (and the field) if it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files if keys is None or k in keys}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (object arrays), EOFError ...
        raise CheckpointError(f"{path} is damaged or unreadable ({type(exc).__name__}: {exc})") from None
    if "batches_done" not in state:
        raise CheckpointError(f"{path} is damaged: it has no batches_done")
    done = state["batches_done"]
    if done.shape != () or done.dtype.kind not in "iu" or int(done) < 0:
        shown = str(done.tolist())[:40] if done.dtype.kind in "iufbUS" else done.dtype.name
        raise CheckpointError(f"{path} is damaged: batches_done = {shown!r} is not a whole number >= 0")
    return state


def load_state(model_dir) -> dict:
    path = Path(model_dir) / storage.STATE
    try:
        validate.check_archive(path, limits.MAX_STATE_BYTES)
        return _read_state(path)
    except FileNotFoundError:
        raise CheckpointError(f"{model_dir}: {storage.STATE} is missing") from None
    except ValueError as exc:  # over the archive cap (CheckpointError passes through unchanged)
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(str(exc)) from None


def load_network(path):
    # Keras (TensorFlow) on first load: the pages import this module to read configs and history.
    import keras  # TensorFlow: the pages import this module to read configs and history

    from optimus.nets import serialisables  # imports TensorFlow: as above

    serialisables.register_all()
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path.parent}: {path.name} is missing")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is damaged or truncated (not a complete .keras archive)")
    try:
        validate.check_archive(path, limits.MAX_KERAS_BYTES)
        if path.suffix == ".keras":
            return keras.saving.load_model(path, safe_mode=True, compile=False)
        # A committed `generator.keras.new` (an interrupted commit, read as committed): Keras
        # insists on the .keras suffix, so it gets one through a link outside the model
        # directory, which readers never write.
        with tempfile.TemporaryDirectory(prefix="optimus-read-") as tmp:
            link = Path(tmp) / path.name.removesuffix(".new")
            link.symlink_to(path.absolute())
            return keras.saving.load_model(link, safe_mode=True, compile=False)
    except FileNotFoundError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} could not be loaded safely ({type(exc).__name__}: {msg})") from None


def load(model_dir) -> Checkpoint:
    """Load a model directory, raising CheckpointError with what is wrong. Reads only: an
    interrupted commit is read as committed (rolled forward), never finished here."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir} does not exist or is not a directory")
    if not resumable(model_dir):
        raise CheckpointError(f"{model_dir} holds no model ({', '.join(missing_files(model_dir))} missing)")
    config = load_config(model_dir)
    check_archives(model_dir, config)

    def read(paths):
        # Named after the file users know, even when the committed version is still `.new`.
        networks = []
        for name in (storage.GENERATOR, storage.DISCRIMINATOR):
            try:
                networks.append(load_network(paths[name]))
            except CheckpointError as exc:
                raise CheckpointError(str(exc).replace(f"{name}.new", name)) from None
        try:
            state = _read_state(paths[storage.STATE])
        except CheckpointError as exc:
            raise CheckpointError(str(exc).replace(f"{storage.STATE}.new", storage.STATE)) from None
        return networks[0], networks[1], state

    generator, discriminator, state = _read_committed(model_dir, read)
    for network, name, file in ((generator, "generator", storage.GENERATOR),
                                (discriminator, "discriminator", storage.DISCRIMINATOR)):
        if network.name != name:
            raise CheckpointError(f"{model_dir / file} holds a network named {network.name!r}, not an Optimus {name}")
    # TensorFlow, as in load_network (a model is loaded only where the networks are used).
    from optimus.nets.networks import build_discriminator, build_generator  # TensorFlow: as above

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
    params = config.parameter_counts()
    caps = {
        storage.GENERATOR: params["generator"] * limits.KERAS_BYTES_PER_PARAMETER + limits.ARCHIVE_SLACK_BYTES,
        storage.DISCRIMINATOR: params["discriminator"] * limits.KERAS_BYTES_PER_PARAMETER + limits.ARCHIVE_SLACK_BYTES,
        storage.STATE: (sum(params.values()) * limits.STATE_BYTES_PER_PARAMETER + 2 * limits.MAX_REPLAY_BYTES
                        + limits.ARCHIVE_SLACK_BYTES),
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


# The fields a run may be given (flags, the app's form, a --config file): every TrainConfig
# field except the file-format version.
RUN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "version")


def run_config(model_dir, from_dir=None, preset: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """The one rule for which config a run trains with; the CLI, `runs` and the Train page call it.

    - A new model (`model_dir` holds none, no `from_dir`): preset `preset` (default "default")
      with `overrides` applied.
    - Resuming `model_dir`, continuing it in place, or starting from `from_dir`'s networks: the
      saved config.json with `overrides` applied. The preset is fixed by the saved model (a
      different `preset` is refused); `batches` goes back to the preset's when not given (a run
      is a number of new batches, not "as many as last time"); architecture fields
      (ARCHITECTURE_FIELDS) that differ from the saved ones are refused.
    `overrides`: TrainConfig fields (None values ignored); an unknown name is refused. Raises
    ValueError (CheckpointError for the model directory's files) naming the field or file.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(RUN_FIELDS))
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; allowed: {sorted(RUN_FIELDS)}")
    model_dir = Path(model_dir)
    if from_dir is not None and Path(from_dir).absolute() == model_dir.absolute():
        from_dir = None
    if from_dir is not None and not Path(from_dir).is_dir():
        raise CheckpointError(f"--from {from_dir}: no such model directory")
    # The same rule the trainer applies under its lock: a partial directory is refused here.
    source = Path(from_dir) if from_dir is not None else (model_dir if resumable(model_dir) else None)
    if source is None:
        return config_mod.preset(overrides.pop("preset", None) or preset or "default", **overrides)
    saved = load_config(source)
    if preset is not None and preset != saved.preset:
        raise CheckpointError(f"{source} was trained with preset {saved.preset!r}, not {preset!r}")
    try:
        cfg = saved.replace(**overrides)
        if "batches" not in overrides:
            cfg = cfg.replace(batches=config_mod.preset(saved.preset).batches)
    except TypeError as exc:  # a field of the wrong kind reaches dataclasses.replace
        raise ValueError(str(exc)) from None
    cfg.validate()
    check_compatible(saved, cfg, source)
    return cfg


def read_config_file(path) -> TrainConfig:
    """A run's config written as JSON (a model's config.json, or one the app wrote for
    `train --config`): read at most MAX_CONFIG_BYTES, every field's JSON type checked,
    then TrainConfig.from_dict (unknown keys, version, ranges). Missing keys take TrainConfig's
    defaults. Raises CheckpointError naming the file and the field."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path} is larger than {MAX_CONFIG_BYTES:,} bytes "
                              "(optimus.store.checkpoint.MAX_CONFIG_BYTES): not a run's config")
    try:
        data = storage.loads_json(raw, huge=storage.HugeNumber)  # a huge number: named with its field below
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object (it holds a JSON {type(data).__name__})")
    for key, value in data.items():
        huge = storage.huge_number(value)
        if huge is not None:
            raise CheckpointError(f"{path}: {key} holds a number of {huge.digits:,} digits; "
                                  "no setting takes more than a few")
    try:
        check_types(data)
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
