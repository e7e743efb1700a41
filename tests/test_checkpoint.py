
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

from optimus import cli
from optimus.store import checkpoint, runs, storage
from optimus.training.loop import train
from tests.helpers import (
    ENV,
    MB,
    QUIET,
    REPO,
    _interrupted_commit,
    _one_line_error,
    _optimus,
    hashes,
    tiny,
)


def test_loads(tiny_model):
    ck = checkpoint.load(tiny_model)
    assert ck.batches_done == 1 and ck.config.preset == "default"


@pytest.mark.parametrize("damage,expect", [
    (lambda d: (d / "generator.keras").write_bytes((d / "generator.keras").read_bytes()[:200]), "generator.keras is damaged or truncated"),
    (lambda d: (d / "state.npz").unlink(), "state.npz is missing"),
    (lambda d: (d / "state.npz").write_bytes(b"not a zip"), "state.npz is damaged"),
    (lambda d: (d / "config.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "config.json").write_text(json.dumps({"version": 99})), "version 99"),
    (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "bogus": 1})), "unknown keys"),
    (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "preset": "seed", "generator": "dense", "discriminator": "dense"})), "do not match|does not match"),
    (lambda d: (d / "discriminator.keras").unlink(), "discriminator.keras is missing"),
])
def test_damaged_dirs_are_reported_by_what_is_wrong(tiny_model_copy, damage, expect):
    damage(tiny_model_copy)
    with pytest.raises(checkpoint.CheckpointError, match=expect):
        checkpoint.load(tiny_model_copy)


def test_missing_dir(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope")


def test_fisher_of_wrong_shape_is_reported(tiny_model_copy):
    from optimus.training.loop import build_gan

    ck = checkpoint.load(tiny_model_copy)
    state = dict(ck.state)
    key = next(k for k in state if k.startswith("method_d/") and state[k].ndim == 2)
    state[key] = np.zeros((3, 3), dtype=np.float32)
    gan = build_gan(ck.config, ck.generator, ck.discriminator)
    with pytest.raises(checkpoint.CheckpointError, match="method_d"):
        gan.load_state(state)


def test_state_has_no_pickles(tiny_model):
    with np.load(tiny_model / "state.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_lambda_layer_is_refused(tmp_path):
    inp = keras.Input(shape=(1,))
    out = keras.layers.Lambda(lambda x: x * 2)(inp)
    keras.Model(inp, out).save(tmp_path / "evil.keras")
    with pytest.raises(checkpoint.CheckpointError, match="could not be loaded safely"):
        checkpoint.load_network(tmp_path / "evil.keras")


def test_interrupted_commit_rolls_forward_or_back(tiny_model_copy):
    ck = checkpoint.load(tiny_model_copy)
    # .new files without a commit record: a save that died before its commit point.
    shutil.copyfile(tiny_model_copy / "state.npz", tiny_model_copy / "state.npz.new")
    (tiny_model_copy / "generator.keras.new").write_bytes(b"half written")
    checkpoint.recover(tiny_model_copy)
    assert not list(tiny_model_copy.glob("*.new"))
    assert checkpoint.load(tiny_model_copy).batches_done == 1
    # A commit record: the save passed its commit point, so the .new files win.
    state = dict(ck.state)
    state["batches_done"] = np.array(7)
    with open(tiny_model_copy / "state.npz.new", "wb") as fh:
        np.savez(fh, **state)
    storage.write_json(tiny_model_copy / checkpoint.COMMIT, {"files": ["state.npz"], "batches_done": 7})
    assert checkpoint.load(tiny_model_copy).batches_done == 7  # read as committed ...
    assert (tiny_model_copy / checkpoint.COMMIT).exists()  # ... but a reader never finishes the commit
    checkpoint.recover(tiny_model_copy)  # the next lock holder does
    assert not (tiny_model_copy / checkpoint.COMMIT).exists()
    assert checkpoint.load(tiny_model_copy).batches_done == 7


def test_resume_with_other_architecture_is_refused(tiny_model, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    with pytest.raises(checkpoint.CheckpointError, match="window"):
        train(tiny("default", batches=1, window=4), d, progress=False, log=lambda *_: None)


@pytest.mark.parametrize("source", ["renamed", "shipped"])
def test_state_written_before_the_rename_loads(tiny_model, repo_root, source):
    """state.npz files written before the plugins hold each network's method state under
    `ewc_g/`, `ewc_d/` (the shipped models): it loads, and is written back as `method_g/`, `method_d/`."""
    from optimus.training.loop import build_gan

    if source == "shipped":
        if not (repo_root / "models" / "default" / "state.npz").exists():
            pytest.skip("models/default is not in this checkout")
        ck = checkpoint.load(repo_root / "models" / "default")
        old = ck.state
    else:
        ck = checkpoint.load(tiny_model)
        old = {k.replace("method_g/", "ewc_g/").replace("method_d/", "ewc_d/"): v for k, v in ck.state.items()}
    assert any(k.startswith("ewc_g/") for k in old) and not any(k.startswith("method_") for k in old)
    gan = build_gan(ck.config, ck.generator, ck.discriminator)
    gan.load_state(old)
    new = gan.state()
    assert not any(k.startswith("ewc_") for k in new)
    for key, value in old.items():
        if key.startswith(("ewc_g/", "ewc_d/", "opt_")):
            np.testing.assert_array_equal(new[key.replace("ewc_", "method_", 1)], value, err_msg=key)


# --- archives are size-checked before inflating (defect 11) ---------------------------------


def test_zip_bomb_state_is_refused_before_inflating(tmp_path):
    import zipfile

    from optimus import validate

    bomb = tmp_path / "state.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("opt_g/0.npy", b"\0" * (64 * MB))  # 64 MB of zeros: ~64 kB on disk
    assert bomb.stat().st_size < MB
    with pytest.raises(ValueError, match=r"would inflate to 67,108,864 bytes, more than .* cap of 1,000,000"):
        validate.check_archive(bomb, 1_000_000)
    validate.check_archive(bomb, 64 * MB)  # at the cap: accepted


@pytest.mark.slow
def test_model_archives_are_capped_by_their_config(tmp_path):
    """A tiny model's state.npz grown to 300 MB of zeros (0.3 MB compressed) is refused by
    name before it is inflated; before, np.load inflated every member."""
    import zipfile

    from optimus.store import checkpoint

    model = tmp_path / "m"
    code, _, err, _ = _optimus("train", "--model-dir", model, "--batches", "1", "--batch-size", "64",
                               "--steps", "1", "--quiet")
    assert code == 0, err[-2000:]
    with zipfile.ZipFile(model / storage.STATE, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.npy", b"\0" * (300 * MB))
    with pytest.raises(checkpoint.CheckpointError, match=r"state\.npz would inflate to .* cap"):
        checkpoint.load(model)
    code, _, err, _ = _optimus("sample", "--model-dir", model, "-n", "10")
    assert code == cli.EXIT_FAILED and "state.npz would inflate" in _one_line_error(err)


def test_readers_never_change_a_model_directory(model):
    _interrupted_commit(model)
    before = hashes(model)
    assert checkpoint.has_checkpoint(model)
    assert checkpoint.saved_batches(model) == 1
    assert checkpoint.load(model).batches_done == 1
    assert len(runs.read_history(model)) == 1
    assert [m["name"] for m in runs.list_models(model.parent)] == ["m"]
    runs.read_runs(model)
    runs.read_status(model)
    assert hashes(model) == before  # the .new files, the commit record and the temp file stay


READER_TRAINER_BATCHES = 30


TINY_TRAINER = """
import sys
from optimus.training.loop import train
from tests.helpers import tiny
train(tiny("default", batches=int(sys.argv[2]), steps=1), sys.argv[1], progress=False, log=lambda *_: None)
"""


@pytest.mark.slow
def test_a_reader_polling_a_live_run_never_tears_its_checkpoint(tmp_path):
    d = tmp_path / "m"
    trainer = subprocess.Popen([sys.executable, "-c", TINY_TRAINER, str(d), str(READER_TRAINER_BATCHES)],
                               cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reads, failures = [0], []

    def poll():
        while trainer.poll() is None:
            try:  # every read the app and the CLI make of a model being trained
                runs.read_history(d)
                checkpoint.saved_batches(d)
                checkpoint.has_checkpoint(d)
                runs.list_models(tmp_path)
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 (a reader may fail; it must not break the trainer)
                failures.append(repr(exc))
            time.sleep(0.002)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        out, err = trainer.communicate(timeout=600)
    finally:
        if trainer.poll() is None:
            trainer.kill()
        reader.join()
    assert trainer.returncode == 0, err[-2000:]
    assert reads[0] > 50, f"the reader only got {reads[0]} reads in"
    ck = checkpoint.load(d)
    assert ck.batches_done == READER_TRAINER_BATCHES
    # Online EWC anchors the generator's weights at the end of every batch: a checkpoint whose
    # weights and state come from the same batch has them equal.
    for i, weight in enumerate(ck.generator.trainable_variables):
        np.testing.assert_array_equal(np.asarray(weight), ck.state[f"method_g/anchor_{i}"], err_msg=f"variable {i}")
    assert not list(d.glob("*.new")) and not (d / checkpoint.COMMIT).exists()


# --- 2. partial directories are refused, never restarted ----------------------------------


@pytest.mark.parametrize("missing", [storage.STATE, storage.GENERATOR, storage.DISCRIMINATOR, storage.CONFIG])
def test_a_partial_model_directory_is_refused_by_train_and_loaders(run_cli, model, missing):
    (model / missing).unlink()
    before = hashes(model)
    for argv in (["train", "--model-dir", model, "--batches", "1", "--quiet"],
                 ["sample", "--model-dir", model, "-n", "5"]):
        code, _, err = run_cli(*argv)
        assert code != 0, argv
        assert len(err.strip().splitlines()) == 1 and missing in err and "Traceback" not in err, err
    with pytest.raises(checkpoint.CheckpointError, match=missing.replace(".", r"\.")):
        train(tiny("default", batches=1), model, **QUIET)
    assert hashes(model) == before
    entry = runs.list_models(model.parent)[0]
    assert entry["status"] == "damaged" and missing in entry["problem"]


# --- 15. messages name the file, the field, and how to clear a lock -----------------------


def test_a_truncated_keras_file_says_so(model):
    path = model / storage.GENERATOR
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"generator\.keras is damaged or truncated"):
        checkpoint.load(model)


def test_a_bad_batches_done_names_the_file_and_field(model):
    state = dict(checkpoint.load_state(model))
    state["batches_done"] = np.array("abc")
    np.savez(model / storage.STATE, **state)
    with pytest.raises(checkpoint.CheckpointError, match=r"state\.npz is damaged: batches_done = 'abc'"):
        checkpoint.load(model)


@pytest.mark.parametrize("field, value, message", [
    ("batches", "x", "batches must be a whole number"),
    ("ewc_lambda", "1", "ewc_lambda must be a finite number"),
    ("disc_widths", [1, "a"], "disc_widths must be a list of whole numbers"),
    ("apply_regularizers", 1, "apply_regularizers must be true or false"),
])
def test_config_type_errors_name_the_field(model, field, value, message):
    cfg = json.loads((model / storage.CONFIG).read_text())
    cfg[field] = value
    (model / storage.CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match=rf"config\.json: {message}"):
        checkpoint.load(model)
