"""Continual-learning benchmarks run in the background and seen from disk, as training runs are.

`start` spawns `python -m optimus.experiments.background RESULTS_DIR ID` as a detached child (its own
session, output in `ID.log`) holding an exclusive `flock` on `ID.lock` from birth (the launcher takes
it and hands the descriptor over); the child runs `forgetting.run_seeds` and keeps one JSON record,
`ID.json`, rewritten atomically (`optimus.store.storage`) after every task: state (starting, running,
done, stopped, failed), progress, message, settings and, once done, the result. So a refresh,
a second visitor or a restarted app sees the same runs and results, and a finished result opens
by reading one file. Stop writes `ID.stop`; the child stops after its current task.

A record is live while its lock is held, never because its pid answers: a pid of 0 or -1, or a
pid the system has since given to another process (a reboot, a reused pid), made a dead record
"running" forever (issue 21). The kernel drops the lock when the child dies, however it dies.
Every record read from disk is type-checked field by field, its result down to the numbers the
page draws: a damaged record is listed as damaged, naming its file, and nothing else fails.

The records live in `<models root>/_continual/` (`results_root`). One benchmark at a time: it
takes both cores of a small machine. No Streamlit and no TensorFlow here.

Shipped results: finished records committed with the code in `models/continual/` (`SHIPPED`),
written by `python -m optimus forgetting --seeds N --save` (`ship`), so that a fresh clone has a
benchmark to show at once. They are listed with the others (`shipped: True`) and read-only:
`stop` and `delete` refuse them.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from optimus.experiments import forgetting
from optimus.store import runs, storage

FOLDER = "_continual"
SHIPPED = runs.REPO_ROOT / "models" / "continual"  # tracked (models/_*/ is ignored by git)
STATES = ("starting", "running", "done", "stopped", "failed", "interrupted", "damaged")
LIVE = ("starting", "running")
START_WAIT_SECONDS = 2.0
_start_lock = threading.Lock()
_spawned: dict[str, subprocess.Popen] = {}  # children of this process, reaped once they exit


class Stopped(Exception):
    """The benchmark was asked to stop (its ID.stop file exists)."""


def results_root(root=None) -> Path:
    """Where benchmark records live: `_continual/` inside the models root."""
    return runs.models_root(root) / FOLDER


def _record_path(results: Path, run_id: str) -> Path:
    if not runs.NAME_PATTERN.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not a benchmark id")
    return results / f"{run_id}.json"


def _lock_path(results: Path, run_id: str) -> Path:
    return results / f"{run_id}.lock"


def _held(path: Path) -> bool:
    """Some process holds the exclusive flock on `path` (a benchmark child that is alive)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # none (never started, or deleted), a symlink, unreadable: no live child
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_shipped(run_id: str, shipped=None) -> dict | None:
    """A shipped (read-only, finished) record, or None."""
    path = _record_path(Path(shipped) if shipped is not None else SHIPPED, run_id)
    try:
        record = check_record(storage.read_json(path, max_bytes=MAX_RECORD_BYTES))
    except (OSError, ValueError):
        return None
    if record.get("state") != "done" or not record.get("result"):
        return None
    return {**record, "live": False, "shipped": True}


def list_shipped(shipped=None) -> list[dict]:
    """Every shipped record, newest first."""
    folder = Path(shipped) if shipped is not None else SHIPPED
    if not folder.is_dir():
        return []
    records = [read_shipped(p.stem, folder) for p in folder.glob("*.json") if runs.NAME_PATTERN.fullmatch(p.stem)]
    return sorted((r for r in records if r is not None), key=lambda r: (r.get("started") or 0, r["id"]), reverse=True)


def read(run_id: str, root=None) -> dict | None:
    """The record of benchmark `run_id` (None if there is none), with `live` added (its child
    holds ID.lock); a record that says starting/running whose child is gone reads as
    "interrupted", a damaged one as "damaged" with a message naming the file. A shipped result
    is found when no record of the models root has its id."""
    _reap()
    folder = results_root(root)
    path = _record_path(folder, run_id)
    try:
        record = check_record(storage.read_json(path, max_bytes=MAX_RECORD_BYTES))
    except FileNotFoundError:
        return read_shipped(run_id)
    except (OSError, ValueError) as exc:
        record = {"id": run_id, "state": "damaged", "pid": None, "progress": 0.0,
                  "message": f"{path.name} is damaged ({str(exc)[:200]})", "settings": {}, "seeds": [],
                  "started": None, "result": None}
        with contextlib.suppress(OSError):
            record["started"] = path.stat().st_mtime
    record["id"] = run_id
    record["live"] = _held(_lock_path(folder, run_id))
    if record["state"] in LIVE and not record["live"]:
        record["state"] = "interrupted"
        record["message"] = "the benchmark process ended without a final record (killed, or the machine restarted)"
    return record


# --- what a record may hold ------------------------------------------------------------------

MAX_RECORD_BYTES = 16 * 2**20  # a 10-seed, 20-task result is about 0.3 MB
_MAX_METHODS = 32


class _Damaged(ValueError):
    pass


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _Damaged(f"{where} is not {what}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _check_strings(value, where: str, most: int) -> None:
    _need(isinstance(value, list) and len(value) <= most and all(isinstance(v, str) for v in value),
          where, f"a list of at most {most} strings")


def _check_run(run, where: str, full: bool) -> None:
    """One run's result (forgetting.run_benchmark), or the seeds' mean when `full`: the fields
    the page and charts_continual read."""
    _need(isinstance(run, dict), where, "an object")
    config = run.get("config", {})
    _need(isinstance(config, dict), f"{where}.config", "an object")
    if "methods" in config:
        _check_strings(config["methods"], f"{where}.config.methods", _MAX_METHODS)
    methods = run.get("methods")
    _need(isinstance(methods, dict) and 0 < len(methods) <= _MAX_METHODS, f"{where}.methods",
          f"an object of 1 to {_MAX_METHODS} methods")
    tasks = run.get("tasks") if full else None
    if full:
        for key in ("family", "encoding"):
            _need(isinstance(config.get(key), str), f"{where}.config.{key}", "a string")
        for key in ("steps_per_task", "batch_size"):
            _need(_is_whole(config.get(key), 0, 10**9), f"{where}.config.{key}", "a whole number")
        _check_strings(tasks, f"{where}.tasks", forgetting.MAX_TASKS)
        _need(bool(tasks), f"{where}.tasks", "a list of tasks")
        seconds = run.get("seconds")
        _need(isinstance(seconds, dict) and _is_number(seconds.get("total")), f"{where}.seconds.total", "a number")
    for method, r in methods.items():
        at = f"{where}.methods.{method}"
        _need(isinstance(r, dict), at, "an object")
        for key in ("acc", "bwt", *(("forgetting", "seconds") if full else ())):
            _need(_is_number(r.get(key)), f"{at}.{key}", "a finite number")
        if "lambda" in r:
            _need(_is_number(r["lambda"]), f"{at}.lambda", "a finite number")
        if full:
            R = r.get("R")
            _need(isinstance(R, list) and 0 < len(R) <= len(tasks) and all(
                isinstance(row, list) and len(row) <= len(tasks) and all(_is_number(v) for v in row) for row in R),
                f"{at}.R", f"a matrix of numbers, at most {len(tasks)} by {len(tasks)}")
    tuning = run.get("tuning") or {}
    _need(isinstance(tuning, dict), f"{where}.tuning", "an object")
    for method, t in tuning.items():
        at = f"{where}.tuning.{method}"
        _need(isinstance(t, dict) and _is_number(t.get("best")), f"{at}.best", "a finite number")
        grid, scores = t.get("grid"), t.get("val_acc")
        _need(isinstance(grid, list) and isinstance(scores, list) and len(grid) == len(scores) <= 100
              and all(_is_number(v) for v in grid + scores), f"{at}.grid", "a list of numbers as long as val_acc")


def check_result(saved) -> None:
    """_Damaged (a ValueError) naming the first field of a benchmark result (forgetting.run_seeds)
    that the page cannot draw."""
    _need(isinstance(saved, dict), "result", "an object")
    seeds = saved.get("seeds")
    _need(isinstance(seeds, list) and 0 < len(seeds) <= forgetting.MAX_SEEDS
          and all(_is_whole(s, 0, 2**32) for s in seeds), "result.seeds", f"a list of 1 to {forgetting.MAX_SEEDS} seeds")
    runs_ = saved.get("runs")
    _need(isinstance(runs_, list) and len(runs_) == len(seeds), "result.runs", "one result per seed")
    for k, run in enumerate(runs_):
        _check_run(run, f"result.runs[{k}]", full=False)
    _check_run(saved.get("mean"), "result.mean", full=True)
    spread = saved.get("spread")
    _need(isinstance(spread, dict), "result.spread", "an object")
    for method in saved["mean"]["methods"]:
        for key in ("acc", "bwt"):
            s = (spread.get(method) or {}).get(key) if isinstance(spread.get(method), dict) else None
            _need(isinstance(s, dict) and _is_number(s.get("min")) and _is_number(s.get("max")),
                  f"result.spread.{method}.{key}", "an object with min and max")


def check_record(record) -> dict:
    """`record` if every field the app reads has the right type (see check_result for "result");
    _Damaged (a ValueError) naming the first field that does not."""
    _need(isinstance(record, dict), "the record", "a JSON object")
    _need(record.get("state") in STATES[:-1], "state", f"one of {', '.join(STATES[:-1])}")
    _need(record.get("pid") is None or _is_whole(record["pid"], 1, 2**31 - 1), "pid", "a process id")
    _need(_is_number(record.get("progress", 0.0)) and 0 <= record.get("progress", 0.0) <= 1, "progress",
          "a fraction from 0 to 1")
    _need(isinstance(record.get("message", ""), str), "message", "text")
    # (pandas reads times up to the year 2262: 9.2e9 s)
    for key in ("started", "updated", "ended"):
        _need(record.get(key) is None or (_is_number(record[key]) and 0 <= record[key] < 9e9), key, "a time")
    _need(isinstance(record.get("settings", {}), dict), "settings", "an object")
    settings = record.get("settings", {})
    if "family" in settings:
        _need(isinstance(settings["family"], str), "settings.family", "a string")
    if "methods" in settings:
        _check_strings(settings["methods"], "settings.methods", _MAX_METHODS)
    if "steps_per_task" in settings:
        _need(_is_whole(settings["steps_per_task"], 0, 10**9), "settings.steps_per_task", "a whole number")
    seeds = record.get("seeds", [])
    _need(isinstance(seeds, list) and len(seeds) <= forgetting.MAX_SEEDS and all(_is_whole(s, 0, 2**32) for s in seeds),
          "seeds", f"a list of at most {forgetting.MAX_SEEDS} seeds")
    if record.get("state") == "done":
        check_result(record.get("result"))
    return record


def list_runs(root=None, shipped: bool = True) -> list[dict]:
    """Every benchmark record of the models root, newest first, then the shipped results."""
    folder = results_root(root)
    records = []
    if folder.is_dir():
        # (atomic writes leave hidden temporary files beside the records: skip them)
        records = [read(p.stem, root) for p in folder.glob("*.json") if runs.NAME_PATTERN.fullmatch(p.stem)]
        records = sorted((r for r in records if r is not None), key=lambda r: (r.get("started") or 0, r["id"]),
                         reverse=True)
    if shipped:
        own = {r["id"] for r in records}
        records += [r for r in list_shipped() if r["id"] not in own]
    return records


def _reap() -> None:
    for key, child in list(_spawned.items()):
        if child.poll() is not None:
            _spawned.pop(key, None)


@contextlib.contextmanager
def _starting(folder: Path):
    """An exclusive flock on `_continual/.start.lock` for the check-and-spawn: two app servers
    on one models folder start one benchmark between them, as two sessions of one server do."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = storage.open_nofollow(folder / ".start.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for milliseconds: the spawn, not the run
        yield
    finally:
        os.close(fd)


def start(settings: dict, seeds, root=None) -> str:
    """Check `settings` (run_benchmark's keyword arguments, with `tasks` as text items for
    forgetting.parse_tasks) and spawn the benchmark for `seeds`; returns its id.

    ValueError for a bad setting, storage.LockedError if a benchmark is already running,
    RuntimeError if the child exits at once.
    """
    settings = dict(settings)
    seeds = [int(s) for s in seeds]
    if not 1 <= len(seeds) <= forgetting.MAX_SEEDS or len(set(seeds)) != len(seeds):
        raise ValueError(f"give 1 to {forgetting.MAX_SEEDS} distinct seeds")
    parsed = forgetting.parse_tasks(settings.get("family", "factor"), settings["tasks"]) if settings.get("tasks") else None
    forgetting.check_settings(**{**settings, "tasks": parsed, "seed": seeds[0]})
    folder = results_root(root)
    with _start_lock, _starting(folder):
        # The record is written (state "starting") before the child exists, under the lock, so
        # a double click finds it live.
        busy = [r for r in list_runs(root, shipped=False) if r["live"]]
        if busy:
            raise storage.LockedError(
                f"A benchmark is already running ({busy[0]['id']}): wait for it or stop it first.")
        folder.mkdir(parents=True, exist_ok=True)
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 1000:03d}{int(time.time() * 1000) % 1000:03d}"
        now = time.time()
        # The lock first, then the record: a record in a live state whose lock is free is dead.
        lock = storage.open_nofollow(_lock_path(folder, run_id), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            storage.write_json(_record_path(folder, run_id), {
                "id": run_id, "state": "starting", "pid": None, "progress": 0.0,
                "message": "starting: loading TensorFlow", "settings": settings, "seeds": seeds,
                "started": now, "updated": now, "result": None})
            with open(folder / f"{run_id}.log", "ab") as log:
                # The child inherits the locked descriptor: the lock is held from its first moment
                # and released by the kernel at its last.
                child = subprocess.Popen(
                    [sys.executable, "-m", "optimus.experiments.background", str(folder), run_id, str(lock)],
                    cwd=runs.REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"), pass_fds=(lock,),
                )
        finally:
            os.close(lock)  # this process's share of it (an open description held by the child too)
        _spawned[run_id] = child
        record = storage.read_json(_record_path(folder, run_id))
        if record.get("pid") is None:  # the child may have written its own record already
            record.update(pid=child.pid)
            storage.write_json(_record_path(folder, run_id), record)
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    if child.poll() not in (None, 0):
        raise RuntimeError(f"the benchmark exited at once with code {child.returncode}: see {run_id}.log")
    return run_id


def stop(run_id: str, root=None) -> bool:
    """Ask benchmark `run_id` to stop after its current task; True if it was live."""
    record = read(run_id, root)
    if record is None or not record["live"] or record.get("shipped"):
        return False
    (results_root(root) / f"{run_id}.stop").touch()
    return True


def delete(run_id: str, root=None) -> None:
    """Remove a finished benchmark's record and log (ValueError while it runs)."""
    record = read(run_id, root)
    if record is not None and record.get("shipped"):
        raise ValueError(f"benchmark {run_id} ships with Optimus: it is read-only")
    if record is not None and record["live"]:
        raise ValueError(f"benchmark {run_id} is running: stop it first")
    folder = results_root(root)
    for suffix in (".json", ".log", ".stop", ".lock"):
        (folder / f"{run_id}{suffix}").unlink(missing_ok=True)


def ship(settings: dict, seeds, run_id: str, dest=None, progress=None) -> Path:
    """Run the benchmark here (not in the background) and write its finished record, read-only
    on the Continual learning page, to `dest` (default SHIPPED) as `run_id`.json."""
    settings = dict(settings)
    seeds = [int(s) for s in seeds]
    folder = Path(dest) if dest is not None else SHIPPED
    path = _record_path(folder, run_id)
    parsed = dict(settings)
    if parsed.get("tasks"):
        parsed["tasks"] = forgetting.parse_tasks(parsed.get("family", "factor"), parsed["tasks"])
    started = time.time()
    result = forgetting.run_seeds(seeds, progress=progress, **parsed)
    ended = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    storage.write_json(path, {
        "id": run_id, "state": "done", "pid": None, "progress": 1.0,
        "message": "shipped with Optimus (python -m optimus forgetting --save)", "settings": settings,
        "seeds": seeds, "started": started, "updated": ended, "ended": ended, "result": result})
    return path


def _run(folder: Path, run_id: str, lock_fd: int | None = None) -> int:
    """The child: run the benchmark and keep its record up to date. `lock_fd`: the locked
    ID.lock the launcher handed over, kept open (not inherited further) until exit."""
    if lock_fd is not None:
        os.set_inheritable(lock_fd, False)
    path = _record_path(folder, run_id)
    stop_file = folder / f"{run_id}.stop"
    record = storage.read_json(path)
    record.update(state="running", pid=os.getpid(), message="drawing the tasks' integers", updated=time.time())
    storage.write_json(path, record)

    def progress(fraction: float, message: str) -> None:
        record.update(progress=round(float(fraction), 4), message=message, updated=time.time())
        storage.write_json(path, record)
        if stop_file.exists():
            raise Stopped

    settings = dict(record["settings"])
    if settings.get("tasks"):
        settings["tasks"] = forgetting.parse_tasks(settings.get("family", "factor"), settings["tasks"])
    try:
        result = forgetting.run_seeds(record["seeds"], progress=progress, **settings)
    except Stopped:
        record.update(state="stopped", message=f"stopped at {record['progress']:.0%} ({record['message']})")
        code = 0
    except Exception as exc:  # the record must say why, whatever went wrong
        record.update(state="failed", message=f"{type(exc).__name__}: {exc}")
        code = 1
    else:
        record.update(state="done", progress=1.0, message="done", result=result)
        code = 0
    record["updated"] = record["ended"] = time.time()
    storage.write_json(path, record)
    stop_file.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None))
