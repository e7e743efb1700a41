import json
import shutil

import keras
import numpy as np
import pytest

from optimus.store import checkpoint, storage
from optimus.training.loop import train
from tests.helpers import tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck") / "m"
    train(tiny("default", batches=1), d, progress=False, log=lambda *_: None)
    return d


@pytest.fixture
def copy(trained, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(trained, d)
    return d


def test_loads(trained):
    ck = checkpoint.load(trained)
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
def test_damaged_dirs_are_reported_by_what_is_wrong(copy, damage, expect):
    damage(copy)
    with pytest.raises(checkpoint.CheckpointError, match=expect):
        checkpoint.load(copy)


def test_missing_dir(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope")


def test_fisher_of_wrong_shape_is_reported(copy):
    from optimus.training.loop import build_gan

    ck = checkpoint.load(copy)
    state = dict(ck.state)
    key = next(k for k in state if k.startswith("ewc_d/") and state[k].ndim == 2)
    state[key] = np.zeros((3, 3), dtype=np.float32)
    gan = build_gan(ck.config, ck.generator, ck.discriminator)
    with pytest.raises(checkpoint.CheckpointError, match="ewc_d"):
        gan.load_state(state)


def test_state_has_no_pickles(trained):
    with np.load(trained / "state.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_lambda_layer_is_refused(tmp_path):
    inp = keras.Input(shape=(1,))
    out = keras.layers.Lambda(lambda x: x * 2)(inp)
    keras.Model(inp, out).save(tmp_path / "evil.keras")
    with pytest.raises(checkpoint.CheckpointError, match="could not be loaded safely"):
        checkpoint.load_network(tmp_path / "evil.keras")


def test_interrupted_commit_rolls_forward_or_back(copy):
    ck = checkpoint.load(copy)
    # .new files without a commit record: a save that died before its commit point.
    shutil.copyfile(copy / "state.npz", copy / "state.npz.new")
    (copy / "generator.keras.new").write_bytes(b"half written")
    checkpoint.recover(copy)
    assert not list(copy.glob("*.new"))
    assert checkpoint.load(copy).batches_done == 1
    # A commit record: the save passed its commit point, so the .new files win.
    state = dict(ck.state)
    state["batches_done"] = np.array(7)
    with open(copy / "state.npz.new", "wb") as fh:
        np.savez(fh, **state)
    storage.write_json(copy / checkpoint.COMMIT, {"files": ["state.npz"], "batches_done": 7})
    assert checkpoint.load(copy).batches_done == 7  # read as committed ...
    assert (copy / checkpoint.COMMIT).exists()  # ... but a reader never finishes the commit
    checkpoint.recover(copy)  # the next lock holder does
    assert not (copy / checkpoint.COMMIT).exists()
    assert checkpoint.load(copy).batches_done == 7


def test_resume_with_other_architecture_is_refused(trained, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(trained, d)
    with pytest.raises(checkpoint.CheckpointError, match="window"):
        train(tiny("default", batches=1, window=4), d, progress=False, log=lambda *_: None)
