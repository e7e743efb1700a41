import json
import shutil

import keras
import numpy as np
import pytest

from optimus.store import checkpoint, storage
from optimus.training.loop import train
from tests.helpers import tiny


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
