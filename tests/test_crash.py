"""SIGKILL a training process at random moments: the model directory must survive every time."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from optimus.store import checkpoint, storage

KILLS = 20


def _start(model_dir, repo_root):
    cmd = [sys.executable, "-m", "optimus", "train", "--model-dir", str(model_dir), "--preset", "default",
           "--batches", "10000", "--batch-size", "64", "--steps", "3", "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _raw_history_batches(model_dir):
    return [r["batch"] for r in storage.read_jsonl(model_dir / storage.HISTORY)]


@pytest.mark.slow
def test_sigkill_at_20_random_moments_leaves_a_loadable_consistent_dir(tmp_path, repo_root):
    rng = random.Random(1234)
    model_dir = tmp_path / "m"
    saved_before = 0
    for kill in range(KILLS):
        committed = checkpoint.saved_batches(model_dir) or 0
        proc = _start(model_dir, repo_root)
        try:
            # Wait until this process has finished a batch (past start-up and tracing) and
            # committed it (its status shows a batch before the consolidation and the checkpoint),
            # then kill it at a random moment: during gradient steps, Fisher computation or a
            # checkpoint write.
            deadline = time.time() + 240  # a busy 2-core machine: TensorFlow, tracing, a batch
            while time.time() < deadline:
                try:
                    status = json.loads((model_dir / storage.STATUS).read_text())
                    if (status.get("pid") == proc.pid and status.get("batches_done", 0) >= 1
                            and (checkpoint.saved_batches(model_dir) or 0) > committed):
                        break
                except (FileNotFoundError, json.JSONDecodeError):
                    pass
                assert proc.poll() is None, f"training exited early with {proc.returncode}"
                time.sleep(0.05)
            else:
                pytest.fail("training never started")
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # The directory loads, and its history agrees with its weights.
        ck = checkpoint.load(model_dir)
        done = ck.batches_done
        history = checkpoint.read_history(model_dir)
        assert [h["batch"] for h in history] == list(range(1, done + 1)), f"kill {kill}"
        # At most the batch in flight is lost: the file holds at most one record past the checkpoint.
        raw = _raw_history_batches(model_dir)
        assert not raw or max(raw) - done <= 1, f"kill {kill}: lost more than one batch"
        assert done >= saved_before, "a kill must never lose a committed checkpoint"
        saved_before = done
        # A commit the kill interrupted stays as it is until the next run takes the lock and
        # finishes it (readers never write); loading above read it as committed.
    assert saved_before > 0, "no checkpoint was ever committed between kills"
    # Training resumes from the directory (the stale lock of the last victim is cleared).
    out = subprocess.run(
        [sys.executable, "-m", "optimus", "train", "--model-dir", str(model_dir), "--batches", "1", "--quiet"],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert checkpoint.load(model_dir).batches_done == saved_before + 1
    assert not list(model_dir.glob("*.new")) and not list(model_dir.glob(".*")), "leftovers of a killed run"
    assert [h["batch"] for h in checkpoint.read_history(model_dir)] == list(range(1, saved_before + 2))


@pytest.mark.slow
def test_ctrl_c_finishes_the_step_saves_and_exits_cleanly(tmp_path, repo_root):
    model_dir = tmp_path / "m"
    proc = _start(model_dir, repo_root)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if json.loads((model_dir / storage.STATUS).read_text()).get("batches_done", 0) >= 1:
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    status = json.loads((model_dir / storage.STATUS).read_text())
    assert status["state"] == "stopped"
    ck = checkpoint.load(model_dir)
    assert ck.batches_done >= 1
    assert [h["batch"] for h in checkpoint.read_history(model_dir)] == list(range(1, ck.batches_done + 1))
    assert not (model_dir / storage.LOCK).exists()


def test_server_defaults_are_local_and_xsrf_protected(repo_root):
    import tomllib

    cfg = tomllib.loads((repo_root / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
