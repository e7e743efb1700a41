"""Continual-learning benchmarks run in the background and seen from disk, as training runs are.

`start` spawns `python -m optimus.experiments.background RESULTS_DIR ID` as a detached child (its own
session, output in `ID.log`); the child runs `forgetting.run_seeds` and keeps one JSON record,
`ID.json`, rewritten atomically (`optimus.store.storage`) after every task: state (starting, running,
done, stopped, failed), progress, message, settings and, once done, the result. So a refresh,
a second visitor or a restarted app sees the same runs and results, and a finished result opens
by reading one file. Stop writes `ID.stop`; the child stops after its current task.

The records live in `<models root>/_continual/` (`results_root`). One benchmark at a time: it
takes both cores of a small machine. No Streamlit and no TensorFlow here.

Shipped results: finished records committed with the code in `models/continual/` (`SHIPPED`),
written by `python -m optimus forgetting --seeds N --save` (`ship`), so that a fresh clone has a
benchmark to show at once. They are listed with the others (`shipped: True`) and read-only:
`stop` and `delete` refuse them.
"""

from __future__ import annotations

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
STATES = ("starting", "running", "done", "stopped", "failed", "interrupted")
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


def read_shipped(run_id: str, shipped=None) -> dict | None:
    """A shipped (read-only, finished) record, or None."""
    path = _record_path(Path(shipped) if shipped is not None else SHIPPED, run_id)
    try:
        record = storage.read_json(path)
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
    """The record of benchmark `run_id` (None if there is none), with `live` added; a record
    that says starting/running whose process is gone reads as "interrupted". A shipped result
    is found when no record of the models root has its id."""
    _reap()
    path = _record_path(results_root(root), run_id)
    if not path.exists():
        return read_shipped(run_id)
    try:
        record = storage.read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"id": run_id, "state": "failed", "live": False, "progress": 0.0,
                "message": f"{path.name} is damaged ({exc})", "settings": {}, "seeds": []}
    pid = record.get("pid")
    if pid is None:  # written by the launcher a moment before it records the child's pid
        record["live"] = record.get("state") == "starting" and time.time() - (record.get("started") or 0) < 60
    else:
        record["live"] = record.get("state") in LIVE and storage.pid_alive(int(pid))
    if record.get("state") in LIVE and not record["live"]:
        record["state"] = "interrupted"
        record["message"] = "the benchmark process ended without a final record"
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
    with _start_lock:
        # The record is written (state "starting") before the child exists, under the lock, so
        # a double click finds it live.
        busy = [r for r in list_runs(root, shipped=False) if r["live"]]
        if busy:
            raise storage.LockedError(
                f"A benchmark is already running ({busy[0]['id']}): wait for it or stop it first.")
        folder.mkdir(parents=True, exist_ok=True)
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 1000:03d}{int(time.time() * 1000) % 1000:03d}"
        now = time.time()
        storage.write_json(_record_path(folder, run_id), {
            "id": run_id, "state": "starting", "pid": None, "progress": 0.0,
            "message": "starting: loading TensorFlow", "settings": settings, "seeds": seeds,
            "started": now, "updated": now, "result": None})
        with open(folder / f"{run_id}.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "optimus.experiments.background", str(folder), run_id],
                cwd=runs.REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
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
    for suffix in (".json", ".log", ".stop"):
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


def _run(folder: Path, run_id: str) -> int:
    """The child: run the benchmark and keep its record up to date."""
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
    sys.exit(_run(Path(sys.argv[1]), sys.argv[2]))
