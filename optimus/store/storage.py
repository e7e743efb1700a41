"""Files in a model directory: atomic writes, the run lock, and the stop request.

A model directory always holds one complete, loadable version: every file is written to a
temporary file in the same directory, flushed, fsynced, then renamed over the old one
(rename is atomic on POSIX), so a run killed at any moment leaves the last good files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import stat
import sys
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


def remove_temp_files(model_dir, names) -> list[Path]:
    """Delete the temporary files `atomic_path` left for `names` (a run killed mid-write leaves
    `.generator.keras.new.*.keras` and the like). Only the lock holder may call this: nobody
    else writes those files. Returns what was removed."""
    removed = []
    for name in names:
        for tmp in Path(model_dir).glob(f".{name}.*"):
            if tmp.is_file() and not tmp.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def write_json(path, obj) -> None:
    write_bytes(path, json_bytes(obj))


def check_user_file(path) -> int | None:
    """The rule for every file the command line writes on request (`sample --output`,
    `evaluate --save`), checked before any work and again by `write_user_file`:

    - a new name or a regular file: written atomically (`write_bytes`: a temporary file renamed
      over it), so an interrupted write leaves the old file whole;
    - a character device or a FIFO (a pipe): written into directly, never replaced;
    - a symbolic link, a directory or any other kind of file: refused (OSError, one line).
    Returns the file's st_mode, or None if there is none."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise OSError(f"{path} is a symbolic link; refusing to write through it (nothing was written)")
    if stat.S_ISDIR(mode):
        raise OSError(f"{path} is a directory; name a file to write (nothing was written)")
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise OSError(f"{path} is neither a regular file, a character device nor a pipe; "
                      "refusing to write to it (nothing was written)")
    return mode


def write_user_file(path, data: bytes) -> None:
    """Write `data` to a file the user named, by `check_user_file`'s rule. Raises OSError with
    one line naming `path` (a full device: "No space left on device")."""
    path = Path(path)
    mode = check_user_file(path)
    try:
        if mode is None or stat.S_ISREG(mode):
            write_bytes(path, data)
            return
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))  # no O_CREAT: it is there
        try:
            kind = os.fstat(fd).st_mode
            if not (stat.S_ISCHR(kind) or stat.S_ISFIFO(kind)):  # replaced since the lstat
                raise OSError(errno.EINVAL, "it was replaced while being opened (nothing was written)")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None


# --- reading JSON from disk ----------------------------------------------------------------
#
# Every JSON file the app and the CLI read comes through `loads_json`: a file anyone can edit
# must never raise anything but ValueError (json.loads raises RecursionError for "[" * 30000,
# and Python's own "Exceeds the limit (4300 digits)" for a 5,000-digit number). Nothing we
# write nests deeper than a benchmark result (5 levels), so MAX_JSON_DEPTH is generous.

MAX_JSON_DEPTH = 64


class HugeNumber:
    """A JSON number too long for int() (`loads_json(..., huge=HugeNumber)`): kept as a marker,
    so a reader that checks field types can name the field that holds it."""

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a number of {self.digits:,} digits>"


def huge_number(value) -> HugeNumber | None:
    """The first HugeNumber inside a JSON value (read with huge=HugeNumber), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, HugeNumber):
            return item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _int_limit() -> int:
    get = getattr(sys, "get_int_max_str_digits", None)
    return (get() or 0) if get is not None else 0


def _check_depth(value, limit: int) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise ValueError(f"it is nested more than {limit} levels deep")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def loads_json(data: bytes | str, *, huge=None, max_depth: int = MAX_JSON_DEPTH):
    """The JSON value in `data`; ValueError (json.JSONDecodeError where the text is not JSON)
    with a one-line reason for anything else wrong with it: not UTF-8, nested more than
    `max_depth` levels, a number too long to convert (unless `huge`, then `huge(digits)` stands
    for it). Never RecursionError or OverflowError."""
    limit = _int_limit()

    def parse_int(text: str):
        digits = len(text.lstrip("-"))
        if limit and digits > limit:
            if huge is not None:
                return huge(digits)
            raise ValueError(f"it holds a number of {digits:,} digits (at most {limit:,} convert)")
        return int(text)

    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        # (a Python parse_int costs a call per number: only where a huge one is to be kept)
        value = json.loads(text, parse_int=parse_int) if huge is not None else json.loads(text)
    except RecursionError:
        raise ValueError(f"it is nested more than {max_depth} levels deep") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError:
        raise
    except (ValueError, OverflowError, TypeError, MemoryError) as exc:
        digits = re.search(r"value has (\d+) digits", str(exc))  # Python's int() limit, reworded
        if digits:
            raise ValueError(f"it holds a number of {int(digits.group(1)):,} digits (at most {limit:,} "
                             "convert)") from None
        raise ValueError(str(exc)[:200] or type(exc).__name__) from None
    if text.count("[") + text.count("{") > max_depth:  # else it cannot nest that deep
        _check_depth(value, max_depth)
    return value


def read_json(path, max_bytes: int | None = None, huge=None):
    """The JSON value in file `path`: FileNotFoundError if there is none, OSError if it cannot
    be read, ValueError (see loads_json) if it is damaged. The one way a JSON file is read."""
    with open(path, "rb") as fh:
        data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"it is larger than {max_bytes:,} bytes")
    return loads_json(data, huge=huge)


def open_nofollow(path, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses a symlink, at `path` or as its directory: a model directory's files
    are written and deleted only where they are, never through a link placed there."""
    path = Path(path)
    if path.parent.is_symlink():
        raise OSError(f"{path.parent} is a symbolic link; refusing to write through it")
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(f"{path} is a symbolic link; refusing to write through it") from None
        raise


def append_jsonl(path, record: dict) -> None:
    """Append one line and fsync. A crash mid-write can leave a torn last line without its
    newline; the next append starts on a fresh line so only the fragment is lost (readers skip
    it), never the record that follows. Earlier lines are never rewritten."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = open_nofollow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)  # read: the last byte
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path, problems: list | None = None) -> list[dict]:
    """The JSON-object lines of a JSONL file ([] if it does not exist).

    Lines that are not JSON (a torn fragment from a killed run) are skipped silently; lines
    that are not UTF-8 or hold JSON that is not an object are damage: skipped, and described
    in `problems` (naming the file and line) when a list is given.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return []
    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            if problems is not None:
                problems.append(f"{path.name} line {number} is not UTF-8 text")
            continue
        try:
            value = loads_json(raw)
        except json.JSONDecodeError:
            continue  # a torn line from a killed run
        except ValueError as exc:  # valid JSON we refuse to hold (nested too deep, a huge number)
            if problems is not None:
                problems.append(f"{path.name} line {number} is damaged ({exc})")
            continue
        if isinstance(value, dict):
            records.append(value)
        elif problems is not None:
            problems.append(f"{path.name} line {number} holds a JSON {type(value).__name__}, not an object")
    return records


# --- the run lock -------------------------------------------------------------------------
#
# An exclusive `flock` on train.lock, held for the run's life. The kernel releases it when the
# process dies (SIGKILL, OOM), so a lock file nobody holds is simply free: no stale-pid rule,
# and no window where two starters both decide a lock is stale (the O_EXCL + pid scheme gave
# two holders in 56 of 60 trials of simultaneous starters). The JSON {pid, host, started}
# inside is for display only.


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


def _lock_info(fd: int) -> dict:
    """The holder's {pid, host, started} from an open lock file; fields it lacks or garbles
    are None (a holder may be between taking the lock and writing them)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = loads_json(os.read(fd, 4096))
    except (OSError, ValueError):
        info = None
    info = info if isinstance(info, dict) else {}
    pid, host, started = info.get("pid"), info.get("host"), info.get("started")
    return {
        "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        "host": host if isinstance(host, str) else None,
        "started": started if isinstance(started, (int, float)) and not isinstance(started, bool) else None,
    }


def lock_holder(model_dir) -> dict | None:
    """Who holds the run lock ({pid, host, started}; a field is None if the holder has not
    written it yet or wrote garbage), or None if nobody does."""
    path = Path(model_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError:  # a symlink, or unreadable: not a lock anybody can hold through this path
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe_holder(model_dir, holder: dict) -> str:
    """A sentence saying who holds the lock, and how to clear it if that run is gone."""
    path = Path(model_dir) / LOCK
    pid, host = holder.get("pid"), holder.get("host")
    if pid is None:
        return (f"{path} is held by a process that has not written a valid pid; if no training is "
                f"running on this directory, stop that process or delete {path}")
    if host is not None and host != socket.gethostname():
        return (f"{model_dir} is being trained by process {pid} on host {host}; stop it there, or if "
                f"that run is gone, delete {path}")
    return f"{model_dir} is already being trained by process {pid}; stop that run first or choose another model directory"


# Retries when taking the lock: `lock_holder` probes with a shared lock for a moment, which a
# starter must not mistake for a run.
_LOCK_ATTEMPTS = 20


@contextlib.contextmanager
def run_lock(model_dir):
    """Hold the model directory's training lock (an exclusive flock) for the block."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / LOCK
    fd = None
    for _ in range(_LOCK_ATTEMPTS):
        fd = open_nofollow(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _lock_info(fd)
            os.close(fd)
            fd = None
            other_host = info["host"] is not None and info["host"] != socket.gethostname()
            if info["pid"] is not None and (other_host or pid_alive(info["pid"])):
                raise LockedError(describe_holder(model_dir, info)) from None
            time.sleep(0.05)  # a reader's probe, or a holder still writing its pid
            continue
        # The previous holder unlinks the file as it releases: a lock on that unlinked inode
        # is no lock; take the one the path names now.
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        fd = None
    if fd is None:
        holder = lock_holder(model_dir) or {"pid": None}
        raise LockedError(describe_holder(model_dir, holder))
    try:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it (see the inode check above)
        os.close(fd)


def launch_lock(model_dir, wait: float = 1.0) -> int:
    """Take the launch lock of `model_dir` (an exclusive flock on `<models root>/.NAME.launch`)
    and return its descriptor; close it to release. LockedError if another process holds it.

    A trainer takes the run lock only once TensorFlow is loaded, seconds after its launch. Two
    app servers on one models folder (behind a load balancer) each saw no lock in that gap and
    each started a trainer for the same new model: the launcher holds this lock from its checks
    until its trainer holds the run lock (or has exited), so the second launcher is refused.
    flock must work across the servers: one machine, or a file system whose locks are shared.
    """
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = open_nofollow(model_dir.parent / f".{model_dir.name}.launch", os.O_RDWR | os.O_CREAT)
    deadline = time.monotonic() + wait  # a launcher lets go within moments of its trainer's start
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            holder = lock_holder(model_dir)  # the trainer took the run lock; its launcher lets go next
            if (holder is not None and holder.get("pid") is not None) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    os.close(fd)
    if holder is not None and holder.get("pid") is not None:
        raise LockedError(f"A training run is already in progress in {model_dir.name} (process "
                          f"{holder['pid']}). Wait for it to finish or stop it first.")
    raise LockedError(f"A training run for {model_dir.name} was just started (from this app, or another app "
                      "server on this models folder): wait for it or stop it first.")


@contextlib.contextmanager
def launching(model_dir):
    """launch_lock for a block that hands the lock on: yields its descriptor, which the block's
    owner closes once the trainer holds the run lock; closed here if the block raises."""
    fd = launch_lock(model_dir)
    try:
        yield fd
    except BaseException:
        os.close(fd)
        raise


def request_stop(model_dir) -> None:
    """Ask a running training to finish its current step, save, and exit."""
    fd = open_nofollow(Path(model_dir, STOP), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, str(time.time()).encode())
    finally:
        os.close(fd)


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
