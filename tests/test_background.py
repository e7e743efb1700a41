"""optimus.experiments.background: background benchmark records, live or dead, damaged or good."""

from __future__ import annotations

import os
import signal
import time

import pytest

from optimus.experiments import background
from optimus.store import storage
from tests.helpers import RECORD_DAMAGES, _damaged_record, _record


@pytest.mark.parametrize("pid", [0, -1, 1, "me", "parent"])
def test_a_record_with_a_dead_or_reused_pid_is_not_live(root, pid):
    pid = {"me": os.getpid(), "parent": os.getppid()}.get(pid, pid)
    _record(root, "r1", pid=pid)
    record = background.read("r1", root)
    assert not record["live"] and record["state"] in ("interrupted", "damaged"), record
    assert not [r for r in background.list_runs(root) if r["live"]]
    assert background.stop("r1", root) is False
    assert not (background.results_root(root) / "r1.stop").exists()
    background.delete("r1", root)  # not "stop it first"
    assert not (background.results_root(root) / "r1.json").exists()


@pytest.mark.slow
def test_a_real_benchmark_is_live_until_killed_then_deletable(root):
    run_id = background.start({"family": "factor", "tasks": ["3 5 7 11 13"], "methods": ["none", "ewc"],
                               "steps_per_task": 100, "batch_size": 128}, seeds=range(3), root=root)
    record = background.read(run_id, root)
    assert record["live"] and record["state"] in background.LIVE
    with pytest.raises(storage.LockedError, match="already running"):
        background.start({"family": "factor", "methods": ["none"], "steps_per_task": 5}, seeds=[0], root=root)
    with pytest.raises(ValueError, match="stop it first"):
        background.delete(run_id, root)
    child = background._spawned[run_id]
    os.killpg(child.pid, signal.SIGKILL)  # a crash, an OOM kill, a reboot
    child.wait()
    deadline = time.time() + 30
    while background.read(run_id, root)["live"] and time.time() < deadline:
        time.sleep(0.1)
    record = background.read(run_id, root)
    assert not record["live"] and record["state"] == "interrupted"
    background.delete(run_id, root)
    assert not list(background.results_root(root).glob(f"{run_id}.*"))


@pytest.mark.parametrize("name", sorted(RECORD_DAMAGES))
def test_a_damaged_record_is_listed_as_damaged_naming_its_file(root, name):
    _record(root, "good", state="stopped", message="stopped at 50%")
    _damaged_record(root, "r1", RECORD_DAMAGES[name])
    records = {r["id"]: r for r in background.list_runs(root)}
    assert records["good"]["state"] == "stopped"
    assert records["r1"]["state"] == "damaged" and "r1.json" in records["r1"]["message"], records["r1"]
    background.delete("r1", root)
