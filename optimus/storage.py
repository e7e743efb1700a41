"""Files in a model directory: atomic writes, the run lock, and the stop request.

A model directory always holds one complete, loadable version: every file is written to a
temporary file in the same directory, flushed, fsynced, then renamed over the old one
(rename is atomic on POSIX), so a run killed at any moment leaves the last good files.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

CONFIG = "config.json"
GENERATOR = "generator.keras"
DISCRIMINATOR = "discriminator.keras"
STATE = "state.npz"
HISTORY = "history.jsonl"
RUNS = "runs.jsonl"
STATUS = "status.json"
EVALUATION = "evaluation.json"
LOCK = "train.lock"
STOP = "STOP"
LOG = "train.log"
TENSORBOARD = "logs"


class LockedError(RuntimeError):
    """Another live process is training in this model directory."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`.

    For writers that insist on a file name of their own (Keras' `model.save` wants `.keras`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; models are meant to be shared and shipped
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_json(path, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def append_jsonl(path, record: dict) -> None:
    """Append one line and fsync. A crash mid-write can leave a torn last line, which
    `read_jsonl` skips; earlier lines are never rewritten."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path) -> list[dict]:
    records = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
    return records


# --- the run lock -------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) still answers kill(0).
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            if fh.read().split(") ")[-1].startswith("Z"):
                return False
    return True


def lock_holder(model_dir) -> dict | None:
    """The live lock's contents ({pid, host, started}), or None if free or stale."""
    path = Path(model_dir) / LOCK
    try:
        info = read_json(path)
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    if info.get("host") == socket.gethostname() and not pid_alive(int(info.get("pid", -1))):
        return None
    return info


@contextlib.contextmanager
def run_lock(model_dir):
    """Hold the model directory's training lock for the duration of the block.

    The lock is a file created with O_EXCL holding our pid; a lock left by a dead process
    (SIGKILL, power loss) is detected by its pid and cleared, a live one refuses.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(model_dir)
            if holder is not None:
                raise LockedError(
                    f"{model_dir} is already being trained by process {holder.get('pid')}; "
                    "stop that run first or choose another model directory"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise LockedError(f"could not take the lock {path}")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if read_json(path).get("pid") == os.getpid():
                path.unlink()


def request_stop(model_dir) -> None:
    """Ask a running training to finish its current step, save, and exit."""
    Path(model_dir, STOP).write_text(str(time.time()))


def stop_requested(model_dir) -> bool:
    return Path(model_dir, STOP).exists()


def process_start_time() -> float:
    """When this process started (Unix time); now, where /proc cannot say."""
    try:
        with open("/proc/self/stat", encoding="utf-8") as fh:
            ticks = int(fh.read().rsplit(") ", 1)[1].split()[19])
        with open("/proc/stat", encoding="utf-8") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def clear_stale_stop(model_dir) -> None:
    """Remove a stop request left from before this process started (a killed run's), but keep
    one made while this process was starting up: the app's Stop pressed during start-up."""
    path = Path(model_dir, STOP)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mtime < process_start_time() - 1.0:
            path.unlink()


def clear_stop(model_dir) -> None:
    with contextlib.suppress(FileNotFoundError):
        Path(model_dir, STOP).unlink()
