"""The warm trainer (optimus/training/spare.py): `runs.start_training` hands a run to it, it
becomes that run's trainer (the pid the app records and stops), and the run trains exactly as
one spawned cold: the same history and the same checkpoint, bit for bit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optimus.store import runs, storage
from optimus.training import spare

pytestmark = pytest.mark.slow  # spawns trainers that import TensorFlow

OVERRIDES = {"batches": 2, "batch_size": 64, "steps": 2, "fisher_samples": 16, "min_batch": 16, "window": 8,
             "disc_prime_max": 200, "disc_hidden": 8, "seed": 7}


def _wait_for_end(model_dir: Path, pid: int, timeout: float = 300) -> subprocess.Popen:
    child = runs.live_child(model_dir)
    assert child is not None and child.pid == pid
    assert child.wait(timeout=timeout) == 0, runs.tail_log(model_dir)
    return child


def _keras_contents(path: Path) -> dict[str, bytes]:
    """Every file of a .keras archive but its metadata (which holds the save time), with the
    config's `shared_object_id`s (Python object ids: they differ between any two processes) out."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist() if name != "metadata.json"}
    files["config.json"] = re.sub(rb'"shared_object_id": \d+', b'"shared_object_id": 0', files["config.json"])
    return files


def _history(model_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "seconds")}
            for r in storage.read_jsonl(model_dir / storage.HISTORY)]


@pytest.fixture
def clean_children():
    yield
    runs.forget_children()


def test_a_run_through_the_spare_trains_the_same_numbers_as_a_cold_one(tmp_path, monkeypatch, clean_children):
    monkeypatch.delenv(runs.SPARE_ENV, raising=False)
    spare_pid = runs.ensure_spare()
    assert spare_pid is not None and runs.ensure_spare() == spare_pid  # one spare, kept

    warm_dir = tmp_path / "warm"
    pid = runs.start_training(warm_dir, preset="default", overrides=OVERRIDES)
    assert pid == spare_pid  # the spare became the trainer
    _wait_for_end(warm_dir, pid)
    assert runs.read_status(warm_dir)["state"] == "done"

    monkeypatch.setenv(runs.SPARE_ENV, "0")  # cold: spawned as `python -m optimus train`
    cold_dir = tmp_path / "cold"
    cold_pid = runs.start_training(cold_dir, preset="default", overrides=OVERRIDES)
    assert cold_pid != spare_pid
    _wait_for_end(cold_dir, cold_pid)

    _assert_same_run(warm_dir, cold_dir, batches=2)
    assert "run-001: training" in (warm_dir / storage.LOG).read_text()  # its output went to the run's log


def test_a_new_demo_model_takes_the_spares_traced_gan_and_trains_the_same_numbers(tmp_path, monkeypatch,
                                                                                   clean_children):
    """The spare traces the default preset's GAN while it waits (loop.prewarm); a new `demo`
    model (the same shapes) takes it, and its history, networks and state are a cold run's."""
    monkeypatch.delenv(runs.SPARE_ENV, raising=False)
    spare_pid = runs.ensure_spare()
    warm_dir = tmp_path / "warm"
    pid = runs.start_training(warm_dir, preset="demo", overrides={"batches": 1})
    assert pid == spare_pid
    _wait_for_end(warm_dir, pid)
    assert loop_warm_log() in (warm_dir / storage.LOG).read_text()

    monkeypatch.setenv(runs.SPARE_ENV, "0")
    cold_dir = tmp_path / "cold"
    _wait_for_end(cold_dir, runs.start_training(cold_dir, preset="demo", overrides={"batches": 1}))
    assert loop_warm_log() not in (cold_dir / storage.LOG).read_text()

    _assert_same_run(warm_dir, cold_dir, batches=1)


def _assert_same_run(warm_dir, cold_dir, batches: int) -> None:
    """The warm and the cold run left the same history, networks and state, bit for bit."""
    assert _history(warm_dir) == _history(cold_dir) and len(_history(warm_dir)) == batches
    for name in (storage.GENERATOR, storage.DISCRIMINATOR):
        assert _keras_contents(warm_dir / name) == _keras_contents(cold_dir / name), name
    with np.load(warm_dir / storage.STATE) as warm, np.load(cold_dir / storage.STATE) as cold:
        assert sorted(warm.files) == sorted(cold.files)
        for key in warm.files:
            np.testing.assert_array_equal(warm[key], cold[key], err_msg=key)


def loop_warm_log() -> str:
    from optimus.training import loop  # TensorFlow: only the tests that train import it

    return loop.WARM_LOG


def test_the_spare_is_replaced_after_the_run_that_used_it_shows_a_batch(tmp_path, monkeypatch, clean_children):
    monkeypatch.delenv(runs.SPARE_ENV, raising=False)
    first = runs.ensure_spare()
    model_dir = tmp_path / "m"
    pid = runs.start_training(model_dir, preset="default", overrides=OVERRIDES)
    assert pid == first
    _wait_for_end(model_dir, pid)
    deadline = time.monotonic() + 30
    while (runs._spare is None or runs._spare.pid == first) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runs._spare is not None and runs._spare.pid != first and runs._spare.poll() is None


def test_a_spare_that_is_gone_leaves_the_run_to_a_cold_start(tmp_path, monkeypatch, clean_children):
    monkeypatch.delenv(runs.SPARE_ENV, raising=False)
    gone = runs.ensure_spare()
    runs._spare.kill()
    runs._spare.wait()
    model_dir = tmp_path / "m"
    pid = runs.start_training(model_dir, preset="default", overrides=OVERRIDES)
    assert pid != gone
    _wait_for_end(model_dir, pid)
    assert runs.read_status(model_dir)["state"] == "done"


def test_a_spare_without_a_job_exits_unused_when_its_app_goes(tmp_path):
    """End of file on stdin (the app exited) ends an idle spare, with UNUSED."""
    proc = subprocess.Popen([sys.executable, "-m", "optimus.training.spare"], cwd=runs.REPO_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdin.close()
    assert proc.wait(timeout=300) == spare.UNUSED
    assert proc.stdout.read() == b""  # it never answered "ok"
    proc.stdout.close()


def test_a_spare_refuses_a_malformed_job(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "optimus.training.spare"], cwd=runs.REPO_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = proc.communicate(json.dumps({"argv": ["train"]}).encode() + b"\n", timeout=300)  # no "log"
    assert proc.returncode == spare.UNUSED and out == b""
