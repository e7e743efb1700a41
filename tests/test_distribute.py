"""Training under tf.distribute: MirroredStrategy over two logical CPU devices matches one device.

The mirrored runs need the CPU split into two logical devices before TensorFlow initialises,
so they run in a fresh process (tests/mirrored_run.py); the rest runs here.
"""

import json
import os
import subprocess
import sys

import pytest

from optimus.store import storage
from optimus.training import distribute
from optimus.training.loop import train
from tests.helpers import tiny


@pytest.fixture(scope="module")
def mirrored(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, str(repo_root / "tests" / "mirrored_run.py"), str(out)],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=900)  # a hang guard: 200 s on a quiet CI
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "seed", "seed_uneven"])
def test_mirrored_training_matches_one_device(mirrored, name):
    # tiny(...) configs with disc_dropout=0 (dropout masks differ per replica), 2 batches of
    # gradient steps, EWC consolidation after each: weights, Adam state and EWC state agree.
    r = mirrored[name]
    assert r["status"] == ["done", "done"]
    one, two = r["device"]
    assert one["strategy"] == "default" and one["replicas"] == 1
    assert two["strategy"] == "MirroredStrategy" and two["replicas"] == 2 and two["requested"] == "mirrored"
    assert r["same_keys"]
    assert r["worst"]["excess"] <= 0.0, f"beyond rtol 1e-4 / atol 1e-5: {r['worst']}"
    for key in ("d_loss", "g_loss"):  # the SUM-reduced losses are the single-device losses
        assert r[key][1] == pytest.approx(r[key][0], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "seed"])
def test_shipped_models_continue_under_mirrored_strategy(mirrored, name):
    r = mirrored[f"shipped_{name}"]
    assert r["status"] == "done" and r["finite"]
    assert r["model_batches"] == r["source_batches"] + 1


@pytest.mark.slow
def test_gln_discriminator_is_refused_on_two_replicas(mirrored):
    assert "cannot be mirrored over 2 replicas" in mirrored["gln_error"]
    assert not mirrored["gln_dir_created"]


def test_device_choices_and_errors(monkeypatch):
    import tensorflow as tf

    with pytest.raises(ValueError, match="unknown device"):
        distribute.strategy_for("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.strategy_for("multiworker")
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ValueError, match="no GPU"):
            distribute.strategy_for("gpu")
        assert distribute.is_default(distribute.strategy_for("auto"))
    strategy = distribute.strategy_for("auto")
    assert distribute.is_chief(strategy) and distribute.num_workers(strategy) == 1


def test_chief_rule_and_shard_sizes():
    workers = {"worker": ["a:1", "b:1"]}
    assert distribute.is_chief_task("worker", 0, workers)
    assert not distribute.is_chief_task("worker", 1, workers)
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert distribute.is_chief_task("chief", 0, with_chief)
    assert not distribute.is_chief_task("worker", 0, with_chief)
    assert distribute.split_sizes(45, 2) == [23, 22]
    assert distribute.split_sizes(64, 4) == [16] * 4


@pytest.mark.slow
def test_device_goes_to_the_start_event_not_config(tmp_path):
    d = tmp_path / "m"
    train(tiny("default", batches=1), d, progress=False, log=lambda *_: None, device="cpu")
    assert "device" not in json.loads((d / storage.CONFIG).read_text())
    start = [r for r in storage.read_jsonl(d / storage.RUNS) if r["event"] == "start"][-1]
    assert start["device"]["requested"] == "cpu" and start["device"]["replicas"] == 1


def test_cli_gpu_without_gpu_is_one_line(capsys, tmp_path):
    import tensorflow as tf

    from optimus.cli import main

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert main(["train", "--model-dir", str(tmp_path / "m"), "--device", "gpu"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "no GPU" in err[-1]
    assert not (tmp_path / "m").exists()
