"""Training runs seen from disk: find models, read their progress, start and stop runs.

The app never trains in its own process. `start_training` decides the run's config with
`checkpoint.run_config` (the rule the CLI applies), writes it to a file of that launch's own and
spawns `python -m optimus train --config FILE` as a detached child (its own session, output
appended to `train.log`) or hands that command to the warm trainer waiting for it
(`ensure_spare`, `optimus.training.spare`: TensorFlow already imported), and every view of a run is
read back from the files the trainer writes (`status.json`, `history.jsonl`, `runs.jsonl`,
`train.lock`). So a page refresh, a closed tab or a second visitor sees the same run and
cannot start a duplicate, and a restarted app finds running and finished runs again.

No Streamlit and no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd

from optimus import config as config_mod
from optimus.store import checkpoint, storage

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_ENV = "OPTIMUS_MODELS_DIR"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

HISTORY_COLUMNS = [
    "run", "batch", "time", "seconds", "d_loss", "g_loss", "hit_rate", "distinct_rate",
    "baseline", "lift", "d_balanced_accuracy", "method_penalty_g", "method_penalty_d",
]
RUN_COLUMNS = [
    "run", "parent", "status", "preset", "batches_planned", "batches_done", "started", "ended",
    "hit_rate", "baseline", "lift", "d_balanced_accuracy", "message",
]
# A launch's config file in the model directory (`write_run_config`): a dot-name no model
# file has, so listing and loading a model never see it.
RUN_CONFIG_PREFIX = ".run-config-"
START_WAIT_SECONDS = 2.0
STARTING_LIMIT_SECONDS = 120.0  # a launch that has shown no batch after this long is no longer "starting"
# How long a trainer whose run has ended may take to exit before a new start is refused.
# Measured on the shared 2-core machine: about 1 s from the lock's release to the exit
# (TensorFlow's teardown); a Continue clicked in that second used to be refused as "just started".
EXIT_WAIT_SECONDS = 30.0

# Children this process has spawned, by resolved model directory. A child holds the lock only
# once it has started (importing TensorFlow takes seconds); until then this registry is what
# stops a double click in any session of this app from starting a second run.
_spawned: dict[str, subprocess.Popen] = {}
_spawn_lock = threading.Lock()

# The warm trainer (optimus/training/spare.py) this process keeps for its next run, and the
# environment it was started with: a run whose environment differs is spawned cold (TensorFlow
# reads some variables at import). $OPTIMUS_WARM_TRAINER=0 turns it off.
SPARE_ENV = "OPTIMUS_WARM_TRAINER"
# How long a launch waits for the spare to take its job: it may still be importing TensorFlow
# (seconds), which a cold start would have to do as well.
SPARE_TAKE_SECONDS = 60.0
_spare: subprocess.Popen | None = None
_spare_env: dict | None = None


# --- where models live ------------------------------------------------------------------


def models_root(root: str | os.PathLike | None = None) -> Path:
    """The models root: `root` if given, else $OPTIMUS_MODELS_DIR, else `models/` in the repo.

    A relative path is taken relative to the current directory.
    """
    if root is None:
        root = os.environ.get(MODELS_ENV) or (REPO_ROOT / "models")
    return Path(root).expanduser().absolute()


def resolve_model_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The directory of model `name` inside the models root, or ValueError saying what to change.

    A name is 1-64 characters of letters, digits, `_`, `.` and `-`, starting with a letter or
    digit, without `..`; its resolved path (symlinks followed) must stay inside the root.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("Enter a model name (letters, digits, '_', '.', '-').")
    if ".." in name:
        raise ValueError(f"Model name {name!r} must not contain '..'.")
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"Model name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (no '/', spaces or absolute paths)."
        )
    base = models_root(root).resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise ValueError(f"Model name {name!r} points outside the models folder {base}; choose another name.")
    return path


# --- reading a model directory ----------------------------------------------------------


def read_config(model_dir) -> dict | None:
    """config.json as a dict; None if missing; ValueError if unreadable."""
    path = Path(model_dir) / storage.CONFIG
    if not path.exists():
        return None
    try:
        data = storage.read_json(path, huge=storage.HugeNumber)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); retrain the model or restore the file.") from exc
    for key, value in data.items() if isinstance(data, dict) else ():
        huge = storage.huge_number(value)
        if huge is not None:
            raise ValueError(f"{path} is damaged ({key} holds a number of {huge.digits:,} digits); "
                             "retrain the model or restore the file.")
    if not isinstance(data, dict):
        raise ValueError(f"{path} is damaged (it holds a JSON {type(data).__name__}, not an object); "
                         "retrain the model or restore the file.")
    return data


def saved_config(model_dir) -> config_mod.TrainConfig:
    """The model's saved config, validated; ValueError naming the file if missing or damaged."""
    return checkpoint.load_config(model_dir)


def holds_config(model_dir) -> bool:
    """The directory holds a model's config (a model of that name exists, even a damaged one)."""
    return (Path(model_dir) / storage.CONFIG).exists()


def demonstrates_divergence(model_dir) -> bool:
    """The model applied the seed's opposite L2 on purpose (the Train page's Demonstration box),
    so a failed run is the divergence it demonstrates."""
    try:
        cfg = read_config(model_dir) or {}
    except ValueError:
        return False
    return cfg.get("preset") == "seed" and bool(cfg.get("apply_regularizers"))


def stop_requested(model_dir) -> bool:
    """A stop was asked of the model's run (it saves and ends after its current step)."""
    return storage.stop_requested(model_dir)


def has_networks(model_dir) -> bool:
    """The model has saved its networks (a first run saves them after its first batch)."""
    return (Path(model_dir) / storage.GENERATOR).exists()


def model_signature(model_dir) -> tuple:
    """(file, mtime, size) of the files that define a model: changes whenever a run saves, so
    caches keyed by it hold one entry per saved version."""
    model_dir = Path(model_dir)
    signature = []
    for name in (storage.CONFIG, storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE):
        with contextlib.suppress(OSError):
            stat = (model_dir / name).stat()
            signature.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


# Files every page run would read again while unchanged, cached by (inode, mtime, size): the
# model listing (list_models) and evaluation.json (the Overview's figures; read-only to callers).
_listing_lock = threading.Lock()
_evaluations: dict[Path, tuple[tuple, object]] = {}


def saved_evaluation(model_dir, batches: int) -> dict | None:
    """The report `optimus evaluate --save` wrote, if it is of the model as it stands (evaluated
    after `batches` online batches); None if there is none, it is stale or unreadable."""
    path = Path(model_dir) / storage.EVALUATION
    try:
        st = os.stat(path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with _listing_lock:
            cached = _evaluations.get(path)
        if cached is not None and cached[0] == key:
            saved = cached[1]
        else:
            saved = storage.read_json(path)
            with _listing_lock:
                _evaluations[path] = (key, saved)
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not _evaluation_ok(saved):
        return None  # damaged or hand-edited: the page evaluates the model afresh
    return saved if saved.get("batches_trained") == batches else None


def _evaluation_ok(saved: dict) -> bool:
    """The fields of evaluation.json the Overview shows have their JSON types."""
    gen, disc = saved.get("generator"), saved.get("discriminator_on_uniform")
    if not isinstance(gen, dict) or not isinstance(disc, dict) or not _whole(saved.get("batches_trained")):
        return False
    figures = [gen.get(k) for k in ("hit_rate", "lift", "distinct_rate")] + [disc.get("balanced_accuracy")]
    counts = [gen.get(k, 0) for k in ("count", "lo", "hi")]
    return all(v is None or _number(v) for v in figures) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in counts)


STATUS_STATES = ("starting", "running", "done", "stopped", "failed", "interrupted")
_LAST_FIELDS = ("hit_rate", "baseline", "lift", "d_balanced_accuracy", "distinct_rate", "d_loss", "g_loss")
_MAX_COUNT = 10**12  # batches: far above limits.MAX_BATCHES, far below what breaks a format


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value) -> bool:  # NaN included: a diverged run's loss is one
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_status(status: dict) -> tuple[dict, list[str]]:
    """status.json's fields with their JSON types checked: (the fields that are right, a note per
    field that is not). A wrong field is left out, so a page shows what it can."""
    checks = {
        "state": (lambda v: v in STATUS_STATES, f"one of {', '.join(STATUS_STATES)}"),
        "run": (lambda v: isinstance(v, str) and len(v) <= 64, "a run name"),
        "pid": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31, "a process id"),
        "batches_done": (_whole, "a whole number of batches"),
        "batches_total": (_whole, "a whole number of batches"),
        "model_batches": (_whole, "a whole number of batches"),
        "eta_seconds": (lambda v: v is None or (_finite(v) and v >= 0), "a number of seconds"),
        "started": (_finite, "a time"),
        "updated": (_finite, "a time"),
        "message": (lambda v: isinstance(v, str), "text"),
        "last": (lambda v: isinstance(v, dict) and all(_number(v[k]) or v[k] is None for k in _LAST_FIELDS if k in v),
                 "the last batch's figures (numbers)"),
    }
    clean, notes = {}, []
    for key, value in status.items():
        check = checks.get(key)
        if check is None:
            continue
        if check[0](value):
            clean[key] = value
        else:
            notes.append(f"{key} is not {check[1]}")
    return clean, notes


def read_status(model_dir) -> dict | None:
    """status.json with `live` added (a process holds the lock), or None if never trained.

    A status that says "running" without a live lock (the trainer was killed) reads as
    "interrupted".
    """
    model_dir = Path(model_dir)
    _reap()
    try:
        status = storage.read_json(model_dir / storage.STATUS)
        if not isinstance(status, dict):
            raise ValueError(f"it holds a JSON {type(status).__name__}, not an object")
    except FileNotFoundError:
        status = None
    except (OSError, ValueError) as exc:
        status = {"state": "unknown", "message": f"status.json is damaged ({str(exc)[:120]})"}
    else:
        if status is not None:
            status, notes = check_status(status)
            if notes:
                status["damaged"] = f"{storage.STATUS} is damaged ({'; '.join(notes)})"
                status.setdefault("state", "unknown")
                status["message"] = status["damaged"]
    holder = storage.lock_holder(model_dir)
    if status is None and holder is None:
        return None
    if holder is not None and (status is None or status.get("pid") != holder.get("pid")):
        # The trainer holds the lock but has not written its status yet (it is importing
        # TensorFlow); what is on disk, if anything, is the previous run's.
        status = {"state": "starting", "pid": holder.get("pid"), "batches_done": 0, "batches_total": 0,
                  "message": "the trainer is starting (building the networks, compiling its steps)"}
    status = dict(status)
    status["live"] = holder is not None
    if status.get("state") == "running" and holder is None:
        status["state"] = "interrupted"
        status["message"] = status.get("message") or "the training process ended without a final status"
        # The live view shows a batch as soon as it is recorded, before its checkpoint: a kill in
        # between leaves a status one batch past what is saved. Count the checkpointed batches,
        # so Continue plans from what the model holds.
        saved, model = checkpoint.saved_batches(model_dir), status.get("model_batches")
        if isinstance(saved, int) and isinstance(model, int) and model > saved:
            status["batches_done"] = max(0, int(status.get("batches_done") or 0) - (model - saved))
            status["model_batches"] = saved
    return status


def _checked_history_record(record: dict) -> dict:
    """A history.jsonl record with its fields' types checked: a figure that is not a number
    becomes None (a missing point), a `divisible_share` keeps only {"p": number} entries."""
    record = dict(record)
    for column in HISTORY_COLUMNS[2:]:
        if column in record and not (_number(record[column]) or record[column] is None):
            record[column] = None
    if not isinstance(record.get("run"), (str, type(None))):
        record["run"] = None
    shares = record.get("divisible_share")
    if shares is not None:
        record["divisible_share"] = ({p: v for p, v in shares.items() if p.isdigit() and len(p) < 10 and _number(v)}
                                     if isinstance(shares, dict) else None)
    return record


def read_history(model_dir) -> pd.DataFrame:
    """history.jsonl as a DataFrame, one row per online batch, sorted by global batch."""
    records = [_checked_history_record(r) for r in checkpoint.read_history(model_dir)]
    frame = pd.DataFrame.from_records(records)
    for column in HISTORY_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="float64")
    ordered = HISTORY_COLUMNS + [c for c in frame.columns if c not in HISTORY_COLUMNS]
    frame = frame[ordered]
    if not frame.empty:
        frame = frame.sort_values("batch", kind="stable").reset_index(drop=True)
    return frame


# runs.jsonl fields, type-checked where they are read: a wrong one reads as missing.
def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _count(value) -> int | None:
    return value if _whole(value) else None


def _time(value) -> float | None:
    return value if _finite(value) and 0 <= value < 9e9 else None  # (pandas' datetimes end in 2262)


def _parent_label(parent) -> str:
    if not parent:
        return ""
    if isinstance(parent, dict):
        model = Path(str(parent.get("model_dir", ""))).name
        run = parent.get("run")
        return f"{model} / {run}" if run is not None else model
    return str(parent)


def read_runs(model_dir) -> pd.DataFrame:
    """The lineage table: one row per run from runs.jsonl, newest first.

    A run with a start but no end is "running" while its trainer holds the lock, and
    "interrupted" after that.
    """
    model_dir = Path(model_dir)
    rows: dict = {}
    for event in storage.read_jsonl(model_dir / storage.RUNS):
        run = event.get("run") if isinstance(event, dict) else None
        if not isinstance(run, str):  # not a run event ([1], {"event": "end"}): skip it
            continue
        row = rows.setdefault(run, {c: None for c in RUN_COLUMNS} | {"run": run})
        if event.get("event") == "start":
            cfg = event.get("config") if isinstance(event.get("config"), dict) else {}
            row.update(
                parent=_parent_label(event.get("parent")),
                preset=_text(cfg.get("preset")),
                batches_planned=_count(event.get("batches_planned", cfg.get("batches"))),
                started=_time(event.get("time")),
                status="running",
            )
        elif event.get("event") == "end":
            final = event.get("final") if isinstance(event.get("final"), dict) else {}
            row.update(
                status=_text(event.get("status")) or "unknown",
                batches_done=_count(event.get("batches_done")),
                ended=_time(event.get("time")),
                message=_text(event.get("message")),
                **{k: final.get(k) if _number(final.get(k)) else None
                   for k in ("hit_rate", "baseline", "lift", "d_balanced_accuracy")},
            )
    if any(r["status"] == "running" for r in rows.values()):
        status = read_status(model_dir) or {}
        for row in rows.values():
            if row["status"] != "running":
                continue
            if status.get("live") and status.get("run") == row["run"]:
                row["batches_done"] = status.get("batches_done")
            else:
                row["status"] = "interrupted"
    frame = pd.DataFrame(list(rows.values()), columns=RUN_COLUMNS)
    for column in ("started", "ended"):
        frame[column] = pd.to_datetime(frame[column], unit="s", errors="coerce").dt.floor("s")
    return frame.iloc[::-1].reset_index(drop=True)


def _batches_trained(model_dir: Path, status: dict | None) -> int:
    records = checkpoint.read_history(model_dir)
    if records:
        return max(r["batch"] for r in records)
    done = (status or {}).get("batches_done")
    return done if isinstance(done, int) and not isinstance(done, bool) else 0


def model_problems(model_dir) -> list[str]:
    """What is wrong with a model directory's files, each naming the file; [] if nothing.

    Reads only, and cheaply (no network is loaded): every page lists every model.
    """
    model_dir = Path(model_dir)
    problems: list[str] = []
    try:
        checkpoint.resumable(model_dir)
    except checkpoint.CheckpointError as exc:
        problems.append(str(exc))
    try:
        read_config(model_dir)
    except ValueError as exc:
        problems.append(str(exc))
    for name in (storage.GENERATOR, storage.DISCRIMINATOR):
        path = model_dir / name
        if path.exists() and not path.is_symlink() and not zipfile.is_zipfile(path):
            problems.append(f"{path} is damaged or truncated (not a complete .keras archive)")
    if (model_dir / storage.STATE).exists():
        try:
            checkpoint.load_state(model_dir)
        except checkpoint.CheckpointError as exc:
            problems.append(str(exc))
    try:
        status = storage.read_json(model_dir / storage.STATUS)
        if not isinstance(status, dict):
            problems.append(f"{storage.STATUS} holds a JSON {type(status).__name__}, not an object")
        else:
            notes = check_status(status)[1]
            if notes:
                problems.append(f"{storage.STATUS} is damaged ({'; '.join(notes)})")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        problems.append(f"{storage.STATUS} is damaged ({str(exc)[:120]})")
    for name in (storage.HISTORY, storage.RUNS):
        storage.read_jsonl(model_dir / name, problems)
    return problems


# The files a model's listing entry is read from: while none of them changes (inode, mtime,
# size) and no run holds the lock, list_models answers from its cache without opening them.
# Every page lists every model on every run: reading each state.npz in full cost about 0.17 s
# per page run with the two shipped models (issue 18).
_LISTED_FILES = (storage.CONFIG, storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE, storage.STATUS,
                 storage.HISTORY, storage.RUNS, storage.LOCK, checkpoint.COMMIT,
                 *(f"{name}.new" for name in checkpoint.FILES))
_listing: dict[Path, tuple[tuple, dict]] = {}


def files_signature(path, names) -> tuple:
    """(inode, mtime, size) of each named file in the folder `path`, None where it is absent:
    what changes when a file is written, replaced or removed, read without opening it."""
    out = []
    for name in names:
        try:
            info = os.stat(Path(path) / name, follow_symlinks=False)
            out.append((info.st_ino, info.st_mtime_ns, info.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _listing_signature(path: Path) -> tuple:
    return files_signature(path, _LISTED_FILES)


def list_models(root: str | os.PathLike | None = None) -> list[dict]:
    """Every model directory under the root, sorted by name.

    Each entry: name, path, preset, batches (online batches trained), status (never trained,
    running, done, stopped, failed, interrupted, damaged), live, error (why it cannot be used,
    or None), problem (everything found wrong with its files, each naming the file, or None).
    A directory counts as a model when it holds a config, weights or a status file. Symbolic
    links are not listed: nothing is read or written through them.

    Entries are cached by the size, mtime and inode of the files they are read from; a model
    whose run holds the lock is read afresh every time (its files change batch by batch).
    """
    base = models_root(root)
    if not base.is_dir():
        return []
    _reap()
    models, seen = [], set()
    for path in sorted(base.iterdir()):
        if path.is_symlink() or not path.is_dir() or not NAME_PATTERN.fullmatch(path.name) or ".." in path.name:
            continue
        signature = _listing_signature(path)
        if not any(signature[_LISTED_FILES.index(m)] for m in (storage.CONFIG, storage.GENERATOR, storage.STATUS,
                                                                storage.LOCK)):
            continue
        seen.add(path)
        live = signature[_LISTED_FILES.index(storage.LOCK)] is not None and storage.lock_holder(path) is not None
        with _listing_lock:
            cached = None if live else _listing.get(path)
        if cached is not None and cached[0] == signature:
            models.append(dict(cached[1]))
            continue
        entry = _list_entry(path)
        if not entry["live"] and _listing_signature(path) == signature:  # unchanged while read
            with _listing_lock:
                _listing[path] = (signature, dict(entry))
        models.append(entry)
    with _listing_lock:
        for path in [p for p in _listing if p.parent == base and p not in seen]:
            del _listing[path]
    return models


def _list_entry(path: Path) -> dict:
    """list_models' entry for one model directory, read from its files."""
    entry = {"name": path.name, "path": path, "preset": None, "batches": 0, "status": "untrained",
             "live": False, "error": None, "problem": None}
    try:
        cfg = read_config(path)
        if cfg is None:
            raise ValueError(f"{path / storage.CONFIG} is missing")
        entry["preset"] = cfg.get("preset") if isinstance(cfg.get("preset"), str) else None
    except ValueError as exc:
        entry["error"] = str(exc)
    status = read_status(path)
    if status is not None:
        state = status.get("state", "unknown")
        entry["status"] = state if isinstance(state, str) else "unknown"
        entry["live"] = bool(status.get("live"))
    elif entry["error"] is None and (path / storage.GENERATOR).exists():
        entry["status"] = "ready"
    problems = [] if entry["live"] else model_problems(path)
    if problems:
        entry["problem"] = "; ".join(problems)
        if entry["error"] is None and _unusable(problems):
            entry["error"] = problems[0]
    if entry["error"] is not None and not entry["live"]:
        entry["status"] = "damaged"
    entry["batches"] = _batches_trained(path, status)
    return entry


def _unusable(problems: list[str]) -> bool:
    """A problem in the networks, their state or config stops a model from loading; a bad line
    in history.jsonl or runs.jsonl only loses that line, a bad status.json only the status."""
    return any(not p.startswith((storage.HISTORY, storage.RUNS, storage.STATUS)) for p in problems)


def tail_log(model_dir, lines: int = 20) -> str:
    """The last `lines` lines of the model's train.log ("" if none)."""
    try:
        with open(Path(model_dir) / storage.LOG, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_RUN_STARTED = re.compile(r"^run-\d+: training ", re.M)


def _error_line(block: str) -> str | None:
    """The error a `python -m optimus train` process printed last: the CLI's one-line error
    ("optimus train: ...") or a traceback's final line; None if it printed neither."""
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("optimus train:", "optimus:")):
            return line
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1]
    return None


def last_failure(model_dir) -> dict | None:
    """Why the model's latest training launch failed, or None (running, or ended well).

    Read from the run's files, so it holds at any moment (not only during start_training's
    start-up wait) and in any session:
    - the trainer stopped before starting its run (a setting it refused, a model directory it
      could not load): the last launch in train.log (from its "$ command" line) never logged
      "run-NNN: training" and ends with the CLI's one-line error or a traceback;
    - the run itself failed: status.json says "failed" (or, when status.json is missing or
      damaged, the run's end event in runs.jsonl does), with the reason;
    - the trainer died without a final status (killed, crashed): "interrupted", with the last
      error line of train.log when there is one.
    Returns {"run", "state", "message", "log"} (log: the launch's last lines of train.log).
    """
    model_dir = Path(model_dir)
    status = read_status(model_dir)
    child = live_child(model_dir)
    if (status or {}).get("live") or child is not None:
        return None
    tail = tail_log(model_dir, lines=200)
    start = tail.rfind("\n$ ")
    block = tail[start + 1:] if start >= 0 else (tail if tail.startswith("$ ") else "")
    log = "\n".join(block.splitlines()[-20:]) if block else tail_log(model_dir)
    if block and not _RUN_STARTED.search(block):
        error = _error_line(block)
        if error is not None:
            return {"run": None, "state": "failed", "message": f"Training did not start: {error}", "log": log}
    if status is None or status.get("state") == "unknown":  # no status.json, or a damaged one
        events = [e for e in storage.read_jsonl(model_dir / storage.RUNS) if isinstance(e, dict)]
        starts = [e for e in events if e.get("event") == "start"]
        if not starts:
            return None
        run = starts[-1].get("run")
        ends = [e for e in events if e.get("event") == "end" and e.get("run") == run]
        status = ({"run": run, "state": ends[-1].get("status"), "message": ends[-1].get("message")} if ends
                  else {"run": run, "state": "interrupted", "message": ""})
    state = status.get("state")
    if state not in ("failed", "interrupted"):
        return None
    message = str(status.get("message") or "").strip()
    if state == "interrupted":
        error = _error_line(block or tail)
        message = "the training process ended without a final status" + (f": {error}" if error else "")
    return {"run": status.get("run"), "state": state,
            "message": f"{status.get('run') or 'The run'} {state}: {message or 'no reason recorded'}", "log": log}


# --- starting and stopping --------------------------------------------------------------


def train_command(model_dir, config_file, from_dir=None, device: str | None = None) -> list[str]:
    """The command line that trains `model_dir` with the config written to `config_file`."""
    command = [sys.executable, "-m", "optimus", "train", "--model-dir", str(model_dir),
               "--config", str(config_file)]
    if from_dir is not None:
        command += ["--from", str(Path(from_dir).absolute())]
    if device is not None:
        command += ["--device", str(device)]
    return command


def write_run_config(model_dir: Path, cfg: config_mod.TrainConfig) -> Path:
    """Write `cfg` for one launch to a file of its own in `model_dir` and return its path.

    A fresh name per launch (mkstemp), written in full before the child is spawned: a second
    launch racing for the same model (another visitor, another app) writes its own file, so
    neither child can read the other's settings. `forget_run_config` removes it once read.
    """
    fd, tmp = tempfile.mkstemp(prefix=RUN_CONFIG_PREFIX, suffix=".json", dir=model_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write((cfg.to_json() + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())
    return Path(tmp)


def _remove_once_read(child: subprocess.Popen, model_dir: Path, config_file: Path, launch: int | None = None) -> None:
    """Remove a launch's config file once the trainer has read it: it reads `--config` before it
    takes the run lock, so the file goes when the child holds the lock or has exited. Then
    release the launch lock (storage.launch_lock), if given."""
    try:
        while child.poll() is None:
            holder = storage.lock_holder(model_dir)
            if (holder is not None and holder.get("pid") == child.pid) or _run_ended(model_dir, child.pid):
                break  # (a run that ended had held the lock: a short one may end between two looks)
            time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            config_file.unlink()
    finally:
        if launch is not None:
            os.close(launch)


def _reap() -> None:
    """Collect the exit status of children that have finished (no zombies left behind)."""
    with _spawn_lock:
        for key, child in list(_spawned.items()):
            if child.poll() is not None:
                _spawned.pop(key, None)


def _run_ended(model_dir: Path, pid: int) -> bool:
    """The trainer `pid` has written its run's final status (done, stopped or failed)."""
    try:
        status = storage.read_json(model_dir / storage.STATUS)
    except (OSError, ValueError):
        return False
    return isinstance(status, dict) and status.get("pid") == pid and status.get("state") in ("done", "stopped", "failed")


def live_child(model_dir) -> subprocess.Popen | None:
    """The trainer this process spawned for `model_dir`, while it runs (None once it exits)."""
    key = str(Path(model_dir).absolute().resolve())
    child = _spawned.get(key)
    if child is not None and child.poll() is not None:  # exited: reap it
        _spawned.pop(key, None)
        child = None
    return child


def forget_children(kill: bool = True) -> None:
    """Kill (by default) and forget every trainer this process spawned, and its spare: for tests'
    clean-up."""
    global _spare
    with _spawn_lock:
        if _spare is not None:
            if kill and _spare.poll() is None:
                _spare.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                _spare.communicate(timeout=30)  # (closes its pipes)
            _spare = None
        for key, child in list(_spawned.items()):
            if kill and child.poll() is None:
                child.kill()
                child.wait()
            _spawned.pop(key, None)


def _trainer_env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def spare_wanted() -> bool:
    return os.environ.get(SPARE_ENV, "1") != "0"


def ensure_spare() -> int | None:
    """Start a warm trainer if this process has none waiting; return its pid (None: turned off).

    Call it where runs may be started soon (the Train page, for a session that may start one):
    it costs a process that imports TensorFlow in the background (about 3 s of CPU) and then
    holds about 570 MB of memory while it waits (`python -m optimus bench start`)."""
    if not spare_wanted():
        return None
    with _spawn_lock:
        return _ensure_spare_locked()


def _ensure_spare_locked() -> int:
    global _spare, _spare_env
    if _spare is None or _spare.poll() is not None:
        if _spare is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                _spare.communicate(timeout=1)  # reap it, close its pipes
        _spare_env = _trainer_env()
        _spare = subprocess.Popen(
            [sys.executable, "-m", "optimus.training.spare"], cwd=REPO_ROOT, env=_spare_env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    return _spare.pid


def _hand_to_spare(command: list[str], model_dir: Path) -> subprocess.Popen | None:
    """Give `command` (train_command's) to the waiting spare; it becomes the trainer. None if
    there is no usable spare (none, another environment, or it exited without taking the job):
    the caller spawns the trainer cold. Called with _spawn_lock held; the spare is used once."""
    global _spare
    if command[:3] != [sys.executable, "-m", "optimus"]:  # it runs `python -m optimus` commands only
        return None
    spare, env = _spare, _spare_env
    _spare = None
    if spare is None or spare.poll() is not None or env != _trainer_env():
        if spare is not None and spare.poll() is None:
            spare.kill()
        if spare is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spare.communicate(timeout=5)
        return None
    job = json.dumps({"argv": command[3:], "log": str(model_dir / storage.LOG)}) + "\n"
    try:
        spare.stdin.write(job.encode())
        spare.stdin.close()
        readable, _, _ = select.select([spare.stdout], [], [], SPARE_TAKE_SECONDS)
        answer = spare.stdout.readline() if readable else b""
    except OSError:  # it exited (a broken pipe)
        answer = b""
    spare.stdout.close()
    if answer != b"ok\n":
        if spare.poll() is None:
            spare.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            spare.wait(timeout=5)
        return None
    return spare


def _replace_spare(child: subprocess.Popen, model_dir: Path) -> None:
    """A new spare once the run that took the last one has shown its first batch (or ended): its
    import would otherwise share the two cores with that run's start."""
    deadline = time.monotonic() + STARTING_LIMIT_SECONDS
    while child.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            status = storage.read_json(model_dir / storage.STATUS)
            if isinstance(status, dict) and status.get("pid") == child.pid and int(status.get("batches_done") or 0) >= 1:
                break
        time.sleep(0.2)
    ensure_spare()


def start_training(model_dir, *, from_dir=None, preset: str | None = None, overrides: dict | None = None,
                   device: str | None = None) -> int:
    """Spawn `python -m optimus train --config FILE` for `model_dir` and return its pid.

    The config is decided here, by `checkpoint.run_config` (the rule the CLI applies), and
    written for this launch only (`write_run_config`). Raises `storage.LockedError` if a run is
    live in `model_dir` (or was just started from this app), ValueError for a bad setting,
    RuntimeError if the trainer exits at once (with the end of train.log). Waits up to
    START_WAIT_SECONDS for the trainer to take the lock.
    """
    model_dir = Path(model_dir).absolute()
    if from_dir is not None and Path(from_dir).absolute() == model_dir:
        from_dir = None
    key = str(model_dir.resolve())
    checkpoint.refuse_existing_target(model_dir, from_dir)
    with _spawn_lock, storage.launching(model_dir) as launch:  # held until the trainer holds the run lock
        holder = storage.lock_holder(model_dir)
        if holder is not None:
            raise storage.LockedError(
                f"A training run is already in progress in {model_dir.name} (process {holder.get('pid')}). "
                "Wait for it to finish or stop it first."
                if holder.get("pid") is not None and holder.get("host") in (None, socket.gethostname())
                else storage.describe_holder(model_dir, holder)
            )
        child = _spawned.get(key)
        if child is not None and child.poll() is None and _run_ended(model_dir, child.pid):
            # Its run has ended (final status written, lock released) and the process is only
            # exiting: Continue is offered at that moment, so wait for the exit rather than
            # refuse it as "just started".
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=EXIT_WAIT_SECONDS)
        if child is not None and child.poll() is None:
            raise storage.LockedError(
                f"A training run for {model_dir.name} was just started (process {child.pid}). "
                "Wait for it to finish or stop it first."
            )
        # After the lock checks: a first run in progress leaves a partial directory, which
        # run_config would refuse with a message about files instead of "in progress".
        cfg = checkpoint.run_config(model_dir, from_dir, preset, overrides)
        if model_dir.is_symlink():
            raise ValueError(f"{model_dir} is a symbolic link; train into a directory of the models folder itself")
        model_dir.mkdir(parents=True, exist_ok=True)
        storage.clear_stop(model_dir)
        config_file = write_run_config(model_dir, cfg)
        command = train_command(model_dir, config_file, from_dir, device)
        try:
            with os.fdopen(storage.open_nofollow(model_dir / storage.LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT),
                           "ab") as log:
                log.write(f"\n$ {' '.join(command)}\n".encode())
                log.flush()
                warm = _hand_to_spare(command, model_dir)
                child = warm or subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=_trainer_env(),
                )
        except BaseException:
            config_file.unlink(missing_ok=True)
            raise
        _spawned[key] = child
    threading.Thread(target=_remove_once_read, args=(child, model_dir, config_file, launch), daemon=True).start()
    if warm is not None and spare_wanted():
        threading.Thread(target=_replace_spare, args=(child, model_dir), daemon=True).start()
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        holder = storage.lock_holder(model_dir)
        if holder is not None and holder.get("pid") == child.pid:
            break
        time.sleep(0.05)
    code = child.poll()
    if code not in (None, 0):
        raise RuntimeError(f"training exited at once with code {code}:\n{tail_log(model_dir)}")
    return child.pid


def stop_process_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """End a child started with start_new_session=True: SIGTERM its group, SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_training(model_dir) -> bool:
    """Ask the run in `model_dir` to stop after its current step; True if a run was live."""
    model_dir = Path(model_dir)
    live = storage.lock_holder(model_dir) is not None or live_child(model_dir) is not None
    if live:
        storage.request_stop(model_dir)
    return live
