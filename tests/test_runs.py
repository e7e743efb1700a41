"""Runs from disk: model name validation, model discovery, and starting/stopping a detached
trainer (a stand-in that takes the real lock, so no TensorFlow is needed)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optimus.config import preset
from optimus.store import checkpoint, runs, storage
from tests.helpers import DAMAGES, DEEP, HUGE, damaged_root


def _make_model(root, name, preset_name="default", batches=0, status=None):
    path = root / name
    path.mkdir(parents=True)
    (path / storage.CONFIG).write_text(json.dumps(dataclasses.asdict(preset(preset_name))))
    for b in range(1, batches + 1):
        storage.append_jsonl(path / storage.HISTORY, {"run": "run-001", "batch": b, "d_loss": 1.0, "g_loss": 1.0,
                                                      "hit_rate": 0.2, "baseline": 0.1, "lift": 2.0,
                                                      "d_balanced_accuracy": 0.8})
    if batches:  # stand-ins for the checkpoint: list_models checks they are archives, never loads them
        for name in (storage.GENERATOR, storage.DISCRIMINATOR):
            zipfile.ZipFile(path / name, "w").close()
        np.savez(path / storage.STATE, batches_done=np.array(batches))
    if status is not None:
        storage.write_json(path / storage.STATUS, status)
    return path


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "seed", "my-model_2.v1", "A", "x" * 64])
def test_valid_names(tmp_path, name):
    assert runs.resolve_model_dir(name, root=tmp_path) == (tmp_path / name).resolve()


@pytest.mark.parametrize("name", [
    "", " ", "..", "../x", "a/../b", "a..b", "/etc", "/tmp/models/x", "a/b", "-x", ".hidden", "_private",
    "x" * 65, "with space", "semi;colon", "new\nline",
])
def test_invalid_names(tmp_path, name):
    with pytest.raises(ValueError):
        runs.resolve_model_dir(name, root=tmp_path)


def test_dotdot_message_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"'\.\.'"):
        runs.resolve_model_dir("a..b", root=tmp_path)


def test_symlink_escaping_root_is_refused(tmp_path):
    root, outside = tmp_path / "models", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        runs.resolve_model_dir("escape", root=root)
    # A link that stays inside the root is fine.
    (root / "real").mkdir()
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert runs.resolve_model_dir("alias", root=root) == (root / "real").resolve()


def test_models_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.MODELS_ENV, str(tmp_path))
    assert runs.models_root() == tmp_path
    monkeypatch.delenv(runs.MODELS_ENV)
    assert runs.models_root() == runs.REPO_ROOT / "models"


# --- discovery --------------------------------------------------------------------------


def test_list_models(tmp_path):
    _make_model(tmp_path, "default", batches=3,
                status={"run": "run-001", "state": "done", "batches_done": 3, "batches_total": 3})
    _make_model(tmp_path, "seed", preset_name="seed")
    damaged = tmp_path / "broken"
    damaged.mkdir()
    (damaged / storage.CONFIG).write_text("{not json")
    (tmp_path / "not-a-model").mkdir()  # no config, weights or status: ignored
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "file.txt").write_text("x")

    models = {m["name"]: m for m in runs.list_models(tmp_path)}
    assert sorted(models) == ["broken", "default", "seed"]
    assert models["default"]["preset"] == "default"
    assert models["default"]["batches"] == 3
    assert models["default"]["status"] == "done"
    assert models["seed"]["preset"] == "seed" and models["seed"]["batches"] == 0
    assert models["broken"]["status"] == "damaged" and "damaged" in models["broken"]["error"]
    assert runs.list_models(tmp_path / "missing") == []


def test_running_status_without_live_lock_reads_interrupted(tmp_path):
    path = _make_model(tmp_path, "m", batches=1,
                       status={"run": "run-001", "state": "running", "pid": 999999, "batches_done": 1,
                               "batches_total": 5})
    status = runs.read_status(path)
    assert status["state"] == "interrupted" and status["live"] is False


def test_a_run_killed_between_its_record_and_its_checkpoint_counts_the_saved_batches(tmp_path):
    """The live view writes a batch's status before its checkpoint: a kill in between must not
    make Continue plan from a batch the model does not hold."""
    path = _make_model(tmp_path, "m", batches=2,
                       status={"run": "run-002", "state": "running", "pid": 999999, "batches_done": 2,
                               "batches_total": 5, "model_batches": 3})
    status = runs.read_status(path)
    assert status["state"] == "interrupted"
    assert (status["batches_done"], status["model_batches"], status["batches_total"]) == (1, 2, 5)


def test_read_history_and_runs(tmp_path):
    path = _make_model(tmp_path, "m", batches=2)
    assert list(runs.read_history(path)["batch"]) == [1, 2]
    assert runs.read_history(tmp_path / "nothing").empty
    storage.append_jsonl(path / storage.RUNS, {"event": "start", "run": "run-001", "parent": None, "time": 1.0,
                                               "batches_planned": 2, "config": {"preset": "default"}})
    storage.append_jsonl(path / storage.RUNS, {"event": "end", "run": "run-001", "status": "done", "time": 2.0,
                                               "batches_done": 2, "message": "",
                                               "final": {"hit_rate": 0.3, "baseline": 0.1, "lift": 3.0,
                                                         "d_balanced_accuracy": 0.9}})
    storage.append_jsonl(path / storage.RUNS, {"event": "start", "run": "run-002", "time": 3.0,
                                               "parent": {"model_dir": "/x/models/default", "run": "run-001"},
                                               "batches_planned": 4, "config": {"preset": "default"}})
    table = runs.read_runs(path)
    assert list(table["run"]) == ["run-002", "run-001"]  # newest first
    newest, first = table.iloc[0], table.iloc[1]
    assert newest["status"] == "interrupted"  # started, never ended, no live lock
    assert newest["parent"] == "default / run-001"
    assert first["status"] == "done" and first["lift"] == 3.0 and first["batches_done"] == 2


# --- starting and stopping --------------------------------------------------------------


def test_train_command_names_the_config_file(tmp_path):
    cmd = runs.train_command(tmp_path / "m", tmp_path / "m" / "run.json", tmp_path / "base", "cpu")
    assert cmd[:4] == [sys.executable, "-m", "optimus", "train"]
    assert cmd[cmd.index("--model-dir") + 1] == str(tmp_path / "m")
    assert cmd[cmd.index("--config") + 1] == str(tmp_path / "m" / "run.json")
    assert cmd[cmd.index("--from") + 1] == str(tmp_path / "base")
    assert cmd[cmd.index("--device") + 1] == "cpu"
    # No hyper-parameter travels as a flag: the config file carries them all.
    assert not {"--batches", "--preset", "--latent-range", "--method", "--seed"} & set(cmd)


@pytest.mark.parametrize("overrides, match", [
    ({"batches": 0}, "batches"),
    ({"batch_size": 10**9}, "batch size"),
    ({"latent_lo": 10, "latent_hi": 5}, "latent range"),
    ({"learning_rate": 1}, "unknown"),
])
def test_start_rejects_bad_settings(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        runs.start_training(tmp_path / "m", preset="default", overrides=overrides)
    assert not (tmp_path / "m" / storage.LOG).exists()


def test_start_refused_while_a_live_lock_exists(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    with storage.run_lock(model_dir), pytest.raises(storage.LockedError, match="already in progress"):
        runs.start_training(model_dir, preset="default", overrides={"batches": 1})
    assert not (model_dir / storage.LOG).exists()  # nothing was spawned


FAKE_TRAINER = """
import sys, time
from optimus.store import storage
model_dir = sys.argv[sys.argv.index("--model-dir") + 1]
with storage.run_lock(model_dir):
    print("fake trainer running", flush=True)
    while not storage.stop_requested(model_dir):
        time.sleep(0.05)
    print("fake trainer stopped", flush=True)
"""


def test_start_detached_refuse_second_then_stop(tmp_path, monkeypatch):
    real = runs.train_command
    monkeypatch.setattr(runs, "train_command",
                        lambda *a: [sys.executable, "-c", FAKE_TRAINER] + real(*a)[4:])
    model_dir = tmp_path / "m"
    pid = runs.start_training(model_dir, preset="default", overrides={"batches": 2, "steps": 1})
    try:
        # Refused at once, even before the child holds the lock (a double click).
        with pytest.raises(storage.LockedError):
            runs.start_training(model_dir, preset="default", overrides={"batches": 2})
        assert os.getsid(pid) == pid  # its own session: survives the app's session
        deadline = time.time() + 20  # start_training waits ~2 s; a loaded machine may need longer
        while storage.lock_holder(model_dir) is None and time.time() < deadline:
            time.sleep(0.05)
        assert storage.lock_holder(model_dir)["pid"] == pid
        with pytest.raises(storage.LockedError, match="already in progress"):
            runs.start_training(model_dir, preset="default", overrides={"batches": 2})
        assert runs.stop_training(model_dir) is True
        deadline = time.time() + 10
        while storage.lock_holder(model_dir) is not None and time.time() < deadline:
            time.sleep(0.05)
        assert storage.lock_holder(model_dir) is None
        log = (model_dir / storage.LOG).read_text()
        assert "fake trainer running" in log and "fake trainer stopped" in log
        # The lock goes a moment before the process exits: wait for the exit itself.
        deadline = time.time() + 10
        while runs.live_child(model_dir) is not None and time.time() < deadline:
            time.sleep(0.05)
        assert runs.stop_training(model_dir) is False  # nothing left to stop
        # The launch's config file goes once the trainer has read it (it held the lock).
        deadline = time.time() + 5
        while list(model_dir.glob(runs.RUN_CONFIG_PREFIX + "*")) and time.time() < deadline:
            time.sleep(0.05)
        assert not list(model_dir.glob(runs.RUN_CONFIG_PREFIX + "*"))
    finally:
        runs.forget_children()


ENDING_TRAINER = """
import os, sys, time
from optimus.store import storage
model_dir = sys.argv[sys.argv.index("--model-dir") + 1]
with storage.run_lock(model_dir):
    storage.write_json(model_dir + "/status.json", {"run": "run-001", "state": "stopped", "pid": os.getpid(),
                       "batches_done": 1, "batches_total": 2})
time.sleep(5.0)  # the real trainer's teardown after it released the lock (about 1 s measured; longer here
# so it outlasts start_training's 2 s start-up wait on any machine)
"""


def test_continue_waits_for_a_trainer_that_is_only_exiting(tmp_path, monkeypatch):
    real = runs.train_command
    monkeypatch.setattr(runs, "train_command", lambda *a: [sys.executable, "-c", ENDING_TRAINER] + real(*a)[4:])
    model_dir = tmp_path / "m"
    try:
        first = runs.start_training(model_dir, preset="default", overrides={"batches": 2})
        deadline = time.time() + 300  # a hang guard: at a load of 40 on two cores, 20 s was not enough
        while runs.read_status(model_dir).get("state") != "stopped" and time.time() < deadline:
            time.sleep(0.02)
        assert runs.live_child(model_dir) is not None  # its run ended; the process is still exiting
        assert runs.start_training(model_dir, preset="default", overrides={"batches": 1}) != first
    finally:
        runs.forget_children()


def test_runs_module_imports_no_streamlit_or_tensorflow():
    code = "import sys, optimus.store.runs; print('streamlit' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_live_lock_with_previous_runs_status_reads_starting(tmp_path):
    path = _make_model(tmp_path, "m", batches=2,
                       status={"run": "run-001", "state": "done", "pid": 999999, "batches_done": 2,
                               "batches_total": 2})
    with storage.run_lock(path):
        status = runs.read_status(path)
        assert status["state"] == "starting" and status["live"] is True
        assert runs.list_models(tmp_path)[0]["status"] == "starting"


# --- a trainer's failure, at any moment (defect 9) ---------------------------------------------


def _launch_log(model: Path, *lines: str) -> None:
    model.mkdir(exist_ok=True)
    with open(model / storage.LOG, "a") as fh:
        fh.write("\n$ python -m optimus train --model-dir m\n" + "".join(line + "\n" for line in lines))


def test_last_failure_of_a_launch_that_never_started_its_run(tmp_path):
    model = tmp_path / "m"
    _launch_log(model, "optimus train: state.npz: ewc_g: EWC state: bad")
    failure = runs.last_failure(model)
    assert failure["state"] == "failed" and "state.npz: ewc_g: EWC state: bad" in failure["message"]
    # A traceback (an unexpected crash) is reported by its last line.
    _launch_log(model, "Traceback (most recent call last):", '  File "x", line 1', "OSError: [Errno 28] No space left on device")
    assert "No space left on device" in runs.last_failure(model)["message"]


def test_last_failure_of_a_run_that_failed_later(tmp_path):
    model = tmp_path / "m"
    _launch_log(model, "run-002: training m from batch 3 for 10 batches", "loss is NaN")
    storage.write_json(model / storage.STATUS, {"run": "run-002", "state": "failed", "message": "loss became NaN",
                                                "pid": 1, "batches_done": 2, "batches_total": 10})
    failure = runs.last_failure(model)
    assert failure["run"] == "run-002" and "loss became NaN" in failure["message"]
    storage.write_json(model / storage.STATUS, {"run": "run-002", "state": "running", "pid": 1,
                                                "batches_done": 2, "batches_total": 10})
    assert "ended without a final status" in runs.last_failure(model)["message"]  # killed: no lock
    storage.write_json(model / storage.STATUS, {"run": "run-002", "state": "done", "message": "", "pid": 1,
                                                "batches_done": 10, "batches_total": 10})
    assert runs.last_failure(model) is None
    # status.json lost: the run's end event in runs.jsonl says it.
    (model / storage.STATUS).unlink()
    storage.append_jsonl(model / storage.RUNS, {"event": "start", "run": "run-003"})
    storage.append_jsonl(model / storage.RUNS, {"event": "end", "run": "run-003", "status": "failed", "message": "disk full"})
    assert "disk full" in runs.last_failure(model)["message"]


def test_damaged_models_are_listed_with_what_is_wrong(tiny_model, tmp_path):
    root = damaged_root(tiny_model, tmp_path / "models")
    models = {m["name"]: m for m in runs.list_models(root)}
    assert set(models) == {"good", *DAMAGES}
    assert models["good"]["problem"] is None and models["good"]["status"] == "done"
    for name, (file, _, what) in DAMAGES.items():
        entry = models[name]
        if what is None:  # a lock file nobody holds is free, whatever it holds
            assert entry["problem"] is None and not entry["live"], name
            continue
        assert file in entry["problem"] and what in entry["problem"], (name, entry["problem"])
    assert models["config-list"]["status"] == "damaged"
    # Damaged records lose only themselves: the model still loads and its history reads.
    assert models["history-not-utf8"]["status"] != "damaged"
    assert len(runs.read_history(root / "history-not-utf8")) == 1
    for name in DAMAGES:
        runs.read_runs(root / name)
        runs.read_status(root / name)
        runs.read_history(root / name)


def test_a_refused_from_started_by_the_app_copies_nothing(model, tmp_path):
    """The app's start_training runs the same trainer: its refused `--from` writes no lineage."""
    target = tmp_path / "B"
    try:
        runs.start_training(target, from_dir=model, overrides={"method": "si", "batches": 1})
    except RuntimeError as exc:  # the trainer refused before start_training returned
        assert "only between" in str(exc), exc
    child = runs.live_child(target)
    if child is not None:
        assert child.wait(timeout=120) != 0
    assert "only between" in runs.tail_log(target)
    assert not (target / storage.HISTORY).exists() and not (target / storage.RUNS).exists()
    assert not checkpoint.holds_model(target)


# --- 8. status.json fields of the wrong type --------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("batches_done", "abc"), ("batches_total", 1e400), ("last", [1]), ("last", {"hit_rate": "x"}),
    ("eta_seconds", "soon"), ("state", ["running"]), ("pid", "abc"), ("batches_done", -5),
    ("message", {"a": 1}), ("run", 7),
])
def test_status_fields_of_the_wrong_type_are_named_not_used(root, field, value):
    model = root / "m"
    model.mkdir()
    status = {"run": "run-001", "state": "done", "pid": 123, "batches_done": 3, "batches_total": 5,
              "eta_seconds": 0, "message": "done", "last": {"hit_rate": 0.5, "lift": 1.2}, field: value}
    (model / storage.STATUS).write_text(json.dumps(status).replace("Infinity", "1e400"))
    read = runs.read_status(model)
    assert read.get(field) != value or field == "message"
    assert f"{field} is not" in read["message"]
    assert f"{field} is not" in runs.model_problems(model)[0]


@pytest.mark.parametrize("text, expect", [('{"batches": ' + HUGE + "}", "batches holds a number of 5,000 digits"),
                                          (DEEP, "nested more than 64 levels deep")])
def test_a_models_listed_problem_names_the_file_and_field(root, shipped, text, expect):
    shutil.copytree(shipped, root / "m")
    (root / "m" / storage.CONFIG).write_text(text)
    entry = runs.list_models(root)[0]
    assert entry["status"] == "damaged"
    assert storage.CONFIG in entry["error"] and expect in entry["error"], entry["error"]
    with pytest.raises(checkpoint.CheckpointError, match=expect):
        checkpoint.load_config(root / "m")
